"""Segmented as-of join on the GPU: launches kernels/asof.cu (one thread per left row) on CuPy arrays.

Same signature, checks and results as `gpuetl.kernels.asof.asof_cpu`; data stays on the device.
"""

from __future__ import annotations

import cupy

from gpuetl.arrays import Array
from gpuetl.kernels import load_cuda_module
from gpuetl.kernels.asof import Direction, check_inputs, common_on

_THREADS = 256
_MAX_BLOCKS = 65535


def asof_gpu(left_by: Array, left_on: Array, right_by: Array, right_on: Array, *, direction: Direction = "backward",
             allow_exact_matches: bool = True, tolerance: float | int | None = None) -> Array:
    """The as-of join on the device (one thread per left row, a binary search in its key's right rows): the
    contract of `asof_cpu`, bit for bit.

    Shapes:
        left_by, left_on: (n,); right_by, right_on: (m,) -> index: (n,) int64 into the right rows, -1 if none
    """
    left_by, left_on = cupy.asarray(left_by), cupy.asarray(left_on)
    right_by, right_on = cupy.asarray(right_by), cupy.asarray(right_on)
    check_inputs(cupy, left_by, left_on, right_by, right_on, direction, tolerance)
    lon, ron = common_on(cupy, left_on, right_on)
    lby = cupy.ascontiguousarray(left_by, dtype=cupy.int64)
    rby = cupy.ascontiguousarray(right_by, dtype=cupy.int64)
    n, m = len(lby), len(rby)
    out = cupy.empty(n, dtype=cupy.int64)
    if n == 0:
        return out
    if m == 0:
        out.fill(-1)
        return out
    is_int = lon.dtype == cupy.int64
    fn = load_cuda_module("asof.cu").get_function("segmented_asof_i64" if is_int else "segmented_asof_f64")
    tol = (cupy.int64 if is_int else cupy.float64)(0 if tolerance is None else tolerance)
    grid = (min((n + _THREADS - 1) // _THREADS, _MAX_BLOCKS),)
    fn(grid, (_THREADS,), (lby, lon, rby, ron, cupy.int64(n), cupy.int64(m), cupy.int32(direction == "backward"),
                           cupy.int32(bool(allow_exact_matches)), cupy.int32(tolerance is not None), tol, out))
    return out
