"""The CPU rolling kernel against pandas: per code, every statistic, NaN runs, flat stretches, mixed magnitudes.

The reference is pandas' `Series.rolling` run on each segment alone (what a per-code window means), so the
kernel, which runs pandas' arithmetic per segment from a fresh state, must agree bit for bit. pandas' groupby
rolling agrees to rounding (older pandas carried its running sums from one group into the next).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuetl.kernels.rolling import STATS, rolling_cpu, scan_cpu, shift_cpu
from gpuetl.kernels.segments import segment_offsets
from tests._testing import assert_backend_equal


@st.composite
def ragged_panels(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Segments of length 1..50 with NaN runs, flat stretches, signs and magnitudes that differ by segment."""
    lengths = draw(st.lists(st.integers(1, 50), min_size=1, max_size=10))
    n = sum(lengths)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = np.repeat(rng.choice([1e-3, 1.0, 1e5], len(lengths)), lengths)
    values = rng.standard_normal(n) * scale + draw(st.sampled_from([0.0, 3.0]))
    values[rng.random(n) < draw(st.sampled_from([0.0, 0.1, 0.5]))] = np.nan
    if draw(st.booleans()):  # a flat stretch: mean exactly the value, variance exactly 0
        k = int(rng.integers(0, n))
        values[k: k + 25] = 3.25
    if draw(st.booleans()):  # ties of 0.0 and -0.0 for min/max
        values[rng.random(n) < 0.2] = -0.0
    return values, np.repeat(np.arange(len(lengths)), lengths)


def per_segment(values: np.ndarray, groups: np.ndarray, window: int, stat: str, minp: int) -> np.ndarray:
    parts = [getattr(pd.Series(values[groups == g]).rolling(window, min_periods=minp), stat)().to_numpy()
             for g in np.unique(groups)]
    return np.concatenate(parts)


@settings(max_examples=120, deadline=None)
@given(panel=ragged_panels(), stat=st.sampled_from(STATS), window=st.integers(1, 30), minp=st.integers(0, 30))
def test_equals_pandas_rolling_per_segment(panel: tuple[np.ndarray, np.ndarray], stat: str, window: int,
                                           minp: int) -> None:
    values, groups = panel
    minp = min(minp, window)
    got = rolling_cpu(values, segment_offsets(np, groups), window, stat, minp)
    want = per_segment(values, groups, window, stat, minp)
    np.testing.assert_array_equal(got, want)  # same arithmetic, same order: bit for bit, NaN where pandas has NaN
    assert (np.signbit(got) == np.signbit(want))[~np.isnan(want)].all()


@pytest.mark.parametrize("stat", ["mean", "std", "max"])
def test_agrees_with_pandas_groupby_rolling(stat: str) -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(40), rng.integers(1, 120, 40))
    values = rng.standard_normal(len(groups)) * 50 + 100
    values[rng.random(len(values)) < 0.05] = np.nan
    got = rolling_cpu(values, segment_offsets(np, groups), 20, stat, 20)
    grouped = getattr(pd.Series(values).groupby(groups).rolling(20, min_periods=20), stat)()
    assert_backend_equal(got, grouped.reset_index(drop=True).to_numpy(), tol="rounding")


def test_flat_windows_are_exact() -> None:
    values = np.array([0.1] * 30 + [0.7] * 30)
    offsets = np.array([0, 60])
    assert (rolling_cpu(values, offsets, 20, "mean", 20)[19:30] == 0.1).all()
    assert (rolling_cpu(values, offsets, 20, "mean", 20)[49:] == 0.7).all()
    assert (rolling_cpu(values, offsets, 20, "std", 20)[49:] == 0.0).all()


def test_windows_stop_at_segment_boundaries() -> None:
    values = np.array([1.0, 2.0, 3.0, 100.0, 200.0])
    out = rolling_cpu(values, np.array([0, 3, 3, 5]), 2, "sum", 1)  # an empty segment between the two
    np.testing.assert_array_equal(out, [1.0, 3.0, 5.0, 100.0, 300.0])


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="stat"):
        rolling_cpu(np.ones(3), np.array([0, 3]), 2, "median", 1)
    with pytest.raises(ValueError, match="window"):
        rolling_cpu(np.ones(3), np.array([0, 3]), 0, "mean", 1)
    with pytest.raises(ValueError, match="offsets"):
        rolling_cpu(np.ones(3), np.array([0, 2]), 2, "mean", 1)


@settings(max_examples=60, deadline=None)
@given(panel=ragged_panels(), k=st.integers(-5, 5))
def test_shift_equals_pandas_groupby_shift(panel: tuple[np.ndarray, np.ndarray], k: int) -> None:
    values, groups = panel
    want = pd.Series(values).groupby(groups).shift(k).to_numpy()
    np.testing.assert_array_equal(shift_cpu(values, segment_offsets(np, groups), k), want)


@settings(max_examples=60, deadline=None)
@given(panel=ragged_panels(), op=st.sampled_from(["prod", "max"]))
def test_scan_equals_pandas_groupby_cumprod_and_cummax(panel: tuple[np.ndarray, np.ndarray], op: str) -> None:
    values, groups = panel
    values = 1.0 + values / np.nanmax(np.abs(values), initial=1.0) * 0.01 if op == "prod" else values  # no overflow
    grouped = pd.Series(values).groupby(groups)
    want = (grouped.cumprod() if op == "prod" else grouped.cummax()).to_numpy()
    np.testing.assert_array_equal(scan_cpu(values, segment_offsets(np, groups), op), want)
