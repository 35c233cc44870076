"""Per-group statistics and ranks equal pandas' groupby (CPU twin; bit for bit but for the mean's last bits in
small groups), and GPU == CPU bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuetl.backend import Backend
from gpuetl.kernels import KernelSet
from gpuetl.kernels.groupstats import STATS, day_zscore_cpu, group_order, group_stats_cpu
from tests._testing import assert_backend_equal


@st.composite
def labelled_columns(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    """Columns of values in scattered groups (empty ones included) with NaN, ties, constant groups, +-inf."""
    n_seg = draw(st.integers(1, 12))
    n = draw(st.integers(0, 150))
    k = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    seg = rng.integers(0, n_seg, n)
    values = rng.standard_normal((k, n)) * draw(st.sampled_from([1e-3, 1.0, 1e6]))
    if draw(st.booleans()):  # on a grid: many ties
        values = np.round(values * 2) / 2
    values[rng.random((k, n)) < draw(st.sampled_from([0.0, 0.2, 0.7, 1.0]))] = np.nan
    if n and draw(st.booleans()):  # one group constant in one column (not a power of two: 1/3)
        values[0, seg == seg[0]] = 1.0 / 3.0
    if n and draw(st.booleans()):
        values[-1, rng.integers(0, n, 2)] = draw(st.sampled_from([np.inf, -np.inf]))
    return values, seg, n_seg


def pandas_reference(values: np.ndarray, seg: np.ndarray, n_seg: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stats (5, k, S), average ranks (k, n), pct ranks (k, n)) by pandas groupby, one column at a time."""
    k = values.shape[0]
    stats = np.empty((len(STATS), k, n_seg))
    rank, pct = np.empty_like(values), np.empty_like(values)
    for c in range(k):
        g = pd.Series(values[c]).groupby(seg)
        for q, name in enumerate(STATS):
            stats[q, c] = getattr(g, name)().reindex(range(n_seg)).to_numpy(dtype=float)
        rank[c], pct[c] = g.rank().to_numpy(), g.rank(pct=True).to_numpy()
    stats[0] = np.nan_to_num(stats[0])  # an empty segment counts 0 values
    return stats, rank, pct


@settings(max_examples=200, deadline=None)
@given(case=labelled_columns())
def test_cpu_twin_equals_pandas_groupby(case: tuple[np.ndarray, np.ndarray, int]) -> None:
    values, seg, n_seg = case
    stats, rank = group_stats_cpu(values, seg, n_seg, ranks=True)
    want, want_rank, want_pct = pandas_reference(values, seg, n_seg)
    assert_backend_equal(stats[[0, 2, 3, 4]], want[[0, 2, 3, 4]], tol="exact")
    # the mean is pandas' Kahan sum / count; pandas takes other summation paths for some small groups (a lone
    # group, a few values), where its mean can differ in the last bits
    assert_backend_equal(stats[1], want[1], tol="kahan")
    assert_backend_equal(rank, want_rank, tol="exact")
    assert_backend_equal(rank / stats[0][:, seg], want_pct, tol="exact")  # rank(pct=True) is rank / count


def test_mean_equals_pandas_bit_for_bit_on_full_days() -> None:
    """Days of hundreds of codes (the real shape): pandas' group mean is the same Kahan sum, to the last bit."""
    rng = np.random.default_rng(7)
    seg = np.repeat(np.arange(20), 400)[rng.permutation(8000)]
    values = rng.standard_normal((3, 8000)) * np.array([[1e-3], [1.0], [1e5]])
    values[rng.random(values.shape) < 0.1] = np.nan
    stats, _ = group_stats_cpu(values, seg, 20)
    assert_backend_equal(stats, pandas_reference(values, seg, 20)[0], tol="exact")


def test_hand_computed_day() -> None:
    # one group of rows 0, 2, 3, 5 (rows 1 and 4 in another): values 2, NaN, 5, 2 -> ranks 1.5, -, 3, 1.5
    values = np.array([[2.0, 9.0, np.nan, 5.0, 9.0, 2.0]])
    stats, rank = group_stats_cpu(values, np.array([0, 1, 0, 0, 1, 0]), 2, ranks=True)
    assert_backend_equal(stats[:, 0, 0], [3.0, 3.0, np.sqrt(3.0), 2.0, 5.0], tol="exact")
    assert_backend_equal(stats[:, 0, 1], [2.0, 9.0, 0.0, 9.0, 9.0], tol="exact")  # two equal values: no spread
    assert_backend_equal(rank[0], [1.5, 1.5, np.nan, 3.0, 1.5, 1.5], tol="exact")


def test_constant_group_has_exactly_zero_std_and_empty_ones_are_nan() -> None:
    values = np.full((1, 7), 0.1)
    stats, rank = group_stats_cpu(values, np.ones(7, dtype=np.int64), 2, ranks=True)
    assert stats[2, 0, 1] == 0.0
    assert_backend_equal(stats[1, 0, 1], 0.1, tol="rounding")
    assert stats[0, 0, 0] == 0 and np.isnan(stats[1:, 0, 0]).all()
    assert_backend_equal(rank[0], 4.0, tol="exact")
    stats, rank = group_stats_cpu(np.zeros((0, 7)), np.zeros(7, dtype=np.int64), 1, ranks=True)
    assert stats.shape == (5, 0, 1) and rank is not None and rank.shape == (0, 7)


def test_group_order_lists_each_group_in_row_order() -> None:
    order, offsets = group_order(np, np.array([2, 0, 2, 1, 0, 2]), 4)
    np.testing.assert_array_equal(order, [1, 4, 3, 0, 2, 5])
    np.testing.assert_array_equal(offsets, [0, 2, 3, 6, 6])


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="2-D"):
        group_stats_cpu(np.zeros(3), np.zeros(3, dtype=np.int64), 1)
    with pytest.raises(ValueError, match="one group per row"):
        group_stats_cpu(np.zeros((1, 3)), np.zeros(2, dtype=np.int64), 1)
    with pytest.raises(ValueError, match="labels must lie in"):
        group_stats_cpu(np.zeros((1, 3)), np.array([0, 1, 2]), 2)


def test_registered_in_the_kernel_set() -> None:
    assert KernelSet("cpu").group_stats is group_stats_cpu


@pytest.mark.gpu
def test_gpu_equals_cpu(gpu_backend: Backend) -> None:
    xp = gpu_backend.xp
    rng = np.random.default_rng(0)
    n_seg, n = 300, 60_000
    seg = rng.integers(0, n_seg, n)
    values = rng.standard_normal((6, n))
    values[1] = np.round(values[1] * 4) / 4
    values[rng.random(values.shape) < 0.1] = np.nan
    values[2, seg == 7] = 1.0 / 3.0
    want = group_stats_cpu(values, seg, n_seg, ranks=True)
    got = gpu_backend.kernels.group_stats(xp.asarray(values), xp.asarray(seg), n_seg, ranks=True)
    assert_backend_equal(got, want, tol="exact")  # the same loops, --fmad=false


def test_day_zscore_is_the_pandas_per_day_zscore_clipped() -> None:
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(30), rng.integers(1, 40, 30))
    x = rng.standard_normal(len(labels)) * 3
    x[rng.random(len(x)) < 0.1] = np.nan
    x[labels == 4] = 2.5  # a day without spread: NaN
    frame = pd.DataFrame({"d": labels, "x": x})
    by_day = frame.groupby("d")["x"]
    want = ((frame["x"] - by_day.transform("mean")) / by_day.transform("std")).clip(-3.0, 3.0)
    want[by_day.transform("std").fillna(0.0).to_numpy() <= 0] = np.nan
    stats, _ = group_stats_cpu(x[None, :], labels, 30)
    got = day_zscore_cpu(x, stats[1, 0], stats[2, 0], labels, 3.0)
    assert_backend_equal(got, want.to_numpy(), tol="rounding")
    assert np.isnan(got[labels == 4]).all() and (np.abs(got[~np.isnan(got)]) <= 3.0).all()
