"""Per-segment statistics and ranks equal pandas' groupby (CPU twin; bit for bit but for the mean's last bits in
small groups), and GPU == CPU bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuetl.backend import Backend
from gpuetl.kernels import KernelSet
from gpuetl.kernels.segstats import STATS, segmented_stats_cpu


def segments(seg: np.ndarray, n_seg: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, offsets) of rows labelled by segment (rows of a segment need not be adjacent)."""
    order = np.argsort(seg, kind="stable")
    return order, np.concatenate([[0], np.cumsum(np.bincount(seg, minlength=n_seg))]).astype(np.int64)


@st.composite
def labelled_columns(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    """Columns of values in scattered segments (empty ones included) with NaN, ties, constant segments, +-inf."""
    n_seg = draw(st.integers(1, 12))
    n = draw(st.integers(0, 150))
    k = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    seg = rng.integers(0, n_seg, n)
    values = rng.standard_normal((k, n)) * draw(st.sampled_from([1e-3, 1.0, 1e6]))
    if draw(st.booleans()):  # on a grid: many ties
        values = np.round(values * 2) / 2
    values[rng.random((k, n)) < draw(st.sampled_from([0.0, 0.2, 0.7, 1.0]))] = np.nan
    if n and draw(st.booleans()):  # one segment constant in one column (not a power of two: 1/3)
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
    stats, rank = segmented_stats_cpu(values, *segments(seg, n_seg), ranks=True)
    want, want_rank, want_pct = pandas_reference(values, seg, n_seg)
    np.testing.assert_array_equal(stats[[0, 2, 3, 4]], want[[0, 2, 3, 4]])
    # the mean is pandas' Kahan sum / count; pandas takes other summation paths for some small groups (a lone
    # group, a few values), where its mean can differ in the last bits
    np.testing.assert_allclose(stats[1], want[1], rtol=1e-15, atol=0)
    np.testing.assert_array_equal(rank, want_rank)
    np.testing.assert_array_equal(rank / stats[0][:, seg], want_pct)  # rank(pct=True) is rank / count


def test_mean_equals_pandas_bit_for_bit_on_full_days() -> None:
    """Days of hundreds of codes (the real shape): pandas' group mean is the same Kahan sum, to the last bit."""
    rng = np.random.default_rng(7)
    seg = np.repeat(np.arange(20), 400)[rng.permutation(8000)]
    values = rng.standard_normal((3, 8000)) * np.array([[1e-3], [1.0], [1e5]])
    values[rng.random(values.shape) < 0.1] = np.nan
    stats, _ = segmented_stats_cpu(values, *segments(seg, 20))
    np.testing.assert_array_equal(stats, pandas_reference(values, seg, 20)[0])


def test_hand_computed_day() -> None:
    # one segment of rows 0, 2, 3, 5 (rows 1 and 4 in another): values 2, NaN, 5, 2 -> ranks 1.5, -, 3, 1.5
    values = np.array([[2.0, 9.0, np.nan, 5.0, 9.0, 2.0]])
    seg = np.array([0, 1, 0, 0, 1, 0])
    stats, rank = segmented_stats_cpu(values, *segments(seg, 2), ranks=True)
    np.testing.assert_array_equal(stats[:, 0, 0], [3.0, 3.0, np.sqrt(3.0), 2.0, 5.0])
    np.testing.assert_array_equal(stats[:, 0, 1], [2.0, 9.0, 0.0, 9.0, 9.0])  # two equal values: no spread
    np.testing.assert_array_equal(rank[0], [1.5, 1.5, np.nan, 3.0, 1.5, 1.5])


def test_constant_segment_has_exactly_zero_std_and_empty_ones_are_nan() -> None:
    values = np.full((1, 7), 0.1)
    stats, rank = segmented_stats_cpu(values, np.arange(7), np.array([0, 0, 7]), ranks=True)
    assert stats[2, 0, 1] == 0.0 and stats[1, 0, 1] == pytest.approx(0.1)
    assert stats[0, 0, 0] == 0 and np.isnan(stats[1:, 0, 0]).all()
    np.testing.assert_array_equal(rank[0], np.full(7, 4.0))
    stats, rank = segmented_stats_cpu(np.zeros((0, 7)), np.arange(7), np.array([0, 7]), ranks=True)
    assert stats.shape == (5, 0, 1) and rank is not None and rank.shape == (0, 7)


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="2-D"):
        segmented_stats_cpu(np.zeros(3), np.arange(3), np.array([0, 3]))
    with pytest.raises(ValueError, match="every row once"):
        segmented_stats_cpu(np.zeros((1, 3)), np.arange(2), np.array([0, 3]))
    with pytest.raises(ValueError, match="offsets must run"):
        segmented_stats_cpu(np.zeros((1, 3)), np.arange(3), np.array([0, 2]))


def test_registered_in_the_kernel_set() -> None:
    assert KernelSet("cpu").segmented_stats is segmented_stats_cpu


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
    order, offsets = segments(seg, n_seg)
    want = segmented_stats_cpu(values, order, offsets, ranks=True)
    got = gpu_backend.kernels.segmented_stats(xp.asarray(values), xp.asarray(order), xp.asarray(offsets), ranks=True)
    np.testing.assert_array_equal(xp.asnumpy(got[0]), want[0])  # the same loops, --fmad=false
    np.testing.assert_array_equal(xp.asnumpy(got[1]), want[1])
