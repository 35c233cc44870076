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
"""

from __future__ import annotations

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
