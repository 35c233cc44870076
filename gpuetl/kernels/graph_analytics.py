"""PageRank and Louvain on a disjoint union of many small graphs (one per day): the CPU twins.

Input, on both backends: vertices 0..V-1 split into segments by `offsets` (segment g holds vertices
offsets[g] .. offsets[g+1]-1; a segment is one day's graph), and undirected weighted edges (src, dst,
weight), each pair once, both ends in the same segment, no self loops, positive weights. Output is one value
per vertex, computed as if each segment were a graph of its own:

- `union_pagerank`: PageRank with cuGraph's iteration (pagerank_impl.cuh): start at 1/n, then
  ``x <- damping * sum_in x[u] w(u,v) / out_weight(u) + (damping * dangling_mass + 1 - damping) / n``
  until the L1 change is below `tol`, normalised to sum 1 per segment. The CPU twin runs that iteration for
  all segments at once but with each segment's own n, dangling mass and stopping test (a segment stops
  when its own L1 change is below tol), so a day's result never depends on the other days in the call.
  The GPU version makes one cuGraph call on the whole union and renormalises per segment: the same fixed
  point (see gpuetl/kernels/graph_analytics_cuda.py), within the tolerance.
- `union_louvain`: Louvain communities per segment (the CPU twin: networkx's algorithm in Numba, every segment
  on its own with the same seed, segments in parallel, gpuetl/kernels/louvain.py; cuGraph's Louvain on the
  GPU), as canonical labels: within a segment, communities are numbered 0, 1, ... in the order of their
  smallest vertex. Louvain is a heuristic and the implementations move vertices in different orders, so GPU
  and CPU partitions (and ours and networkx's) are compared by modularity, not label by label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from gpuetl.kernels.louvain import louvain_segments
from gpuetl.kernels.segments import segment_ids


class PageRankNotConverged(RuntimeError):
    """PageRank did not reach `tol` within `max_iter` iterations for some segment."""


def check_union(xp: Any, src: Any, dst: Any, weight: Any, offsets: Any) -> tuple[int, int]:
    """Validate a disjoint-union edge list; returns (vertices, segments). (host-ok: scalar checks only.)"""
    if src.ndim != 1 or dst.ndim != 1 or weight.ndim != 1 or offsets.ndim != 1:
        raise ValueError("src, dst, weight and offsets must be 1-D")
    if not len(src) == len(dst) == len(weight):
        raise ValueError(f"src, dst and weight differ in length: {len(src)}, {len(dst)}, {len(weight)}")
    if len(offsets) == 0 or int(offsets[0]) != 0:
        raise ValueError("offsets must start at 0")
    n_vertices, n_segments = int(offsets[-1]), len(offsets) - 1
    if n_segments and bool(xp.any(xp.diff(offsets) < 0)):  # host-ok: one flag, an input check
        raise ValueError("offsets must be non-decreasing")
    if len(src):
        if int(min(src.min(), dst.min())) < 0 or int(max(src.max(), dst.max())) >= n_vertices:
            raise ValueError(f"edge ends must be vertices in [0, {n_vertices})")
        if bool(xp.any(src == dst)):  # host-ok: one flag, an input check
            raise ValueError("self loops are not allowed")
        seg = segment_ids(xp, offsets)
        if bool(xp.any(seg[src] != seg[dst])):  # host-ok: one flag, an input check
            raise ValueError("an edge joins two segments: every edge must lie inside one segment (one day)")
        if not bool(xp.all(weight > 0)):  # host-ok: one flag, an input check
            raise ValueError("edge weights must be positive and finite")
    return n_vertices, n_segments


def canonical_labels(xp: Any, labels: Any, offsets: Any) -> Any:
    """Relabel communities per segment as 0, 1, ... in the order of their smallest vertex (int64)."""
    n = len(labels)
    if n == 0:
        return xp.zeros(0, dtype=xp.int64)
    _, dense = xp.unique(labels, return_inverse=True)
    seg = segment_ids(xp, offsets)
    key = seg.astype(xp.int64) * n + dense.reshape(-1).astype(xp.int64)
    # unique's return_index is the first (= smallest) vertex of each (segment, community)
    _, first, inverse = xp.unique(key, return_index=True, return_inverse=True)
    order = xp.argsort(first)
    rank = xp.empty(len(first), dtype=xp.int64)
    rank[order] = xp.arange(len(first), dtype=xp.int64)
    comm_seg = seg[first]
    # communities sorted by smallest vertex are grouped by segment: a segment's ranks start at its count before
    seg_start = xp.searchsorted(seg[first[order]], xp.arange(len(offsets) - 1), side="left")
    return (rank - seg_start[comm_seg])[inverse.reshape(-1)]


def union_pagerank_cpu(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, offsets: np.ndarray, *,
                       damping: float, tol: float, max_iter: int) -> np.ndarray:
    """PageRank per segment (normalised to 1 per segment), float64 per vertex."""
    n_vertices, n_segments = check_union(np, src, dst, weight, offsets)
    if not 0.0 < damping < 1.0:
        raise ValueError(f"damping must be in (0, 1), got {damping}")
    seg = segment_ids(np, offsets)
    size = np.diff(offsets).astype(np.float64)
    s = np.concatenate([src, dst]).astype(np.int64)
    d = np.concatenate([dst, src]).astype(np.int64)
    w = np.concatenate([weight, weight]).astype(np.float64)
    incoming = sp.csr_matrix((w, (d, s)), shape=(n_vertices, n_vertices))  # row v: edges u -> v
    out_weight = np.bincount(s, weights=w, minlength=n_vertices)
    dangling = out_weight == 0.0
    divisor = np.where(dangling, 1.0, out_weight)
    x = 1.0 / size[seg] if n_vertices else np.zeros(0)
    active = size > 0
    for _ in range(max_iter):
        if not active.any():
            break
        dangling_mass = np.bincount(seg, weights=np.where(dangling, x, 0.0), minlength=n_segments)
        base = (damping * dangling_mass + (1.0 - damping)) / np.where(size > 0, size, 1.0)
        new = damping * (incoming @ (x / divisor)) + base[seg]
        change = np.bincount(seg, weights=np.abs(new - x), minlength=n_segments)
        x = np.where(active[seg], new, x)
        active &= ~(change < tol)
    if active.any():
        raise PageRankNotConverged(f"PageRank did not converge to tol={tol} within max_iter={max_iter} "
                                   f"for {int(active.sum())} of {n_segments} graphs; raise pagerank.max_iter")
    total = np.bincount(seg, weights=x, minlength=n_segments)
    return x / total[seg] if n_vertices else x


def union_louvain_cpu(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, offsets: np.ndarray, *,
                      resolution: float, threshold: float, max_level: int, seed: int) -> np.ndarray:
    """Louvain communities per segment (our Numba Louvain, gpuetl/kernels/louvain.py: networkx's algorithm, all
    segments in parallel), canonical int64 labels per vertex. The same inputs and seed give the same labels;
    the visiting order is not networkx's, so the partitions match networkx's in modularity, not vertex for
    vertex."""
    _, n_segments = check_union(np, src, dst, weight, offsets)
    if max_level <= 0:
        raise ValueError(f"max_level must be a positive integer, got {max_level}")
    seg = segment_ids(np, offsets)
    edge_seg = seg[src] if len(src) else np.zeros(0, dtype=np.int64)
    if np.any(edge_seg[1:] < edge_seg[:-1]):  # edges not grouped by day yet (the graph build's are)
        order = np.argsort(edge_seg, kind="stable")
        src, dst, weight, edge_seg = src[order], dst[order], weight[order], edge_seg[order]
    bounds = np.searchsorted(edge_seg, np.arange(n_segments + 1))
    return louvain_segments(src, dst, weight, offsets, bounds, resolution=resolution, threshold=threshold,
                            max_level=max_level, seed=seed)
