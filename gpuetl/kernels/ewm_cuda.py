"""Segmented EWM on the GPU: launches kernels/ewm.cu (one thread per segment) on CuPy arrays.

Same signature and semantics as `gpuetl.kernels.ewm.ewm_cpu`; data stays on the device.
"""

from __future__ import annotations

import cupy

from gpuetl.arrays import Array
from gpuetl.kernels import load_cuda_module
from gpuetl.kernels.ewm import Stat, check_inputs

_THREADS = 128


def ewm_gpu(values: Array, offsets: Array, *, com: float, adjust: bool = True, ignore_na: bool = False,
            min_periods: int = 0, stat: Stat = "mean", bias: bool = False) -> Array:
    """The segmented EWM on the device (one thread per segment): the contract of `ewm_cpu`, bit for bit.

    Shapes:
        values: (n,); offsets: (segments + 1,) -> (n,) float64
    """
    minp = check_inputs(values, offsets, stat, min_periods)
    vals = cupy.ascontiguousarray(values, dtype=cupy.float64)
    offs = cupy.ascontiguousarray(offsets, dtype=cupy.int64)
    out = cupy.empty(len(vals), dtype=cupy.float64)
    n_seg = len(offs) - 1
    if n_seg == 0 or len(vals) == 0:
        return out
    module = load_cuda_module("ewm.cu", options=("-std=c++17", "--fmad=false"))
    grid = ((n_seg + _THREADS - 1) // _THREADS,)
    common = (vals, offs, cupy.int64(n_seg), cupy.float64(com), cupy.int32(adjust), cupy.int32(ignore_na),
              cupy.int32(minp))
    if stat == "mean":
        module.get_function("segmented_ewm_mean")(grid, (_THREADS,), (*common, out))
    else:
        module.get_function("segmented_ewm_var")(grid, (_THREADS,), (*common, cupy.int32(bias), out))
        if stat == "std":
            cupy.sqrt(out, out=out)
    return out
