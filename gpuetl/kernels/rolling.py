"""Segmented trailing-window statistics on the CPU: pandas' rolling semantics, per segment, parallel over segments.

`pandas.Series.groupby(...).rolling(n)` costs most of the CPU feature build in window bookkeeping (a Python
indexer per group, bounds arrays, a copy per call); the arithmetic is a few nanoseconds a row. This is the
same arithmetic as pandas' own loops (pandas/_libs/window/aggregations.pyx and its Numba mirror in
pandas 3): Kahan-compensated running sums with separate add/remove compensation and the `neg_ct` sign guards
of the mean, the run-of-equal-values rule that makes a flat window's mean exactly its value, Welford's
variance with the same compensation, recomputed over the window when its sum of squares loses its digits (so
a flat window's variance is exactly 0). A window that shares no row with the previous one (a new code)
starts afresh, as in pandas' groupby rolling, so the two agree bit for bit (tests/test_kernel_rolling.py).
The GPU backend keeps cuDF's groupby-rolling (gpuetl.backend.Backend.rolling).
"""

from __future__ import annotations

import math

import numba
import numpy as np

STATS = ("sum", "mean", "var", "std", "min", "max", "count")
# a sum of squares that fell below this share of its last value lost its digits: pandas then recomputes the window
INV_COND_TOL = float(np.finfo(np.float64).eps) * 1e3


def rolling_cpu(values: np.ndarray, offsets: np.ndarray, window: int, stat: str, min_periods: int) -> np.ndarray:
    """Trailing `window`-row `stat` of `values` within each segment [offsets[i], offsets[i+1]); float64, NaN where
    fewer than `min_periods` values are present (pandas' rule per stat). Shapes: values (n,), offsets (k + 1,)."""
    if stat not in STATS:
        raise ValueError(f"stat must be one of {', '.join(STATS)}, not {stat!r}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    vals = np.ascontiguousarray(values, dtype=np.float64)
    offs = np.ascontiguousarray(offsets, dtype=np.int64)
    if vals.ndim != 1 or offs.ndim != 1 or len(offs) == 0 or offs[0] != 0 or offs[-1] != len(vals):
        raise ValueError(f"offsets must run from 0 to len(values)={len(vals)}")
    out = np.empty(len(vals), dtype=np.float64)
    if stat in ("sum", "mean"):
        _sum_mean(vals, offs, window, int(min_periods), stat == "mean", out)
    elif stat in ("var", "std"):
        _var(vals, offs, window, max(int(min_periods), 1), stat == "std", out)
    elif stat == "count":
        _count(vals, offs, window, int(min_periods), out)
    else:
        _min_max(vals, offs, window, max(int(min_periods), 1), stat == "max", out)
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _sum_mean(vals: np.ndarray, offs: np.ndarray, window: int, minp: int, mean: bool, out: np.ndarray) -> None:
    for g in numba.prange(len(offs) - 1):
        s0, e0 = offs[g], offs[g + 1]
        nobs = 0
        neg_ct = 0
        sum_x = 0.0
        comp_add = 0.0
        comp_remove = 0.0
        same = 0
        prev = 0.0
        for i in range(s0, e0):
            lo = max(s0, i - window + 1)  # the window is rows [lo, i]
            if i == s0 or lo >= i:  # a window that shares no row with the last one starts afresh, as pandas'
                nobs = 0
                neg_ct = 0
                sum_x = 0.0
                comp_add = 0.0
                comp_remove = 0.0
                same = 0
                prev = vals[lo]
                first = lo
            else:
                first = i
                if lo > max(s0, i - window):  # row lo - 1 left the window
                    val = vals[lo - 1]
                    if val == val:
                        nobs -= 1
                        y = -val - comp_remove
                        t = sum_x + y
                        comp_remove = t - sum_x - y
                        sum_x = t
                        if math.copysign(1.0, val) < 0:
                            neg_ct -= 1
            for j in range(first, i + 1):
                val = vals[j]
                if val == val:
                    nobs += 1
                    y = val - comp_add
                    t = sum_x + y
                    comp_add = t - sum_x - y
                    sum_x = t
                    if math.copysign(1.0, val) < 0:
                        neg_ct += 1
                    if val == prev:
                        same += 1
                    else:
                        same = 1
                    prev = val
            if mean:
                if nobs >= minp and nobs > 0:
                    result = sum_x / nobs
                    if same >= nobs:
                        result = prev
                    elif (neg_ct == 0 and result < 0) or (neg_ct == nobs and result > 0):
                        result = 0.0  # all values of one sign: rounding may not cross 0
                else:
                    result = math.nan
            elif nobs == 0 and minp == 0:
                result = 0.0
            elif nobs >= minp:
                result = prev * nobs if same >= nobs else sum_x
            else:
                result = math.nan
            out[i] = result


@numba.njit(cache=True, nogil=True, inline="always")
def _add_var(val: float, state: np.ndarray) -> bool:
    """Welford with Kahan compensation (state: nobs, mean, ssqdm, compensation); True when the sum of squares
    lost most of its digits (pandas' catastrophic-cancellation test)."""
    if val != val:
        return False
    prev_m2 = state[2]
    state[0] += 1.0
    prev_mean = state[1] - state[3]
    y = val - state[3]
    t = y - state[1]
    state[3] = t + state[1] - y
    state[1] = state[1] + t / state[0]
    state[2] = state[2] + (val - prev_mean) * (val - state[1])
    return prev_m2 * INV_COND_TOL > state[2]


@numba.njit(cache=True, nogil=True, parallel=True)
def _var(vals: np.ndarray, offs: np.ndarray, window: int, minp: int, std: bool, out: np.ndarray) -> None:
    for g in numba.prange(len(offs) - 1):
        s0, e0 = offs[g], offs[g + 1]
        add = np.zeros(4)  # nobs, mean, ssqdm, the adds' compensation
        comp_remove = 0.0
        unstable = False
        for i in range(s0, e0):
            lo = max(s0, i - window + 1)
            recompute = i == s0 or lo >= i
            if not recompute:
                if lo > max(s0, i - window):  # row lo - 1 left the window
                    val = vals[lo - 1]
                    if val == val:
                        prev_m2 = add[2]
                        add[0] -= 1.0
                        if add[0] > 0:
                            prev_mean = add[1] - comp_remove
                            y = val - comp_remove
                            t = y - add[1]
                            comp_remove = t + add[1] - y
                            add[1] = add[1] - t / add[0]
                            add[2] = add[2] - (val - prev_mean) * (val - add[1])
                            if prev_m2 * INV_COND_TOL > add[2]:
                                unstable = True
                        else:
                            add[1] = 0.0
                            add[2] = 0.0
                            unstable = False
                if _add_var(vals[i], add):
                    unstable = True
            if recompute or unstable:
                add[:] = 0.0
                comp_remove = 0.0
                for j in range(lo, i + 1):
                    _add_var(vals[j], add)
                unstable = False
            nobs = add[0]
            result = add[2] / (nobs - 1.0) if nobs >= minp and nobs > 1 else math.nan  # ddof 1
            if std and result == result:
                result = math.sqrt(result) if result >= 0 else 0.0  # pandas' zsqrt
            out[i] = result


@numba.njit(cache=True, nogil=True, parallel=True)
def _count(vals: np.ndarray, offs: np.ndarray, window: int, minp: int, out: np.ndarray) -> None:
    for g in numba.prange(len(offs) - 1):
        s0, e0 = offs[g], offs[g + 1]
        nobs = 0
        for i in range(s0, e0):
            if i - window >= s0 and vals[i - window] == vals[i - window]:
                nobs -= 1
            if vals[i] == vals[i]:
                nobs += 1
            rows = min(i - s0 + 1, window)
            out[i] = nobs if rows >= minp else math.nan


@numba.njit(cache=True, nogil=True, parallel=True)
def _min_max(vals: np.ndarray, offs: np.ndarray, window: int, minp: int, is_max: bool, out: np.ndarray) -> None:
    for g in numba.prange(len(offs) - 1):
        s0, e0 = offs[g], offs[g + 1]
        queue = np.empty(max(e0 - s0, 1), dtype=np.int64)  # row numbers whose values fall (max) from head to tail
        head = 0
        tail = 0
        nobs = 0
        for i in range(s0, e0):
            first = i - window + 1
            if first - 1 >= s0 and vals[first - 1] == vals[first - 1]:
                nobs -= 1
            while head < tail and queue[head] < first:
                head += 1
            val = vals[i]
            if val == val:
                nobs += 1
                # later values at least as extreme make earlier ones useless (pandas' >= and <=)
                while tail > head and ((vals[queue[tail - 1]] <= val) if is_max else (vals[queue[tail - 1]] >= val)):
                    tail -= 1
                queue[tail] = i
                tail += 1
            out[i] = vals[queue[head]] if nobs >= minp and tail > head else math.nan


def shift_cpu(values: np.ndarray, offsets: np.ndarray, k: int) -> np.ndarray:
    """values[t - k] within each segment (k > 0 looks back, k < 0 forward), NaN where that row is in another."""
    out = np.empty(len(values), dtype=np.float64)
    _shift(np.ascontiguousarray(values, dtype=np.float64), np.ascontiguousarray(offsets, dtype=np.int64), int(k), out)
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _shift(vals: np.ndarray, offs: np.ndarray, k: int, out: np.ndarray) -> None:
    for g in numba.prange(len(offs) - 1):
        s0, e0 = offs[g], offs[g + 1]
        for i in range(s0, e0):
            src = i - k
            out[i] = vals[src] if s0 <= src < e0 else math.nan


def scan_cpu(values: np.ndarray, offsets: np.ndarray, op: str) -> np.ndarray:
    """Running product or maximum within each segment, skipping missing values (which stay NaN), as pandas'
    groupby `cumprod` / `cummax`."""
    if op not in ("prod", "max"):
        raise ValueError(f"op must be prod or max, not {op!r}")
    out = np.empty(len(values), dtype=np.float64)
    _scan(np.ascontiguousarray(values, dtype=np.float64), np.ascontiguousarray(offsets, dtype=np.int64),
          op == "max", out)
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _scan(vals: np.ndarray, offs: np.ndarray, is_max: bool, out: np.ndarray) -> None:
    for g in numba.prange(len(offs) - 1):
        acc = -math.inf if is_max else 1.0
        for i in range(offs[g], offs[g + 1]):
            val = vals[i]
            if val == val:
                acc = max(acc, val) if is_max else acc * val
                out[i] = acc
            else:
                out[i] = math.nan
