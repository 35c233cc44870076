"""Per-segment statistics and ranks on the GPU: launches kernels/segstats.cu on CuPy arrays.

Same signature and results as `gpuetl.kernels.segstats.segmented_stats_cpu`. The ranks need each segment's
rows in value order: two stable device sorts (by value, then by column, segment and missingness) give
them for all columns at once, and the kernel walks each (column, segment) run of ties.
"""

from __future__ import annotations

from typing import Any

import cupy

from gpuetl.kernels import load_cuda_module
from gpuetl.kernels.ewm import segment_ids
from gpuetl.kernels.segstats import STATS, check_inputs

_THREADS = 128
_OPTIONS = ("-std=c++17", "--fmad=false")


def segmented_stats_gpu(values: Any, order: Any, offsets: Any, *, ranks: bool = False) -> tuple[Any, Any]:
    k, n, n_seg = check_inputs(values, order, offsets)
    vals = cupy.ascontiguousarray(values, dtype=cupy.float64)
    order = cupy.ascontiguousarray(order, dtype=cupy.int64)
    offs = cupy.ascontiguousarray(offsets, dtype=cupy.int64)
    stats = cupy.empty((len(STATS), k, n_seg), dtype=cupy.float64)
    rank = cupy.full((k, n), cupy.nan) if ranks else None
    pairs = k * n_seg
    if pairs == 0:
        return stats, rank
    module = load_cuda_module("segstats.cu", options=_OPTIONS)
    grid = ((pairs + _THREADS - 1) // _THREADS,)
    shape = (cupy.int64(n), cupy.int64(n_seg), cupy.int64(k))
    module.get_function("segmented_stats")(grid, (_THREADS,), (vals, order, offs, *shape, stats))
    if rank is not None and n:
        perm = _rows_by_value(vals, order, offs)
        module.get_function("segmented_rank")(grid, (_THREADS,), (vals, perm, offs, *shape, rank))
    return stats, rank


def _rows_by_value(vals: Any, order: Any, offs: Any) -> Any:
    """(k, n) int64: for each column, the rows of each segment by value, NaN last, segment s at [offs[s], offs[s+1])."""
    k, n = vals.shape
    n_seg = len(offs) - 1
    g = vals[:, order].reshape(-1)  # column by column, the rows in segment order
    missing = cupy.isnan(g)
    by_value = cupy.argsort(cupy.where(missing, 0.0, g), kind="stable")
    seg = segment_ids(cupy, offs)
    major = ((cupy.arange(k, dtype=cupy.int64)[:, None] * n_seg + seg[None, :]).reshape(-1) * 2
             + missing.astype(cupy.int64))
    pos = by_value[cupy.argsort(major[by_value], kind="stable")]
    return cupy.ascontiguousarray(order[pos % n].reshape(k, n))
