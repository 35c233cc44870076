"""Per-(day, code) graph features of a batch: degree, weighted degree, peer returns (dense products on the
batch's matrices on the GPU, sums over the edge list on the CPU, whose graphs have no dense matrices), PageRank
and Louvain (the union kernels: cuGraph on the GPU, SciPy/networkx on the CPU), all from one op, `graph`, run on
a `GraphBatch`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gpuetl import ops
from gpuetl.backend import Backend
from gpuetl.graphs.config import GraphConfig
from gpuetl.graphs.daily import BatchGraphs
from gpuetl.graphs.returns import Returns
from gpuetl.kernels.knn import edge_degrees_cpu, edge_return_sums_cpu

PEER_FEATURES = ("graph_peer_ret_1d", "graph_peer_ret_5d")


def feature_names(cfg: GraphConfig) -> tuple[str, ...]:
    if not cfg.features.enabled:
        return ()
    names = ["graph_degree", "graph_wdegree"]
    if cfg.features.pagerank:
        names.append("graph_pagerank")
    if cfg.features.louvain:
        names += ["graph_community", "graph_community_size"]
    return (*names, *PEER_FEATURES)


@dataclasses.dataclass(frozen=True)
class GraphBatch:
    """What the graph op runs on: a batch of daily graphs, the returns they were built from, and how many dates
    (`span`: the graph's own and those until the next graph day) each graph serves."""

    backend: Backend
    graphs: BatchGraphs
    returns: Returns
    span: int

    def on_cpu(self, cpu: Backend) -> GraphBatch:
        """Host copies of the batch's arrays, for an op that runs only on the CPU (gpuetl.ops.run)."""
        host = self.backend.to_host  # host-ok: an op's CPU fallback, counted and named by the backend
        fields = {f.name: getattr(self.graphs, f.name) for f in dataclasses.fields(BatchGraphs)}
        graphs = BatchGraphs(**{k: None if v is None else host(v) for k, v in fields.items()})  # None: sparse graphs
        returns = Returns(host(self.returns.dates), host(self.returns.r1), host(self.returns.r5))
        return GraphBatch(cpu, graphs, returns, self.span)


# The graph features as an op: per (day, code), from the day's graph over every code, so axis "day"; they need the
# graph's window of returns before the first day; community labels are categories (raw). On the GPU, PageRank is
# a power iteration stopped at its tolerance (the loosest of what the op computes: degrees are exact, weighted
# degrees and peer returns sums of grid weights); Louvain's labels, and the community sizes they make, are compared
# as partitions (their modularity), not as values.
@ops.op("graph", stage="graph", group="graph", inputs=("close",), outputs=lambda p: feature_names(p["config"]),
        lookback=lambda p: p["config"].window, normalize=ops.by_column(raw=["graph_community"]), axis="day",
        tolerance=ops.ByColumn("pagerank", (("graph_community", "louvain"), ("graph_community_size", "louvain"))),
        doc="degree, weighted degree, PageRank, Louvain community and size, peer returns per day")
def graph(batch: GraphBatch, config: GraphConfig) -> Mapping[str, Any]:
    """Every graph feature of the batch's dates: (B, span, N) float64 each, entry [b, k] for date days[b] + k with
    day days[b]'s graph; NaN where the code is not a node (and peer returns where no neighbour has a return)."""
    xp = batch.backend.xp
    own = own_features(batch.backend, batch.graphs, config)
    nb, n = batch.graphs.valid.shape
    out = {name: xp.broadcast_to(values[:, None, :], (nb, batch.span, n)) for name, values in own.items()}
    return out | peer_returns(batch.backend, batch.graphs, batch.returns, batch.span)


def own_features(backend: Backend, g: BatchGraphs, cfg: GraphConfig) -> dict[str, Any]:
    """Features that belong to the graph itself: (B, N) float64 each, NaN where the code is not a node."""
    xp = backend.xp
    valid = g.valid
    nb, n = valid.shape
    if g.weights is None:  # the CPU's sparse graphs: sums over both ends of each edge
        degree, wdegree = edge_degrees_cpu(g.edge_batch, g.edge_src, g.edge_dst, g.edge_weight, nb, n)
    else:
        degree = xp.count_nonzero(g.adjacency, axis=2).astype(xp.float64)
        wdegree = g.weights.sum(axis=2)
    out = {"graph_degree": xp.where(valid, degree, xp.nan), "graph_wdegree": xp.where(valid, wdegree, xp.nan)}
    if not (cfg.features.pagerank or cfg.features.louvain):
        return out
    flat_valid = valid.reshape(-1)
    vertex = xp.cumsum(flat_valid, dtype=xp.int64) - 1  # union vertex id of every (day, code) that is a node
    nodes = xp.flatnonzero(flat_valid)
    offsets = xp.concatenate([xp.zeros(1, dtype=xp.int64),
                              xp.cumsum(xp.count_nonzero(valid, axis=1), dtype=xp.int64)])
    base = g.edge_batch * n
    src, dst = vertex[base + g.edge_src], vertex[base + g.edge_dst]
    if cfg.features.pagerank:
        pr = backend.kernels.union_pagerank(src, dst, g.edge_weight, offsets, damping=cfg.pagerank.damping,
                                            tol=cfg.pagerank.tol, max_iter=cfg.pagerank.max_iter)
        out["graph_pagerank"] = _scatter(xp, nodes, pr, nb, n)
    if cfg.features.louvain:
        c = cfg.louvain
        labels = backend.kernels.union_louvain(src, dst, g.edge_weight, offsets, resolution=c.resolution,
                                               threshold=c.threshold, max_level=c.max_level, seed=c.seed)
        _, inverse, counts = xp.unique((nodes // n) * n + labels, return_inverse=True, return_counts=True)
        out["graph_community"] = _scatter(xp, nodes, labels.astype(xp.float64), nb, n)
        out["graph_community_size"] = _scatter(xp, nodes, counts[inverse.reshape(-1)].astype(xp.float64), nb, n)
    return out


def peer_returns(backend: Backend, g: BatchGraphs, returns: Returns, span: int) -> dict[str, Any]:
    """Edge-weighted mean of the neighbours' 1-/5-day returns on each of the `span` dates a graph serves.

    Returns (B, span, N) per feature: entry [b, k] is for date days[b] + k, with day days[b]'s graph and that
    date's returns; NaN where no neighbour has a return (or the code is not a node, or the date is past the end).
    """
    xp = backend.xp
    n_dates = returns.r1.shape[0]
    rows = g.days[:, None] + xp.arange(span)[None, :]
    inside = rows < n_dates
    rows = xp.minimum(rows, n_dates - 1)
    if g.weights is None:
        return _sparse_peer_returns(xp, g, returns, rows, inside)
    parts = []
    for r in (returns.r1, returns.r5):
        v = r[rows]  # (B, span, N)
        seen = xp.isfinite(v) & inside[:, :, None]
        parts += [xp.where(seen, v, 0.0), seen.astype(xp.float64)]
    stacked = xp.matmul(g.weights, xp.concatenate(parts, axis=1).transpose(0, 2, 1))  # (B, N, 4 * span)
    stacked = stacked.transpose(0, 2, 1)  # (B, 4 * span, N)
    out = {}
    for k, name in enumerate(PEER_FEATURES):
        num = stacked[:, 2 * k * span:(2 * k + 1) * span]
        den = stacked[:, (2 * k + 1) * span:(2 * k + 2) * span]
        out[name] = xp.where(den > 0, num / xp.where(den > 0, den, 1.0), xp.nan)
    return out


def _sparse_peer_returns(xp: Any, g: BatchGraphs, returns: Returns, rows: Any, inside: Any) -> dict[str, Any]:
    """`peer_returns` from the edge list (the CPU's sparse graphs): the same sums over the edges instead of a
    dense (B, N, N) product (the denominators, sums of grid weights, are exact in either order)."""
    out = {}
    for name, r in zip(PEER_FEATURES, (returns.r1, returns.r5), strict=True):
        num, den = edge_return_sums_cpu(g.edge_batch, g.edge_src, g.edge_dst, g.edge_weight, g.valid.shape[1], rows,
                                        inside, r)
        out[name] = xp.where(den > 0, num / xp.where(den > 0, den, 1.0), xp.nan)
    return out


def _scatter(xp: Any, nodes: Any, values: Any, nb: int, n: int) -> Any:
    out = xp.full(nb * n, xp.nan)
    out[nodes] = values
    return out.reshape(nb, n)
