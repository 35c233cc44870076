"""kNN graph kernels on the GPU: launches kernels/knn.cu on CuPy arrays (same signatures as gpuetl.kernels.knn).

Data stays on the device; `--fmad=false` keeps the arithmetic order of the CPU twins, so equal inputs give
bit-identical outputs on both backends.
"""

from __future__ import annotations

import cupy

from gpuetl.arrays import Array
from gpuetl.kernels import load_cuda_module
from gpuetl.kernels.knn import check_shrunk_inputs, check_topk_inputs

_TILE = 32  # must match TILE in knn.cu
_ROWS_PER_BLOCK = 8  # warps per block in row_topk (one warp per row)


def shrunk_correlation_gpu(s: Array, inv: Array, valid: Array, target: Array, *, gamma: float, threshold: float,
                           bits: int) -> Array:
    """Shrunk correlations on the device, in place: the contract of `shrunk_correlation_cpu`, bit for bit.

    Shapes:
        s: (days, n, n); inv: (days, n); valid: (days, n); target: (days,) -> s
    """
    check_shrunk_inputs(s, inv, valid, target, gamma, bits)
    nb, n = s.shape[0], s.shape[1]
    if nb == 0 or n == 0:
        return s
    module = load_cuda_module("knn.cu", options=("-std=c++17", "--fmad=false"))
    tiles = (n + _TILE - 1) // _TILE
    module.get_function("shrunk_correlation")(
        (tiles, tiles, nb), (_TILE, 8),
        (s, cupy.ascontiguousarray(inv, dtype=cupy.float64), cupy.ascontiguousarray(valid, dtype=cupy.uint8),
         cupy.ascontiguousarray(target, dtype=cupy.float64), cupy.int64(n), cupy.float64(1.0 - float(gamma)),
         cupy.float64(gamma), cupy.float64(threshold), cupy.float64(2.0 ** bits)))
    return s


def row_topk_gpu(x: Array, k: int) -> tuple[Array, Array]:
    """Per-row top-k on the device: the contract of `row_topk_cpu` (ties by column), bit for bit.

    Shapes:
        x: (rows, cols) -> idx: (rows, k) int32, val: (rows, k) float64
    """
    check_topk_inputs(x, k)
    rows, cols = x.shape
    idx = cupy.empty((rows, k), dtype=cupy.int32)
    val = cupy.empty((rows, k), dtype=cupy.float64)
    if rows == 0:
        return idx, val
    module = load_cuda_module("knn.cu", options=("-std=c++17", "--fmad=false", f"-DTOPK_K={int(k)}"))
    grid = ((rows + _ROWS_PER_BLOCK - 1) // _ROWS_PER_BLOCK,)
    module.get_function("row_topk")(grid, (32 * _ROWS_PER_BLOCK,),
                                    (cupy.ascontiguousarray(x), cupy.int64(rows), cupy.int64(cols), idx, val))
    return idx, val
