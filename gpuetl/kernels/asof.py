"""Segmented as-of join: the CPU twin (Numba) and the rules both implementations share.

cuDF has no `merge_asof`. Stage code hands `backend.kernels.segmented_asof` one integer group key and
one `on` value per row of each side, with the right side sorted by (key, on); it gets back, for every
left row, the index of the right row `pandas.merge_asof(left, right, on=..., by=..., direction=...,
allow_exact_matches=..., tolerance=...)` would attach to it, or -1 where pandas would leave NaN.

Semantics, as pandas':
- backward: the last right row of the same key with `on <= x` (`on < x` without exact matches); among
  right rows with equal `on`, the last one (pandas keeps the right frame's order for ties);
- forward: the first right row of the same key with `on >= x` (`on > x` without exact matches);
- tolerance: a match further than `tolerance` from x (inclusive bound) is no match;
- NaN in either `on` is an error (pandas: "Merge keys contain null values").

Unlike pandas, the left side need not be sorted: each left row is answered on its own by one binary
search for (key, x) over the lexicographically sorted (key, on) pairs of the right side. That is also
the GPU design (kernels/asof.cu): one thread per left row, O(log m) each, no dependence between rows, so
the work is balanced whatever the segment sizes (a few huge segments, e.g. 8 market sections, or
millions of tiny ones, e.g. one per code and period). Grouping several `by` columns into one key and
sorting the right side is the caller's job (gpuetl.enrich.asof does both).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numba
import numpy as np

Direction = Literal["backward", "forward"]


def check_inputs(xp: Any, left_by: Any, left_on: Any, right_by: Any, right_on: Any, direction: str,
                 tolerance: float | int | None) -> None:
    """Shapes, dtypes, NaNs, sortedness and options; the same errors on both backends."""
    for name, a in (("left_by", left_by), ("left_on", left_on), ("right_by", right_by), ("right_on", right_on)):
        if a.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if len(left_by) != len(left_on) or len(right_by) != len(right_on):
        raise ValueError(f"by and on must have one value per row: left {len(left_by)} vs {len(left_on)}, "
                         f"right {len(right_by)} vs {len(right_on)}")
    for name, a in (("left_by", left_by), ("right_by", right_by)):
        if a.dtype.kind not in "iu":
            raise TypeError(f"{name} must be an integer group key (factorize first), got {a.dtype}")
    if direction not in ("backward", "forward"):
        raise ValueError(f"direction must be 'backward' or 'forward', not {direction!r}")
    if tolerance is not None and not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    for side, a in (("left", left_on), ("right", right_on)):
        if a.dtype.kind == "f" and len(a) and bool(xp.isnan(a).any()):  # host-ok: one flag per side, an input check
            raise ValueError(f"Merge keys contain null values on {side} side (the 'on' column)")
    if len(right_on) > 1:
        step = right_by[1:] > right_by[:-1]
        step |= (right_by[1:] == right_by[:-1]) & (right_on[1:] >= right_on[:-1])
        if not bool(step.all()):
            raise ValueError("right rows must be sorted by (by, on) ascending; sort them first "
                             "(gpuetl.enrich.asof.asof_join does)")


def common_on(xp: Any, left_on: Any, right_on: Any) -> tuple[Any, Any]:
    """Both `on` columns as int64 when both are integers, else as float64."""
    dtype = xp.int64 if left_on.dtype.kind in "iu" and right_on.dtype.kind in "iu" else xp.float64
    return xp.ascontiguousarray(left_on, dtype=dtype), xp.ascontiguousarray(right_on, dtype=dtype)


def asof_cpu(left_by: np.ndarray, left_on: np.ndarray, right_by: np.ndarray, right_on: np.ndarray, *,
             direction: Direction = "backward", allow_exact_matches: bool = True,
             tolerance: float | int | None = None) -> np.ndarray:
    """Index into the right rows of each left row's as-of match (int64, -1 for none)."""
    check_inputs(np, left_by, left_on, right_by, right_on, direction, tolerance)
    lon, ron = common_on(np, left_on, right_on)
    lby = np.ascontiguousarray(left_by, dtype=np.int64)
    rby = np.ascontiguousarray(right_by, dtype=np.int64)
    out = np.empty(len(lby), dtype=np.int64)
    tol = lon.dtype.type(0 if tolerance is None else tolerance)
    _asof(lby, lon, rby, ron, direction == "backward", bool(allow_exact_matches), tolerance is not None, tol, out)
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _before(rby: np.ndarray, ron: np.ndarray, r: int, k: int, x: Any, upper: bool) -> bool:
    """Right row r comes before the left key (k, x): (by, on) <= (k, x) when `upper`, else < (k, x)."""
    b = rby[r]
    return b < k or (b == k and (ron[r] <= x if upper else ron[r] < x))


@numba.njit(cache=True, nogil=True, inline="always")
def _search(rby: np.ndarray, ron: np.ndarray, lo: int, hi: int, k: int, x: Any, upper: bool) -> int:
    """The first right row in [lo, hi) that does not come before (k, x), else hi (rows before lo come before)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if _before(rby, ron, mid, k, x, upper):
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True, parallel=True)
def _asof(lby: np.ndarray, lon: np.ndarray, rby: np.ndarray, ron: np.ndarray, backward: bool, exact: bool,
          use_tol: bool, tol: Any, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """The left rows in chunks, a thread each: a binary search for the chunk's first row, then (while the left
    keys rise, as a (Code, Date)-sorted panel's do) a galloping search forward from the previous match (steps
    1, 2, 4, ... then a binary search inside the last step), so a sorted left side costs about one pass over
    both sides, and a left side that jumps far ahead each row (a (Date, Code)-sorted one skips a code's whole
    history) costs a search per row, never a walk over the rows skipped; a left key below the one before it
    searches the whole right side again."""
    m = len(rby)
    n = len(lby)
    upper = backward == exact  # the first right row with (by, on) > (k, x), else the first with >= (k, x)
    chunks = max(1, min(n // 4096, 256))
    for c in numba.prange(chunks):
        i0 = n * c // chunks
        i1 = n * (c + 1) // chunks
        lo = 0
        for i in range(i0, i1):
            k = lby[i]
            x = lon[i]
            if i == i0 or k < lby[i - 1] or (k == lby[i - 1] and x < lon[i - 1]):
                lo = _search(rby, ron, 0, m, k, x, upper)
            elif lo < m and _before(rby, ron, lo, k, x, upper):
                step = 1  # gallop: lo is before (k, x); find a row that is not, then search between
                hi = lo + 1
                while hi < m and _before(rby, ron, hi, k, x, upper):
                    lo = hi + 1
                    step *= 2
                    hi = lo + step
                lo = _search(rby, ron, lo, min(hi, m), k, x, upper)
            j = lo - 1 if backward else lo
            miss = j < 0 or j >= m or rby[j] != k
            if not miss and use_tol:
                miss = x - ron[j] > tol if backward else ron[j] - x > tol
            out[i] = -1 if miss else j


def take_cpu(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """values[idx] as float64, NaN where idx is -1: one parallel pass (NumPy's where/clip/gather makes three)."""
    return _gathered(values, idx, np.float64, math.nan)


def through_cpu(table: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """table[idx] (int64) for an index with -1 for none, kept -1: one parallel pass."""
    return _gathered(table, idx, np.int64, -1)


def _gathered(values: np.ndarray, idx: np.ndarray, dtype: Any, fill: float) -> np.ndarray:
    out = np.empty(len(idx), dtype=dtype)
    _gather(np.ascontiguousarray(values, dtype=dtype), np.ascontiguousarray(idx, dtype=np.int64), out,
            out.dtype.type(fill))
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _gather(values: np.ndarray, idx: np.ndarray, out: np.ndarray, fill: Any) -> None:  # pragma: no cover
    for i in numba.prange(len(idx)):
        j = idx[i]
        out[i] = values[j] if j >= 0 else fill
