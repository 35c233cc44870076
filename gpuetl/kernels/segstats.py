"""Per-segment statistics of many columns in one pass: the CPU twin (Numba), and the shared input rules.

The cross-sectional transforms (per-day ranks, z-scores, rank-gauss) and the normalised view need, for
every column and every day: count, mean, std (ddof 1), min, max, and each row's rank within its day. As
frame-library groupbys that is four or five calls per column (about 840 per build); here it is one call
for many columns. Rows of a segment need not be contiguous: `order` lists the rows segment by segment
(segment s is order[offsets[s]:offsets[s+1]]), so a (Code, Date)-sorted panel is cut into days without
moving its columns.

Semantics are pandas', step for step, so results agree to the last bit with `groupby(...).transform`:
- count: values that are not NaN;
- mean: Kahan-compensated sum / count (pandas' `group_mean`), NaN when count is 0;
- std: sqrt of Welford's M2 / (count - 1) (pandas' `group_var`), NaN when count < 2; exactly 0 when the
  segment's finite min equals its max (a day-constant column has no spread, whatever the rounding);
- min, max: of the values that are not NaN, NaN when count is 0;
- rank (optional): the average rank of ties, 1-based, among the segment's values that are not NaN
  (`groupby(...).rank(method="average")`); NaN stays NaN. `rank / count` is `rank(pct=True)`.
The CUDA version (segstats_cuda.py, kernels/segstats.cu) runs the same loops, one thread per (column, segment).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

STATS = ("count", "mean", "std", "min", "max")  # the rows of the stats output, in this order


def check_inputs(values: Any, order: Any, offsets: Any) -> tuple[int, int, int]:
    """Validate shapes shared by both implementations; returns (columns, rows, segments)."""
    if values.ndim != 2:
        raise ValueError(f"values must be 2-D (columns x rows), got {values.ndim}-D")
    if order.ndim != 1 or offsets.ndim != 1:
        raise ValueError("order and offsets must be 1-D")
    k, n = values.shape
    if len(order) != n:
        raise ValueError(f"order must list every row once: {len(order)} entries for {n} rows")
    if len(offsets) == 0 or int(offsets[0]) != 0 or int(offsets[-1]) != n:
        raise ValueError(f"offsets must run from 0 to the number of rows {n}")
    return k, n, len(offsets) - 1


def segmented_stats_cpu(values: np.ndarray, order: np.ndarray, offsets: np.ndarray, *,
                        ranks: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(stats, rank): stats (5, columns, segments) float64 in the order of STATS; rank (columns, rows)
    float64 in row order when `ranks`, else None."""
    k, n, n_seg = check_inputs(values, order, offsets)
    vals = np.ascontiguousarray(values, dtype=np.float64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    offs = np.ascontiguousarray(offsets, dtype=np.int64)
    stats = np.empty((len(STATS), k, n_seg), dtype=np.float64)
    _stats(vals, order, offs, stats)
    if not ranks:
        return stats, None
    rank = np.full((k, n), np.nan)
    _ranks(vals, order, offs, rank)
    return stats, rank


@numba.njit(cache=True, nogil=True)
def _stats(vals: np.ndarray, order: np.ndarray, offs: np.ndarray,
           stats: np.ndarray) -> None:  # pragma: no cover - compiled
    k = vals.shape[0]
    for c in range(k):
        for s in range(len(offs) - 1):
            nobs = 0
            total = 0.0
            comp = 0.0
            mean = 0.0
            m2 = 0.0
            lo = math.inf
            hi = -math.inf
            for i in range(offs[s], offs[s + 1]):
                v = vals[c, order[i]]
                if v != v:
                    continue
                nobs += 1
                y = v - comp  # pandas' group_mean: Kahan summation, compensation reset when not finite
                t = total + y
                comp = t - total - y
                if comp != comp:
                    comp = 0.0
                total = t
                old = mean  # pandas' group_var: Welford
                mean += (v - old) / nobs
                m2 += (v - mean) * (v - old)
                lo = min(lo, v)
                hi = max(hi, v)
            stats[0, c, s] = nobs
            stats[1, c, s] = total / nobs if nobs > 0 else math.nan
            if nobs < 2:
                stats[2, c, s] = math.nan
            elif lo == hi and abs(lo) < math.inf:  # no spread: exactly 0 (pandas would give NaN for infinities)
                stats[2, c, s] = 0.0
            else:
                stats[2, c, s] = math.sqrt(m2 / (nobs - 1))
            stats[3, c, s] = lo if nobs > 0 else math.nan
            stats[4, c, s] = hi if nobs > 0 else math.nan


@numba.njit(cache=True, nogil=True)
def _ranks(vals: np.ndarray, order: np.ndarray, offs: np.ndarray,
           rank: np.ndarray) -> None:  # pragma: no cover - compiled
    k = vals.shape[0]
    longest = 0
    for s in range(len(offs) - 1):
        longest = max(longest, offs[s + 1] - offs[s])
    seg = np.empty(longest)
    rows = np.empty(longest, dtype=np.int64)
    for s in range(len(offs) - 1):
        for c in range(k):
            m = 0  # the segment's values that are not NaN (NaN rows keep their NaN rank)
            for i in range(offs[s], offs[s + 1]):
                v = vals[c, order[i]]
                if v == v:
                    seg[m] = v
                    rows[m] = order[i]
                    m += 1
            idx = np.argsort(seg[:m])  # ties need no stable order: a run of ties shares one rank
            i = 0
            while i < m:
                j = i
                while j + 1 < m and seg[idx[j + 1]] == seg[idx[i]]:
                    j += 1
                avg = (i + j + 2) * 0.5  # the mean of the 1-based ranks i+1 .. j+1
                for t in range(i, j + 1):
                    rank[c, rows[idx[t]]] = avg
                i = j + 1
