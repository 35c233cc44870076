"""Per-group statistics of many columns in one pass: the CPU twin (Numba), and the shared input rules.

The cross-sectional transforms (per-day ranks, z-scores, rank-gauss) and the normalised view need, for
every column and every day: count, mean, std (ddof 1), min, max, and each row's rank within its day. As
frame-library groupbys that is four or five calls per column (about 840 per build); here it is one call
for many columns. Groups are given by a label per row (e.g. a panel's date index), so a (Code, Date)-sorted
panel is cut into days without moving its columns; within a group, rows count in increasing row order.

Semantics are pandas', step for step, so results agree to the last bit with `groupby(...).transform`:
- count: values that are not NaN;
- mean: Kahan-compensated sum / count (pandas' `group_mean`), NaN when count is 0;
- std: sqrt of Welford's M2 / (count - 1) (pandas' `group_var`), NaN when count < 2; exactly 0 when the
  group's finite min equals its max (a day-constant column has no spread, whatever the rounding);
- min, max: of the values that are not NaN, NaN when count is 0;
- rank (optional): the average rank of ties, 1-based, among the group's values that are not NaN
  (`groupby(...).rank(method="average")`); NaN stays NaN. `rank / count` is `rank(pct=True)`.
The CPU twin makes one sequential pass over the rows per column with a few accumulators per group (as pandas
does), and ranks each group's values after a radix sort of their bits, a column per thread; the CUDA version
(groupstats_cuda.py, kernels/groupstats.cu) walks each (column, group) in one thread,
in the same row order, so the two agree bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

STATS = ("count", "mean", "std", "min", "max")  # the rows of the stats output, in this order


def check_inputs(values: Any, labels: Any, n_groups: int) -> tuple[int, int]:
    """Validate shapes and labels shared by both implementations; returns (columns, rows)."""
    if values.ndim != 2:
        raise ValueError(f"values must be 2-D (columns x rows), got {values.ndim}-D")
    k, n = values.shape
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels must be 1-D with one group per row ({n} rows), got shape {labels.shape}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= n_groups):  # host-ok: two scalars
        raise ValueError(f"labels must lie in [0, n_groups={n_groups})")
    return k, n


def group_order(xp: Any, labels: Any, n_groups: int) -> tuple[Any, Any]:
    """(order, offsets): the rows group by group, each in increasing row order (group g is
    order[offsets[g]:offsets[g+1]])."""
    order = xp.argsort(labels, kind="stable")
    counts = xp.bincount(labels, minlength=n_groups)
    return order, xp.concatenate([xp.zeros(1, dtype=xp.int64), xp.cumsum(counts).astype(xp.int64)])


def group_stats_cpu(values: np.ndarray, labels: np.ndarray, n_groups: int, *,
                    ranks: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(stats, rank): stats (5, columns, groups) float64 in the order of STATS; rank (columns, rows) float64
    when `ranks`, else None."""
    k, n = check_inputs(values, labels, n_groups)
    vals = np.ascontiguousarray(values, dtype=np.float64)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    stats = np.empty((len(STATS), k, n_groups), dtype=np.float64)
    _stats(vals, labels, stats)
    if not ranks:
        return stats, None
    rank = np.empty((k, n))  # every row is written: its rank, or NaN
    _ranks(vals, *group_order(np, labels, n_groups), rank)
    return stats, rank


@numba.njit(cache=True, nogil=True, parallel=True)
def _stats(vals: np.ndarray, labels: np.ndarray, stats: np.ndarray) -> None:  # pragma: no cover - compiled
    k, n = vals.shape
    groups = stats.shape[2]
    for c in numba.prange(k):  # a column per thread
        nobs = np.zeros(groups, dtype=np.int64)
        acc = np.empty((6, groups))  # Kahan total, its compensation, Welford mean and M2, min, max
        acc[:4] = 0.0
        acc[4] = math.inf
        acc[5] = -math.inf
        for i in range(n):  # one sequential pass over the rows; each group's rows in row order
            v = vals[c, i]
            if v != v:
                continue
            g = labels[i]
            nobs[g] += 1
            y = v - acc[1, g]  # pandas' group_mean: Kahan summation, compensation reset when not finite
            t = acc[0, g] + y
            comp = t - acc[0, g] - y
            acc[1, g] = 0.0 if comp != comp else comp
            acc[0, g] = t
            old = acc[2, g]  # pandas' group_var: Welford
            acc[2, g] = old + (v - old) / nobs[g]
            acc[3, g] += (v - acc[2, g]) * (v - old)
            acc[4, g] = min(acc[4, g], v)
            acc[5, g] = max(acc[5, g], v)
        for g in range(groups):
            m, lo, hi = nobs[g], acc[4, g], acc[5, g]
            stats[0, c, g] = m
            stats[1, c, g] = acc[0, g] / m if m > 0 else math.nan
            if m < 2:
                stats[2, c, g] = math.nan
            elif lo == hi and abs(lo) < math.inf:  # no spread: exactly 0 (pandas would give NaN for infinities)
                stats[2, c, g] = 0.0
            else:
                stats[2, c, g] = math.sqrt(acc[3, g] / (m - 1))
            stats[3, c, g] = lo if m > 0 else math.nan
            stats[4, c, g] = hi if m > 0 else math.nan


@numba.njit(cache=True, nogil=True, parallel=True)
def _ranks(vals: np.ndarray, order: np.ndarray, offs: np.ndarray,
           rank: np.ndarray) -> None:  # pragma: no cover - compiled
    k = vals.shape[0]
    longest = 0
    for s in range(len(offs) - 1):
        longest = max(longest, offs[s + 1] - offs[s])
    sign = np.uint64(1) << np.uint64(63)
    for c in numba.prange(k):  # a column per thread
        keys = np.empty(longest, dtype=np.uint64)
        rows = np.empty(longest, dtype=np.int64)
        idx = np.empty(longest, dtype=np.int64)
        scratch = np.empty(longest, dtype=np.int64)
        counts = np.empty(256, dtype=np.int64)
        bits = np.empty(1, dtype=np.float64)
        as_int = bits.view(np.uint64)
        for s in range(len(offs) - 1):
            m = 0  # the group's values that are not NaN (NaN rows keep their NaN rank)
            for i in range(offs[s], offs[s + 1]):
                v = vals[c, order[i]]
                if v != v:
                    rank[c, order[i]] = math.nan
                else:
                    bits[0] = v + 0.0  # -0.0 ties with 0.0
                    u = as_int[0]
                    keys[m] = ~u if u & sign else u | sign  # unsigned keys in the floats' order
                    rows[m] = order[i]
                    m += 1
            _radix_argsort(keys, m, idx, scratch, counts)
            i = 0
            while i < m:  # a run of ties shares the mean of its 1-based ranks i+1 .. j+1
                j = i
                while j + 1 < m and keys[idx[j + 1]] == keys[idx[i]]:
                    j += 1
                avg = (i + j + 2) * 0.5
                for t in range(i, j + 1):
                    rank[c, rows[idx[t]]] = avg
                i = j + 1


@numba.njit(cache=True, nogil=True)
def _radix_argsort(keys: np.ndarray, m: int, idx: np.ndarray, scratch: np.ndarray,
                   counts: np.ndarray) -> None:  # pragma: no cover - compiled
    """idx[:m] = the order of keys[:m] (LSD radix, a byte a pass; a byte all keys share is skipped): a day's
    few thousand values sort in a fraction of a comparison sort's time."""
    for t in range(m):
        idx[t] = t
    for shift in range(0, 64, 8):
        counts[:] = 0
        for t in range(m):
            counts[(keys[idx[t]] >> np.uint64(shift)) & np.uint64(255)] += 1
        if counts.max() == m:
            continue
        total = 0
        for b in range(256):
            c = counts[b]
            counts[b] = total
            total += c
        for t in range(m):
            d = (keys[idx[t]] >> np.uint64(shift)) & np.uint64(255)
            scratch[counts[d]] = idx[t]
            counts[d] += 1
        idx[:m] = scratch[:m]


def day_zscore_cpu(x: np.ndarray, mean: np.ndarray, std: np.ndarray, label: np.ndarray, clip: float) -> np.ndarray:
    """(x - mean[label]) / std[label], NaN where that std is not > 0, clipped to [-clip, clip]: the per-day z-score
    in one parallel pass (NumPy's version makes five temporaries of the column). Shapes: x, label (n,);
    mean, std (groups,)."""
    out = np.empty(len(x), dtype=np.float64)
    _day_zscore(np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(mean, dtype=np.float64),
                np.ascontiguousarray(std, dtype=np.float64), np.ascontiguousarray(label, dtype=np.int64),
                float(clip), out)
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _day_zscore(x: np.ndarray, mean: np.ndarray, std: np.ndarray, label: np.ndarray, clip: float,
                out: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in numba.prange(len(x)):
        s = std[label[i]]
        if s > 0:
            z = (x[i] - mean[label[i]]) / s
            out[i] = min(max(z, -clip), clip) if z == z else z
        else:
            out[i] = math.nan
