"""The per-day z-score on the GPU: CuPy's fused elementwise kernels, no CUDA source of ours (the CPU twin is
`gpuetl.kernels.groupstats.day_zscore_cpu`)."""

from __future__ import annotations

import cupy

from gpuetl.arrays import Array


def day_zscore_gpu(x: Array, mean: Array, std: Array, label: Array, clip: float) -> Array:
    """The contract of `groupstats.day_zscore_cpu`: (x - mean[label]) / std[label], NaN without spread, clipped."""
    m, s = mean[label], std[label]
    z = cupy.where(s > 0, (x - m) / cupy.where(s > 0, s, 1.0), cupy.nan)
    return cupy.clip(z, -clip, clip)
