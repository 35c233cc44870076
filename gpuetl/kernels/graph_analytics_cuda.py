"""PageRank and Louvain on a disjoint union of many days' graphs with cuGraph (pylibcugraph), on CuPy arrays.

Same signatures and conventions as gpuetl/kernels/graph_analytics.py. One cuGraph call covers the whole
union (both directions of every edge, int32 vertices 0..V-1 with every vertex listed so isolated ones
count); results are split back per segment (day):

- PageRank: on a disjoint union with cuGraph's uniform teleport and uniform redistribution of dangling
  mass, each segment's restriction satisfies ``x = damping * P^T x + c * 1`` with one constant c for the
  whole union, the same equation as the segment alone up to that constant, so after renormalising to 1
  per segment it is the segment's own PageRank. The stopping test is on the union's L1 change; with
  ``epsilon = tol * (1 - damping) * min_n / V`` (a segment's mass in the union is at least
  ``n * (1 - damping) / V``) every segment's own L1 change is below `tol` when cuGraph stops.
- Louvain: modularity on a union uses the union's total weight, which would tie each day's resolution
  to the other days' weights. Scaling every day's weights to sum 1 and passing resolution * G (G = days
  with edges) makes the union's modularity the mean of the days' own modularities at `resolution`, so
  each day is optimised for its own objective; the per-level gain threshold is divided by G to match.
  cuGraph's Louvain takes no seed (the `seed` argument only drives the CPU twin); the union's stopping
  test is global, so a day's partition can depend (weakly) on the other days in the call.
"""

from __future__ import annotations

from typing import Any

import cupy

from gpuetl.arrays import Array
from gpuetl.kernels.graph_analytics import PageRankNotConverged, canonical_labels, check_union
from gpuetl.kernels.segments import segment_ids


def _graph(plc: Any, handle: Any, src: Any, dst: Any, weight: Any, n_vertices: int, transposed: bool) -> Any:
    s = cupy.concatenate([src, dst]).astype(cupy.int32)
    d = cupy.concatenate([dst, src]).astype(cupy.int32)
    w = cupy.concatenate([weight, weight]).astype(cupy.float64)
    props = plc.GraphProperties(is_symmetric=True, is_multigraph=False)
    return plc.SGGraph(handle, props, s, d, weight_array=w, store_transposed=transposed, renumber=False,
                       do_expensive_check=False, vertices_array=cupy.arange(n_vertices, dtype=cupy.int32))


def _segment_sums(values: Any, offsets: Any) -> Any:
    """Sum per segment without atomics (deterministic): differences of one inclusive scan."""
    csum = cupy.concatenate([cupy.zeros(1, dtype=cupy.float64), cupy.cumsum(values, dtype=cupy.float64)])
    return csum[offsets[1:]] - csum[offsets[:-1]]


def union_pagerank_gpu(src: Array, dst: Array, weight: Array, offsets: Array, *, damping: float, tol: float,
                       max_iter: int) -> Array:
    """PageRank per segment of a disjoint-union graph with cuGraph: the contract of `union_pagerank_cpu`.

    Shapes:
        src, dst, weight: (edges,); offsets: (segments + 1,) -> rank: (vertices,) float64
    """
    import pylibcugraph as plc

    n_vertices, _ = check_union(cupy, src, dst, weight, offsets)
    if not 0.0 < damping < 1.0:
        raise ValueError(f"damping must be in (0, 1), got {damping}")
    seg = segment_ids(cupy, offsets)
    size = cupy.diff(offsets)
    if n_vertices == 0:
        return cupy.zeros(0, dtype=cupy.float64)
    if len(src) == 0:  # no edges anywhere: every vertex is dangling, PageRank is uniform per segment
        return 1.0 / size[seg].astype(cupy.float64)
    min_n = int(size[size > 0].min())  # host-ok: one scalar sets cuGraph's tolerance
    epsilon = tol * (1.0 - damping) * min_n / n_vertices
    handle = plc.ResourceHandle()
    graph = _graph(plc, handle, src, dst, weight, n_vertices, transposed=True)
    vertices, values, converged = plc.pagerank(handle, graph, None, None, None, None, alpha=damping,
                                               epsilon=epsilon, max_iterations=max_iter, do_expensive_check=False,
                                               fail_on_nonconvergence=False)
    if not converged:
        raise PageRankNotConverged(f"cuGraph PageRank did not converge to epsilon={epsilon:.3g} (tol={tol} per "
                                   f"graph) within max_iter={max_iter}; raise pagerank.max_iter")
    out = cupy.empty(n_vertices, dtype=cupy.float64)
    out[vertices] = values
    return out / _segment_sums(out, offsets)[seg]


def union_louvain_gpu(src: Array, dst: Array, weight: Array, offsets: Array, *, resolution: float, threshold: float,
                      max_level: int, seed: int) -> Array:
    """Louvain per segment with cuGraph: the contract of `union_louvain_cpu` (partitions compared by modularity).

    Shapes:
        src, dst, weight: (edges,); offsets: (segments + 1,) -> labels: (vertices,) int64, canonical per segment
    """
    import pylibcugraph as plc

    n_vertices, n_segments = check_union(cupy, src, dst, weight, offsets)
    if n_vertices == 0 or len(src) == 0:
        return canonical_labels(cupy, cupy.arange(n_vertices, dtype=cupy.int64), offsets)
    seg = segment_ids(cupy, offsets)
    edge_seg = seg[src]
    day_weight = cupy.bincount(edge_seg, weights=weight, minlength=n_segments)
    with_edges = int(cupy.count_nonzero(day_weight > 0))  # host-ok: one scalar scales resolution and threshold
    normalised = weight / day_weight[edge_seg]
    handle = plc.ResourceHandle()
    graph = _graph(plc, handle, src, dst, normalised, n_vertices, transposed=False)
    vertices, clusters, _modularity = plc.louvain(handle, graph, max_level, threshold / with_edges,
                                                  resolution * with_edges, False)
    labels = cupy.empty(n_vertices, dtype=cupy.int64)
    labels[vertices] = clusters
    return canonical_labels(cupy, labels, offsets)
