"""kNN graph kernels: the shrunk, thresholded correlation from covariances, and the per-row top-k.

CPU twins (Numba) of kernels/knn.cu, with the same rules and the same arithmetic order, so that on the same
inputs the two backends agree bit for bit (the GPU module is compiled with --fmad=false for that):

- `shrunk_correlation(s, inv, valid, target, ...)` turns a batch of covariance matrices s (B, n, n) into
  the candidate edge weights, in place. Each pair i < j is computed once and written to both (i, j) and
  (j, i), so the result is exactly symmetric whatever the matmul that made s did with the last bits:
  ``rho = ((0.5 * (s[i,j] + s[j,i])) * inv[i]) * inv[j]``, ``sh = keep * rho + gamma * target[b]``
  (keep = 1 - gamma), rounded to the grid 2^-bits, kept when both codes are valid and ``sh >= threshold``,
  else -inf; the diagonal is -inf. The grid makes near-equal weights exactly equal, so tie-breaking does
  not depend on the BLAS that computed s.
- `row_topk(x, k)`: per row, the k largest entries in the order (value descending, column ascending);
  -inf and NaN are never selected; missing slots are index -1, value -inf.

The CPU's graph path does not use these two on dense (B, n, n) matrices: those passes over 2 x n^2 entries per
day (and the union, adjacency and weight matrices around them) cost more than the covariance matmul itself.
It runs one day at a time instead, with the same results bit for bit:

- `gram_upper(x, out)`: ``x.T @ x`` by numpy's own OpenBLAS dsyrk, the call np.matmul makes, without numpy's
  copy of the upper triangle into the lower one (over a third of np.matmul's time at n = 2,000).
- `day_knn_cpu(s, inv, valid, target, ...)`: from the upper triangle of s straight to the day's sorted union
  edges: each pair's weight computed once, as `shrunk_correlation` does, and offered to the top-k of both its
  ends in increasing column order, as `row_topk` scans them.
- `edge_degrees_cpu` / `edge_return_sums_cpu`: the graph features' sums over the edge list.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numba
import numpy as np

MAX_K = 64  # the GPU kernel keeps k candidates per lane in registers/local memory
TILE = 64


def check_shrunk_inputs(s: Any, inv: Any, valid: Any, target: Any, gamma: float, bits: int) -> None:
    if s.ndim != 3 or s.shape[1] != s.shape[2]:
        raise ValueError(f"s must be (batch, n, n), got shape {s.shape}")
    if str(s.dtype) != "float64" or not s.flags.c_contiguous:
        raise ValueError("s must be a C-contiguous float64 array (it is overwritten in place)")
    b, n = s.shape[0], s.shape[1]
    if inv.shape != (b, n) or valid.shape != (b, n) or target.shape != (b,):
        raise ValueError(f"inv and valid must be ({b}, {n}) and target ({b},); got {inv.shape}, {valid.shape}, "
                         f"{target.shape}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not 1 <= bits <= 52:
        raise ValueError(f"bits must be in [1, 52] (the grid must be exact in float64), got {bits}")


def check_topk_inputs(x: Any, k: int) -> None:
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (rows, cols), got shape {x.shape}")
    if str(x.dtype) != "float64":
        raise ValueError(f"x must be float64, got {x.dtype}")
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be in [1, {MAX_K}], got {k}")
    if x.shape[1] >= 2**31:
        raise ValueError("column indices must fit int32")


def shrunk_correlation_cpu(s: np.ndarray, inv: np.ndarray, valid: np.ndarray, target: np.ndarray, *,
                           gamma: float, threshold: float, bits: int) -> np.ndarray:
    """Covariances s (B, n, n) -> shrunk, gridded, thresholded correlations, in place; returns s."""
    check_shrunk_inputs(s, inv, valid, target, gamma, bits)
    _shrunk_correlation(s, np.ascontiguousarray(inv, dtype=np.float64),
                        np.ascontiguousarray(valid, dtype=np.uint8), np.ascontiguousarray(target, dtype=np.float64),
                        1.0 - float(gamma), float(gamma), float(threshold), float(2.0 ** bits))
    return s


def row_topk_cpu(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of x: indices (int32, -1 where fewer than k candidates) and values of the k largest."""
    check_topk_inputs(x, k)
    rows = x.shape[0]
    idx = np.empty((rows, k), dtype=np.int32)
    val = np.empty((rows, k), dtype=np.float64)
    _row_topk(np.ascontiguousarray(x), int(k), idx, val)
    return idx, val


@numba.njit(parallel=True, cache=True, nogil=True)
def _shrunk_correlation(s: np.ndarray, inv: np.ndarray, valid: np.ndarray, target: np.ndarray, keep: float,
                        gamma: float, threshold: float, scale: float) -> None:  # pragma: no cover - compiled
    nb, n = s.shape[0], s.shape[1]
    nt = (n + TILE - 1) // TILE
    for job in numba.prange(nb * nt):
        b = job // nt
        i0 = (job % nt) * TILE
        t = target[b]
        for j0 in range(i0, n, TILE):
            for i in range(i0, min(i0 + TILE, n)):
                for j in range(max(j0, i), min(j0 + TILE, n)):
                    if i == j:
                        s[b, i, i] = -np.inf
                        continue
                    v = -np.inf
                    if valid[b, i] and valid[b, j]:
                        h = 0.5 * (s[b, i, j] + s[b, j, i])
                        h = h * inv[b, i]
                        h = h * inv[b, j]
                        sh = keep * h + gamma * t
                        q = np.rint(sh * scale) / scale
                        if q >= threshold:
                            v = q
                    s[b, i, j] = v
                    s[b, j, i] = v


@numba.njit(parallel=True, cache=True, nogil=True)
def _row_topk(x: np.ndarray, k: int, idx: np.ndarray, val: np.ndarray) -> None:  # pragma: no cover - compiled
    rows, cols = x.shape
    for r in numba.prange(rows):
        cnt = 0
        for c in range(cols):
            v = x[r, c]
            if not v > -np.inf:  # -inf and NaN
                continue
            if cnt == k and not v > val[r, k - 1]:  # ties keep the smaller column (seen first)
                continue
            p = cnt if cnt < k else k - 1
            while p > 0 and v > val[r, p - 1]:
                val[r, p] = val[r, p - 1]
                idx[r, p] = idx[r, p - 1]
                p -= 1
            val[r, p] = v
            idx[r, p] = c
            if cnt < k:
                cnt += 1
        for p in range(cnt, k):
            idx[r, p] = -1
            val[r, p] = -np.inf


# ---------------------------------------------------------------------------------------------------------------
# The CPU graph path: one day at a time from the upper triangle of its covariance matrix, straight to sorted edges.
# ---------------------------------------------------------------------------------------------------------------


class _NumpyBlas:
    """numpy's own OpenBLAS (the wheel's scipy-openblas64), through ctypes: the cblas_dsyrk that `np.matmul` calls
    for ``x.T @ x``, and its thread count. Found only where numpy bundles it; else `blas()` is None."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.dsyrk = lib.scipy_cblas_dsyrk64_
        self.dsyrk.restype = None
        self.dsyrk.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
                               ctypes.c_double, ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_void_p,
                               ctypes.c_int64]
        self.get_threads = lib.scipy_openblas_get_num_threads64_
        self.get_threads.restype = ctypes.c_int
        self.get_threads.argtypes = []
        self.set_threads = lib.scipy_openblas_set_num_threads64_
        self.set_threads.restype = None
        self.set_threads.argtypes = [ctypes.c_int]


@functools.cache
def blas() -> _NumpyBlas | None:
    """The bundled OpenBLAS when it is there and its dsyrk gives np.matmul's bits on a test matrix; else None."""
    libs = sorted((Path(np.__file__).parent.parent / "numpy.libs").glob("libscipy_openblas64_*.so*"))
    if not libs:
        return None
    try:
        found = _NumpyBlas(ctypes.CDLL(str(libs[0])))
    except (OSError, AttributeError):
        return None
    x = np.random.default_rng(0).standard_normal((37, 203))
    got = np.zeros((203, 203))
    _syrk(found, x, got)
    want = np.matmul(x.T, x)
    upper = np.triu_indices(203)
    return found if np.array_equal(got[upper], want[upper]) else None


def _syrk(lib: _NumpyBlas, x: np.ndarray, out: np.ndarray, beta: float = 0.0) -> None:
    # np.matmul(x.T, x) for a C-contiguous x is cblas_dsyrk(RowMajor, Upper, Trans, n, w, 1, x, n, 0, out, n)
    w, n = x.shape
    lib.dsyrk(101, 121, 112, n, w, 1.0, x.ctypes.data, n, beta, out.ctypes.data, n)


def gram_upper(x: np.ndarray, out: np.ndarray, zeroed: bool = False) -> np.ndarray:
    """``x.T @ x`` into out (n, n), bit for bit as np.matmul computes it, but only the upper triangle (i <= j):
    the lower one is left as it was (np.matmul, where numpy's BLAS is not found, fills both).

    `zeroed`: the caller guarantees out's upper triangle is +0.0 (`day_knn_cpu(..., clear=True)` leaves it so),
    and BLAS adds to it (beta 1) instead of zeroing it first (beta 0): the same sums (0 + a is a) without
    OpenBLAS's pass that clears the triangle, a fifth of the call."""
    if x.ndim != 2 or out.shape != (x.shape[1], x.shape[1]) or out.dtype != np.float64 or x.dtype != np.float64:
        raise ValueError(f"x must be (w, n) float64 and out (n, n) float64, got {x.shape} and {out.shape}")
    if not (x.flags.c_contiguous and out.flags.c_contiguous):
        raise ValueError("x and out must be C-contiguous")
    lib = blas()
    if lib is None:
        np.matmul(x.T, x, out=out)
    else:
        _syrk(lib, x, out, 1.0 if zeroed else 0.0)
    return out


_blas_lock = threading.Lock()
_blas_users = [0, 0]  # callers inside single_threaded_blas, and the thread count the first one found


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """numpy's BLAS on one thread inside (our own threads run the days side by side), restored when the last
    caller inside leaves (OpenBLAS's count is process-wide)."""
    lib = blas()
    if lib is None:
        yield
        return
    with _blas_lock:
        if _blas_users[0] == 0:
            _blas_users[1] = lib.get_threads()
            lib.set_threads(1)
        _blas_users[0] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users[0] -= 1
            if _blas_users[0] == 0:
                lib.set_threads(_blas_users[1])


def day_knn_cpu(s: np.ndarray, inv: np.ndarray, valid: np.ndarray, target: float, *, gamma: float,
                threshold: float, bits: int, k: int, clear: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One day's kNN graph from the upper triangle of its covariance matrix s (n, n): the union edges (src, dst,
    weight; src < dst, sorted), as `shrunk_correlation` + `row_topk` + the union make them, bit for bit.

    s must be symmetric where it was computed (a Gram matrix from `gram_upper`, or np.matmul's): the lower
    triangle is never read. Each pair's weight is computed once (the formula of `shrunk_correlation`, whose mean
    of s[i, j] and s[j, i] is s[i, j] itself here) and offered to the top-k of both ends; every top-k sees its
    candidates in increasing column order, as `row_topk`'s scan does, so ties resolve alike. `clear` zeroes the
    upper triangle of s as it is read (for the next `gram_upper(..., zeroed=True)`, while the rows are in cache).
    """
    n = s.shape[0]
    if s.ndim != 2 or s.shape[1] != n or s.dtype != np.float64 or not s.flags.c_contiguous:
        raise ValueError(f"s must be a C-contiguous (n, n) float64 array, got {s.shape} {s.dtype}")
    if inv.shape != (n,) or valid.shape != (n,):
        raise ValueError(f"inv and valid must be ({n},); got {inv.shape}, {valid.shape}")
    check_shrunk_inputs(s[None], inv[None], valid[None], np.zeros(1), gamma, bits)
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be in [1, {MAX_K}], got {k}")
    return _day_knn(s, np.ascontiguousarray(inv, dtype=np.float64), np.ascontiguousarray(valid, dtype=np.uint8),
                    float(target), 1.0 - float(gamma), float(gamma), float(threshold), float(2.0 ** bits), int(k),
                    bool(clear))


def offdiagonal_mean_cpu(s: np.ndarray, inv: np.ndarray, valid: np.ndarray) -> float:
    """The mean off-diagonal correlation over the valid codes, from the upper triangle of s (the
    `constant_correlation` target; 0 with fewer than two valid codes)."""
    return float(_offdiagonal_mean(s, np.ascontiguousarray(inv, dtype=np.float64),
                                   np.ascontiguousarray(valid, dtype=np.uint8)))


@numba.njit(cache=True, nogil=True)
def _offdiagonal_mean(s: np.ndarray, inv: np.ndarray, valid: np.ndarray) -> float:  # pragma: no cover - compiled
    n = s.shape[0]
    total = 0.0
    nodes = 0
    for i in range(n):
        if not valid[i]:
            continue
        nodes += 1
        acc = 0.0
        for j in range(i + 1, n):
            acc += s[i, j] * inv[j]  # inv is 0 for a code that is not valid
        total += acc * inv[i]
    if nodes < 2:
        return 0.0
    return 2.0 * total / (nodes * (nodes - 1.0))


@numba.njit(cache=True, nogil=True, inline="always")
def _offer(val: np.ndarray, idx: np.ndarray, cnt: np.ndarray, kth: np.ndarray, r: int, c: int, v: float,
           k: int) -> None:  # pragma: no cover - compiled
    # _row_topk's insertion of a candidate that beats the row's k-th value kth[r] (-inf until k are kept);
    # columns arrive in increasing order, so a tie with a kept value loses, as in _row_topk
    have = cnt[r]
    p = have if have < k else k - 1
    while p > 0 and v > val[r, p - 1]:
        val[r, p] = val[r, p - 1]
        idx[r, p] = idx[r, p - 1]
        p -= 1
    val[r, p] = v
    idx[r, p] = c
    if have < k:
        have += 1
        cnt[r] = have
    if have == k:
        kth[r] = val[r, k - 1]


@numba.njit(cache=True, nogil=True)
def _day_knn(s: np.ndarray, inv: np.ndarray, valid: np.ndarray, target: float, keep: float, gamma: float,
             threshold: float, scale: float, k: int,
             clear: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    n = s.shape[0]
    val = np.empty((n, k))
    idx = np.empty((n, k), dtype=np.int64)
    cnt = np.zeros(n, dtype=np.int64)
    kth = np.full(n, -np.inf)  # each row's k-th kept value, -inf while it keeps fewer: a candidate must beat it
    row = np.empty(n)
    shift = gamma * target
    unit = 1.0 / scale  # scale is a power of 2: q * unit is q / scale exactly, and a multiply vectorises better
    hits = np.empty(n, dtype=np.int64)
    for i in range(n):
        if not valid[i]:
            if clear:
                s[i, i:] = 0.0
            continue
        vi = inv[i]
        floor = kth[i]  # row i's k-th value now; it only rises while the row is scanned
        for j in range(i + 1, n):  # the pair's weight, as _shrunk_correlation computes it (i < j)
            h = s[i, j]
            h = 0.5 * (h + h)
            h = h * vi
            h = h * inv[j]
            q = np.rint((keep * h + shift) * scale) * unit
            # a candidate that may enter row i's top-k or row j's (kth[j] moves only at j's own offer below)
            hit = (valid[j] != 0) & (q >= threshold) & ((q > floor) | (q > kth[j]))
            row[j] = q if hit else -np.inf
        if clear:
            s[i, i:] = 0.0
        m = 0
        for j in range(i + 1, n):  # the hits' columns, in order (branch-free)
            hits[m] = j
            m += row[j] > -np.inf
        for t in range(m):
            j = hits[t]
            q = row[j]
            if q > kth[i]:
                _offer(val, idx, cnt, kth, i, j, q, k)
            if q > kth[j]:
                _offer(val, idx, cnt, kth, j, i, q, k)
    # union: edge {i, j} when either end kept the other; bucket by the smaller end, then sort and dedup
    start = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        for p in range(cnt[i]):
            start[min(i, idx[i, p]) + 1] += 1
    for i in range(n):
        start[i + 1] += start[i]
    fill = start[:-1].copy()
    hi = np.empty(start[n], dtype=np.int64)
    wt = np.empty(start[n])
    for i in range(n):
        for p in range(cnt[i]):
            j = idx[i, p]
            a = min(i, j)
            hi[fill[a]] = max(i, j)
            wt[fill[a]] = val[i, p]
            fill[a] += 1
    src = np.empty(start[n], dtype=np.int64)
    dst = np.empty(start[n], dtype=np.int64)
    weight = np.empty(start[n])
    e = 0
    for a in range(n):
        lo, top = start[a], start[a + 1]
        first = e
        for t in range(lo, top):  # insertion into the sorted run dst[first:e], dropping a pair seen twice
            b, w = hi[t], wt[t]
            p = e
            while p > first and dst[p - 1] > b:
                p -= 1
            if p > first and dst[p - 1] == b:
                continue
            for q in range(e, p, -1):
                dst[q] = dst[q - 1]
                weight[q] = weight[q - 1]
            dst[p] = b
            weight[p] = w
            src[e] = a
            e += 1
    return src[:e], dst[:e], weight[:e]


def edge_degrees_cpu(edge_batch: np.ndarray, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, nb: int,
                     n: int) -> tuple[np.ndarray, np.ndarray]:
    """Degree and weighted degree (nb, n) of every (day, node) from a batch's edges (sorted by day), counting
    both ends of each edge; days in parallel."""
    degree, wdegree = np.zeros((nb, n)), np.zeros((nb, n))
    _edge_degrees(_day_bounds(edge_batch, nb), _int64(src), _int64(dst), np.asarray(weight, dtype=np.float64),
                  degree, wdegree)
    return degree, wdegree


def edge_return_sums_cpu(edge_batch: np.ndarray, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n: int,
                         rows: np.ndarray, inside: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each (day b, date k, node i) of a batch's edges (sorted by day): ``sum_j w_ij r[rows[b, k], j]`` and
    ``sum_j w_ij`` over the neighbours j with a finite return that date (B, span, n each; 0 where inside[b, k] is
    False). Days in parallel, each day's sums in edge order."""
    nb, span = rows.shape
    num, den = np.zeros((nb, span, n)), np.zeros((nb, span, n))
    _edge_return_sums(_day_bounds(edge_batch, nb), _int64(src), _int64(dst), np.asarray(weight, dtype=np.float64),
                      np.ascontiguousarray(rows, dtype=np.int64), np.ascontiguousarray(inside, dtype=np.uint8),
                      np.ascontiguousarray(r, dtype=np.float64), num, den)
    return num, den


def _day_bounds(edge_batch: np.ndarray, nb: int) -> np.ndarray:
    return np.searchsorted(edge_batch, np.arange(nb + 1)).astype(np.int64)


def _int64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.int64)


@numba.njit(parallel=True, cache=True, nogil=True)
def _edge_degrees(bounds: np.ndarray, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, degree: np.ndarray,
                  wdegree: np.ndarray) -> None:  # pragma: no cover - compiled
    for b in numba.prange(len(bounds) - 1):
        for e in range(bounds[b], bounds[b + 1]):
            i, j, w = src[e], dst[e], weight[e]
            degree[b, i] += 1.0
            degree[b, j] += 1.0
            wdegree[b, i] += w
            wdegree[b, j] += w


@numba.njit(parallel=True, cache=True, nogil=True)
def _edge_return_sums(bounds: np.ndarray, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, rows: np.ndarray,
                      inside: np.ndarray, r: np.ndarray, num: np.ndarray,
                      den: np.ndarray) -> None:  # pragma: no cover - compiled
    span = rows.shape[1]
    for b in numba.prange(len(bounds) - 1):
        for k in range(span):
            if not inside[b, k]:
                continue
            d = rows[b, k]
            for e in range(bounds[b], bounds[b + 1]):
                i, j, w = src[e], dst[e], weight[e]
                vj, vi = r[d, j], r[d, i]
                if np.isfinite(vj):
                    num[b, k, i] += w * vj
                    den[b, k, i] += w
                if np.isfinite(vi):
                    num[b, k, j] += w * vi
                    den[b, k, j] += w
