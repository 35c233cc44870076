"""Segmented EWM equals pandas' DataFrameGroupBy.ewm on random ragged inputs (CPU twin), and GPU == CPU."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gpuetl.backend import Backend
from gpuetl.kernels import KernelSet
from gpuetl.kernels.ewm import center_of_mass, ewm_cpu
from gpuetl.kernels.segments import segment_ids, segment_offsets
from tests._testing import PANDAS_EWM_GAP_FIXED, assert_backend_equal


@st.composite
def ragged_panels(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Segments of length 1..40 with NaN runs, constant stretches and large/small magnitudes."""
    lengths = draw(st.lists(st.integers(1, 40), min_size=1, max_size=12))
    n = sum(lengths)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.standard_normal(n) * draw(st.sampled_from([1e-3, 1.0, 1e4]))
    values[rng.random(n) < draw(st.sampled_from([0.0, 0.1, 0.4, 0.9]))] = np.nan
    if draw(st.booleans()):  # a constant stretch exercises pandas' constant-series guard
        k = int(rng.integers(0, n))
        values[k : k + 6] = 3.25
    groups = np.repeat(np.arange(len(lengths)), lengths)
    return values, groups


decay = st.one_of(
    st.builds(lambda v: {"com": v}, st.sampled_from([0.0, 0.5, 1.0, 4.0, 29.0])),
    st.builds(lambda v: {"span": v}, st.sampled_from([1.0, 2.0, 12.0, 26.0])),
    st.builds(lambda v: {"halflife": v}, st.sampled_from([0.5, 5.0, 30.0])),
    st.builds(lambda v: {"alpha": v}, st.sampled_from([0.05, 0.5, 1.0])),
)


def pandas_groupby_ewm(values: np.ndarray, groups: np.ndarray, stat: str, params: dict, adjust: bool,
                       ignore_na: bool, min_periods: int, bias: bool) -> np.ndarray:
    df = pd.DataFrame({"g": groups, "x": values})
    ewm = df.groupby("g", sort=False)["x"].ewm(adjust=adjust, ignore_na=ignore_na, min_periods=min_periods,
                                               **params)
    res = ewm.mean() if stat == "mean" else getattr(ewm, stat)(bias=bias)
    return res.reset_index(level=0, drop=True).sort_index().to_numpy()


@settings(max_examples=150, deadline=None)
@given(panel=ragged_panels(), params=decay, adjust=st.booleans(), ignore_na=st.booleans(),
       min_periods=st.integers(0, 5), stat=st.sampled_from(["mean", "var", "std"]), bias=st.booleans())
def test_cpu_twin_equals_pandas_groupby_ewm(panel: tuple[np.ndarray, np.ndarray], params: dict, adjust: bool,
                                            ignore_na: bool, min_periods: int, stat: str, bias: bool) -> None:
    values, groups = panel
    com = center_of_mass(**params)
    assume(PANDAS_EWM_GAP_FIXED or adjust or stat != "mean" or com != 1.0 or not np.isnan(values).any())
    offsets = segment_offsets(np, groups)
    got = ewm_cpu(values, offsets, com=com, adjust=adjust, ignore_na=ignore_na,
                  min_periods=min_periods, stat=stat, bias=bias)
    want = pandas_groupby_ewm(values, groups, stat, params, adjust, ignore_na, min_periods, bias)
    assert_backend_equal(got, want, tol="rounding")


def test_hand_computed_mean_with_nan() -> None:
    # adjust=True, alpha=0.5: y0 = 1; y1 (NaN, ignore_na=False) = 1; y2 = (0.25*1 + 1*3) / (0.25 + 1) = 2.6
    out = ewm_cpu(np.array([1.0, np.nan, 3.0]), np.array([0, 3]), com=1.0)
    assert_backend_equal(out, [1.0, 1.0, 2.6], tol="rounding")
    # ignore_na=True treats the NaN as absent: y2 = (0.5*1 + 3) / 1.5
    out = ewm_cpu(np.array([1.0, np.nan, 3.0]), np.array([0, 3]), com=1.0, ignore_na=True)
    assert_backend_equal(out, [1.0, 1.0, 3.5 / 1.5], tol="rounding")



@pytest.mark.parametrize(("com", "want"), [
    # alpha 0.5: y2 = (0.25*1 + 0.5*3) / (0.25 + 0.5) = 7/3; y3 = (0.5*7/3 + 0.5*5) / 1 = 11/3
    (1.0, [1.0, 1.0, 7 / 3, 11 / 3]),
    # alpha 1/3: y2 = ((2/3)^2*1 + 3/3) / ((2/3)^2 + 1/3) = 13/7; y3 = (2/3*13/7 + 5/3) / 1 = 61/21
    (2.0, [1.0, 1.0, 13 / 7, 61 / 21]),
])
def test_hand_computed_unadjusted_mean_over_a_gap(com: float, want: list[float]) -> None:
    """adjust=False across a missing value: the old weight decays over the gap, the new one stays alpha, for
    every alpha. pandas before 3.1.2 gave the new value 1 - old weight when com was exactly 1 (alpha 0.5; the
    rule meant for `times`, GH#54328), and this kernel copied that: Wilder's RSI 2 moved on gapped series."""
    out = ewm_cpu(np.array([1.0, np.nan, 3.0, 5.0]), np.array([0, 4]), com=com, adjust=False)
    assert_backend_equal(out, want, tol="rounding")

def test_segments_do_not_leak_into_each_other_and_empty_segments_are_fine() -> None:
    values = np.array([1.0, 2.0, 100.0, 200.0])
    out = ewm_cpu(values, np.array([0, 2, 2, 4]), com=1.0)
    alone = ewm_cpu(values[2:], np.array([0, 2]), com=1.0)
    assert_backend_equal(out[2:], alone, tol="exact")
    assert out[2] == 100.0


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="offsets must run from 0"):
        ewm_cpu(np.ones(3), np.array([0, 2]), com=1.0)
    with pytest.raises(ValueError, match="stat must be"):
        ewm_cpu(np.ones(3), np.array([0, 3]), com=1.0, stat="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly one"):
        center_of_mass(com=1.0, span=3.0)
    with pytest.raises(ValueError, match="alpha must satisfy"):
        center_of_mass(alpha=1.5)


def test_segment_offsets_and_ids() -> None:
    np.testing.assert_array_equal(segment_offsets(np, np.array([5, 5, 7, 9, 9, 9])), [0, 2, 3, 6])
    np.testing.assert_array_equal(segment_offsets(np, np.array([], dtype=np.int64)), [0])
    # segment 1 and 3 are empty: ids skip them, as repeat(arange, counts) would
    np.testing.assert_array_equal(segment_ids(np, np.array([0, 2, 2, 3, 3, 5])), [0, 0, 2, 4, 4])
    assert len(segment_ids(np, np.array([0]))) == 0


def test_registered_in_the_kernel_set() -> None:
    assert KernelSet("cpu").segmented_ewm is ewm_cpu


@pytest.mark.gpu
@pytest.mark.parametrize("stat", ["mean", "var", "std"])
@pytest.mark.parametrize(("adjust", "ignore_na"), [(True, False), (False, False), (True, True), (False, True)])
@pytest.mark.parametrize("com", [0.0, 1.0, 4.0, 29.0])
def test_gpu_equals_cpu(gpu_backend: Backend, stat: str, adjust: bool, ignore_na: bool, com: float) -> None:
    backend = gpu_backend
    xp = backend.xp
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 300, size=500)
    values = rng.standard_normal(int(lengths.sum()))
    values[rng.random(len(values)) < 0.2] = np.nan
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    want = ewm_cpu(values, offsets, com=com, adjust=adjust, ignore_na=ignore_na, min_periods=3, stat=stat)
    got = backend.kernels.segmented_ewm(xp.asarray(values), xp.asarray(offsets), com=com, adjust=adjust,
                                        ignore_na=ignore_na, min_periods=3, stat=stat)
    assert_backend_equal(got, want, tol="rounding")  # the device's libm (pow) against the host's
