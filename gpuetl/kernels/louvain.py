"""Louvain communities of many small graphs at once (one per day), in Numba: the CPU twin's algorithm.

`union_louvain_cpu` (gpuetl/kernels/graph_analytics.py) hands its validated disjoint union here. Each segment
(a day's graph) is solved on its own, in parallel over the segments (`numba.prange`), with its own total weight
m, so a day's labels never depend on the other days in the call.

The algorithm is networkx's `louvain_communities` (Blondel et al. 2008, as networkx 3.x `_one_level` and
`louvain_partitions` implement it):

- local moving: visit the nodes in a random order, move each to the neighbouring community with the largest
  modularity gain (with `resolution`) if that gain is positive; repeat passes over the same order until a pass
  moves nothing;
- aggregation: the communities become the nodes of a weighted graph (edges between communities summed, edges
  inside one kept as a self loop) and local moving runs again;
- levels stop when a level's modularity improvement is <= `threshold`, when a level moves nothing, or after
  `max_level` levels; the result is the last level's partition.

The gain test is networkx's: moving u from its community A (u taken out) to B gains
``(w_B - w_A) / m - resolution * deg(u) * (tot_B - tot_A) / (2 m^2)`` (w_X: weight from u to X, tot_X: degree
sum of X), so u moves to the B with the largest ``w_B - resolution * tot_B * deg(u) / (2 m)`` when that is
strictly larger than A's value. Comparing the two values rather than a computed gain against 0 means that an
exact tie (u as close to B as to A) never moves u on a rounding error, so symmetric graphs cannot oscillate.

Visiting order: a Fisher-Yates shuffle per level from a splitmix64 stream seeded with `seed` at the start of
each segment (every segment starts from the same seed, whatever its position in the union). The same inputs
and seed give the same labels; the order is *not* networkx's (its `random.Random` shuffles of Python node
lists), so partitions equal networkx's in quality (modularity), not vertex for vertex. Ties between
candidate communities go to the first one met in the node's neighbour list (neighbours sorted by index).

Labels come out canonical: within a segment communities are numbered 0, 1, ... in the order of their smallest
vertex (each level numbers its communities in the order of their first node, and a level's nodes are in the
order of their smallest vertex).
"""

from __future__ import annotations

import numba
import numpy as np

# a guard against a cycle of moves that rounding alone would make: a level's local moving stops after this many
# passes. Never reached: on the benchmark's 250 kNN days of 2,000 vertices a cap of 10 changes no label
MAX_PASSES = 1000


def louvain_segments(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, offsets: np.ndarray,
                     edge_bounds: np.ndarray, *, resolution: float, threshold: float, max_level: int,
                     seed: int) -> np.ndarray:
    """Canonical int64 labels (0.. per segment) for a validated union whose edges are grouped by segment:
    segment g's edges are src/dst/weight[edge_bounds[g]:edge_bounds[g + 1]]."""
    labels = np.empty(int(offsets[-1]), dtype=np.int64)
    _louvain_union(np.ascontiguousarray(src, dtype=np.int64), np.ascontiguousarray(dst, dtype=np.int64),
                   np.ascontiguousarray(weight, dtype=np.float64), np.ascontiguousarray(offsets, dtype=np.int64),
                   np.ascontiguousarray(edge_bounds, dtype=np.int64), float(resolution), float(threshold),
                   int(max_level), np.uint64(int(seed) & 0xFFFF_FFFF_FFFF_FFFF), labels)
    return labels


@numba.njit(parallel=True, cache=True, nogil=True)
def _louvain_union(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, offsets: np.ndarray,
                   edge_bounds: np.ndarray, resolution: float, threshold: float, max_level: int, seed: np.uint64,
                   labels: np.ndarray) -> None:  # pragma: no cover - compiled
    """One segment per iteration: segments are independent, so they run side by side on the cores."""
    for g in numba.prange(len(offsets) - 1):
        lo, hi = offsets[g], offsets[g + 1]
        e0, e1 = edge_bounds[g], edge_bounds[g + 1]
        labels[lo:hi] = _louvain_segment(hi - lo, src[e0:e1] - lo, dst[e0:e1] - lo, weight[e0:e1], resolution,
                                         threshold, max_level, seed)


@numba.njit(cache=True, nogil=True)
def _louvain_segment(n: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray, resolution: float,
                     threshold: float, max_level: int, seed: np.uint64) -> np.ndarray:  # pragma: no cover
    """Louvain levels on one graph of n nodes (local ids); returns each node's community, numbered 0.. in the
    order of the communities' smallest node."""
    labels = np.arange(n)
    if len(src) == 0:
        return labels  # no edges: every vertex its own community (networkx's answer on an empty graph)
    indptr, indices, data = _csr(n, src, dst, weight)
    loops = np.zeros(n)  # a node's self-loop weight: the edges inside it, once the graph is aggregated
    degree = _row_sums(indptr, data)
    m = weight.sum()
    state = np.full(1, seed, dtype=np.uint64)  # the segment's own random stream, the same for every segment
    q = _modularity(indptr, indices, data, loops, degree, np.arange(n), n, m, resolution)
    for level in range(max_level):
        order = _shuffled(len(degree), state)
        comm, moved = _one_level(indptr, indices, data, degree, m, resolution, order)
        if not moved and level > 0:
            break  # the last level is already the answer (networkx stops here without a new partition)
        k = _renumber(comm)
        labels = comm[labels]
        q_new = _modularity(indptr, indices, data, loops, degree, comm, k, m, resolution)
        if q_new - q <= threshold or level + 1 == max_level:
            break
        q = q_new
        indptr, indices, data, loops, degree = _aggregate(indptr, indices, data, loops, degree, comm, k)
    return labels


@numba.njit(cache=True, nogil=True)
def _csr(n: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Both directions of each edge as CSR rows, each row sorted by neighbour, so the result (ties included)
    does not depend on the order the edges were listed in."""
    count = np.zeros(n + 1, dtype=np.int64)
    for e in range(len(src)):
        count[src[e] + 1] += 1
        count[dst[e] + 1] += 1
    indptr = np.cumsum(count)
    fill = indptr[:-1].copy()
    indices = np.empty(2 * len(src), dtype=np.int64)
    data = np.empty(2 * len(src))
    for e in range(len(src)):
        a, b = src[e], dst[e]
        indices[fill[a]], data[fill[a]] = b, weight[e]
        indices[fill[b]], data[fill[b]] = a, weight[e]
        fill[a] += 1
        fill[b] += 1
    for u in range(n):
        lo, hi = indptr[u], indptr[u + 1]
        by = np.argsort(indices[lo:hi])
        indices[lo:hi] = indices[lo:hi][by]
        data[lo:hi] = data[lo:hi][by]
    return indptr, indices, data


@numba.njit(cache=True, nogil=True)
def _row_sums(indptr: np.ndarray, data: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Weighted degrees of the input graph (no self loops there yet)."""
    n = len(indptr) - 1
    out = np.zeros(n)
    for u in range(n):
        out[u] = data[indptr[u]:indptr[u + 1]].sum()
    return out


@numba.njit(cache=True, nogil=True)
def _next_random(state: np.ndarray) -> np.uint64:  # pragma: no cover - compiled
    """splitmix64: a small, well-mixed 64-bit generator whose whole state is one word we own (no global or
    per-thread NumPy state, so a segment's stream cannot depend on which thread runs it)."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _shuffled(n: int, state: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """0..n-1 in a random order (Fisher-Yates): the visiting order of one level, as networkx shuffles its nodes
    once per level."""
    order = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = np.int64(_next_random(state) % np.uint64(i + 1))
        order[i], order[j] = order[j], order[i]
    return order


@numba.njit(cache=True, nogil=True)
def _one_level(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, degree: np.ndarray, m: float,
               resolution: float, order: np.ndarray) -> tuple[np.ndarray, bool]:  # pragma: no cover - compiled
    """Local moving from singletons: passes over `order` until one moves nothing. Returns each node's
    community (a node id) and whether any node moved. Self loops do not enter the gain (networkx leaves them
    out of a node's neighbour weights too); they are in `degree`."""
    n = len(degree)
    comm = np.arange(n)
    tot = degree.copy()  # degree sum of each community
    to_comm = np.zeros(n)  # weight from the current node to each community, for the communities in `seen`
    seen = np.empty(n, dtype=np.int64)
    scale = resolution / (2.0 * m)
    moved = False
    for _ in range(MAX_PASSES):
        moves = 0
        for u in order:
            own = comm[u]
            n_seen = 0
            for p in range(indptr[u], indptr[u + 1]):
                c = comm[indices[p]]
                if to_comm[c] == 0.0:  # weights are positive: 0 means not met yet
                    seen[n_seen] = c
                    n_seen += 1
                to_comm[c] += data[p]
            d = degree[u]
            tot[own] -= d
            best = own
            best_value = to_comm[own] - scale * tot[own] * d
            for i in range(n_seen):
                c = seen[i]
                value = to_comm[c] - scale * tot[c] * d
                if value > best_value:
                    best, best_value = c, value
            tot[best] += d
            for i in range(n_seen):
                to_comm[seen[i]] = 0.0
            if best != own:
                comm[u] = best
                moves += 1
        if moves == 0:
            break
        moved = True
    return comm, moved


@numba.njit(cache=True, nogil=True)
def _renumber(comm: np.ndarray) -> int:  # pragma: no cover - compiled
    """Communities as 0..k-1 in the order of their first node, in place; returns k. Keeps labels canonical:
    nodes are in the order of their smallest vertex at every level, so communities are too."""
    new = np.full(len(comm), -1, dtype=np.int64)
    k = 0
    for u in range(len(comm)):
        c = comm[u]
        if new[c] < 0:
            new[c] = k
            k += 1
        comm[u] = new[c]
    return k


@numba.njit(cache=True, nogil=True)
def _modularity(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, loops: np.ndarray,
                degree: np.ndarray, comm: np.ndarray, k: int, m: float,
                resolution: float) -> float:  # pragma: no cover - compiled
    """networkx's modularity of the partition `comm` (k communities) of this level's graph, which is the
    modularity of the matching partition of the day's graph: sum over communities of
    inside / m - resolution * (degree sum / 2m)^2, a self loop counted once inside."""
    inside = 0.0
    tot = np.zeros(k)
    for u in range(len(degree)):
        inside += loops[u]
        tot[comm[u]] += degree[u]
        for p in range(indptr[u], indptr[u + 1]):
            if indices[p] > u and comm[indices[p]] == comm[u]:
                inside += data[p]
    return inside / m - resolution * ((tot / (2.0 * m)) ** 2).sum()


@numba.njit(cache=True, nogil=True)
def _aggregate(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, loops: np.ndarray,
               degree: np.ndarray, comm: np.ndarray, k: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """The graph of the communities (networkx's `_gen_graph`): node c = community c, an edge between two
    communities weighs the sum of the edges between them, a community's self loop the sum of the edges (and
    self loops) inside it; its degree is its members' degree sum. Returns indptr, indices, data, loops, degree."""
    n = len(degree)
    members = np.argsort(comm, kind="mergesort")  # nodes grouped by community, in node order within each
    new_indptr = np.zeros(k + 1, dtype=np.int64)
    new_indices = np.empty(len(indices), dtype=np.int64)  # never more entries than the level below
    new_data = np.empty(len(indices))
    new_loops = np.zeros(k)
    new_degree = np.zeros(k)
    to_comm = np.zeros(k)
    seen = np.empty(k, dtype=np.int64)
    nnz = 0
    i = 0
    for c in range(k):
        n_seen = 0
        while i < n and comm[members[i]] == c:
            u = members[i]
            i += 1
            new_loops[c] += loops[u]
            new_degree[c] += degree[u]
            for p in range(indptr[u], indptr[u + 1]):
                v, cv = indices[p], comm[indices[p]]
                if cv == c:
                    if v > u:  # an edge inside c, met from both ends: count it once
                        new_loops[c] += data[p]
                    continue
                if to_comm[cv] == 0.0:
                    seen[n_seen] = cv
                    n_seen += 1
                to_comm[cv] += data[p]
        for j in range(n_seen):
            new_indices[nnz] = seen[j]
            new_data[nnz] = to_comm[seen[j]]
            to_comm[seen[j]] = 0.0
            nnz += 1
        new_indptr[c + 1] = nnz
    return new_indptr, new_indices[:nnz].copy(), new_data[:nnz].copy(), new_loops, new_degree
