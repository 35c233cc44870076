"""Per-group statistics and ranks on the GPU: launches kernels/groupstats.cu on CuPy arrays.

Same signature and results as `gpuetl.kernels.groupstats.group_stats_cpu`: one thread walks one (column,
group) pair over the group's rows in row order (a stable sort of the labels), which is the order the CPU
twin's sequential pass adds them in. The ranks need each group's rows in value order: two stable device
sorts (by value, then by column, group and missingness) give them for all columns at once, and the kernel
walks each run of ties.
"""

from __future__ import annotations

from typing import Any

import cupy

from gpuetl.arrays import Array
from gpuetl.kernels import load_cuda_module
from gpuetl.kernels.groupstats import STATS, check_inputs, group_order
from gpuetl.kernels.segments import segment_ids

_THREADS = 128
_OPTIONS = ("-std=c++17", "--fmad=false")


def group_stats_gpu(values: Array, labels: Array, n_groups: int, *, ranks: bool = False) -> tuple[Array, Array | None]:
    """Per-group statistics on the device (one thread per column and group): the contract of `group_stats_cpu`.

    Shapes:
        values: (k, n); labels: (n,) -> stats: (5, k, n_groups) (count, mean, std, min, max),
        rank: (k, n) or None
    """
    k, n = check_inputs(values, labels, n_groups)
    vals = cupy.ascontiguousarray(values, dtype=cupy.float64)
    order, offs = group_order(cupy, cupy.ascontiguousarray(labels, dtype=cupy.int64), n_groups)
    stats = cupy.empty((len(STATS), k, n_groups), dtype=cupy.float64)
    rank = cupy.full((k, n), cupy.nan) if ranks else None
    pairs = k * n_groups
    if pairs == 0:
        return stats, rank
    module = load_cuda_module("groupstats.cu", options=_OPTIONS)
    grid = ((pairs + _THREADS - 1) // _THREADS,)
    shape = (cupy.int64(n), cupy.int64(n_groups), cupy.int64(k))
    module.get_function("group_stats")(grid, (_THREADS,), (vals, order, offs, *shape, stats))
    if rank is not None and n:
        perm = _rows_by_value(vals, order, offs)
        module.get_function("group_rank")(grid, (_THREADS,), (vals, perm, offs, *shape, rank))
    return stats, rank


def _rows_by_value(vals: Any, order: Any, offs: Any) -> Any:
    """(k, n) int64: for each column, the rows of each group by value, NaN last, group g at [offs[g], offs[g+1])."""
    k, n = vals.shape
    n_groups = len(offs) - 1
    g = vals[:, order].reshape(-1)  # column by column, the rows group by group
    missing = cupy.isnan(g)
    by_value = cupy.argsort(cupy.where(missing, 0.0, g), kind="stable")
    group = segment_ids(cupy, offs)
    major = ((cupy.arange(k, dtype=cupy.int64)[:, None] * n_groups + group[None, :]).reshape(-1) * 2
             + missing.astype(cupy.int64))
    pos = by_value[cupy.argsort(major[by_value], kind="stable")]
    return cupy.ascontiguousarray(order[pos % n].reshape(k, n))

