"""The peers' graphs, one day at a time in NumPy, and their analytics in networkx, day by day.

What a researcher writes for the definitions in gpuetl.graphs (window, EWM weights, demeaning over each code's
own observed days, shrinkage towards 0, the 2^-bits grid, threshold, kNN with the smaller code index winning
ties, union symmetrisation, degree / weighted degree / peer returns): a Python loop over the days, each day's
covariance one (window x codes) matrix product. Polars has no matrix algebra, so the Polars peer builds its
returns matrix in Polars and calls the same loop. Only the `identity` shrinkage target is implemented.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np

from gpuetl.graphs.config import GraphConfig

VARIANCE_FLOOR = 1e-12  # as gpuetl.graphs.daily
FEATURE_NAMES = ("graph_degree", "graph_wdegree", "graph_peer_ret_1d", "graph_peer_ret_5d")


def day_graph(r1: np.ndarray, t: int, cfg: GraphConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Day t's graph from the (dates x codes) 1-day returns: (nodes bool (N,), weights (N, N), adjacency)."""
    if cfg.shrinkage.target != "identity":
        raise NotImplementedError("the peers' graphs implement the identity shrinkage target only")
    w_len, n = cfg.window, r1.shape[1]
    window = np.full((w_len, n), np.nan)
    first = t - w_len + 1
    window[max(0, -first):] = r1[max(first, 0):t + 1]
    weights = 0.5 ** (np.arange(w_len - 1, -1, -1, dtype=np.float64) / cfg.halflife)
    seen = np.isfinite(window)
    r = np.where(seen, window, 0.0)
    m = seen.astype(np.float64)
    wsum = weights @ m
    mean = (weights @ r) / np.where(wsum > 0, wsum, 1.0)
    x = (r - mean) * m
    x *= np.sqrt(weights)[:, None]
    s = x.T @ x
    diag = np.diag(s).copy()
    nodes = (m.sum(axis=0) >= cfg.min_observations) & (diag > VARIANCE_FLOOR * (weights @ (r * r))) & np.isfinite(diag)
    inv = np.where(nodes, 1.0 / np.sqrt(np.where(nodes, diag, 1.0)), 0.0)
    upper = np.triu(((0.5 * (s + s.T)) * inv[:, None]) * inv[None, :], 1)  # each pair once, i < j
    rho = upper + upper.T
    scale = 2.0 ** cfg.knn.grid_bits
    q = np.rint(((1.0 - cfg.shrinkage.gamma) * rho + cfg.shrinkage.gamma * 0.0) * scale) / scale
    cand = nodes[:, None] & nodes[None, :] & ~np.eye(n, dtype=bool) & (q >= cfg.knn.threshold)
    ranked = np.where(cand, q, -np.inf)
    best = np.argsort(-ranked, axis=1, kind="stable")[:, :cfg.knn.k]  # ties: the smaller index first
    kept = np.take_along_axis(ranked, best, axis=1) > -np.inf
    adjacency = np.zeros((n, n), dtype=bool)
    adjacency[np.repeat(np.arange(n), best.shape[1])[kept.reshape(-1)], best[kept]] = True
    adjacency |= adjacency.T
    return nodes, np.where(adjacency, q, 0.0), adjacency


def all_days(r1: np.ndarray, r5: np.ndarray, cfg: GraphConfig) -> dict[str, np.ndarray]:
    """Every day's graph: edges (edge_day, edge_src, edge_dst, edge_weight; src < dst, sorted) and the dense
    (dates x codes) features, NaN where a code is not a node; the same layout as gpuetl's canonical output."""
    n_dates, n = r1.shape
    feats = {name: np.full((n_dates, n), np.nan) for name in FEATURE_NAMES}
    edges: dict[str, list[np.ndarray]] = {k: [] for k in ("edge_day", "edge_src", "edge_dst", "edge_weight")}
    for t in range(cfg.min_observations, n_dates):
        nodes, weights, adjacency = day_graph(r1, t, cfg)
        src, dst = np.nonzero(np.triu(adjacency, 1))
        edges["edge_day"].append(np.full(len(src), t, dtype=np.float64))
        edges["edge_src"].append(src.astype(np.float64))
        edges["edge_dst"].append(dst.astype(np.float64))
        edges["edge_weight"].append(weights[src, dst])
        feats["graph_degree"][t] = np.where(nodes, adjacency.sum(axis=1), np.nan)
        feats["graph_wdegree"][t] = np.where(nodes, weights.sum(axis=1), np.nan)
        for name, r in (("graph_peer_ret_1d", r1[t]), ("graph_peer_ret_5d", r5[t])):
            seen = np.isfinite(r)
            num, den = weights @ np.where(seen, r, 0.0), weights @ seen.astype(np.float64)
            feats[name][t] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in edges.items()}
    return out | {k: v.reshape(-1) for k, v in feats.items()} | {"grid": np.array([n_dates, n], dtype=np.float64)}


def analytics(graphs: dict[str, np.ndarray], shape: tuple[int, int], cfg: GraphConfig) -> dict[str, np.ndarray]:
    """PageRank and Louvain communities of each day's graph with networkx, one day at a time: dense (dates x codes)
    flattened, NaN where a code is not a node; communities numbered by their smallest code index."""
    n_dates, n = shape
    nodes = np.isfinite(graphs["graph_degree"]).reshape(n_dates, n)
    pagerank, community = np.full((n_dates, n), np.nan), np.full((n_dates, n), np.nan)
    day = graphs["edge_day"].astype(np.int64)
    bounds = np.searchsorted(day, np.arange(n_dates + 1))
    for t in np.flatnonzero(nodes.any(axis=1)):
        g = nx.Graph()
        members = np.flatnonzero(nodes[t]).tolist()
        g.add_nodes_from(members)
        lo, hi = bounds[t], bounds[t + 1]
        g.add_weighted_edges_from(zip(graphs["edge_src"][lo:hi].astype(int).tolist(),
                                      graphs["edge_dst"][lo:hi].astype(int).tolist(),
                                      graphs["edge_weight"][lo:hi].tolist(), strict=True))
        pr = nx.pagerank(g, alpha=cfg.pagerank.damping, weight="weight", tol=cfg.pagerank.tol / len(members),
                         max_iter=cfg.pagerank.max_iter)
        pagerank[t, members] = [pr[v] for v in members]
        parts = nx.community.louvain_communities(g, weight="weight", resolution=cfg.louvain.resolution,
                                                 threshold=cfg.louvain.threshold, max_level=cfg.louvain.max_level,
                                                 seed=cfg.louvain.seed)
        for label, part in enumerate(sorted(parts, key=min)):
            community[t, sorted(part)] = label
    return {"pagerank": pagerank.reshape(-1), "community": community.reshape(-1)}


def modularity(graphs: dict[str, Any], community: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Weighted modularity (resolution 1) of each day's partition, NaN on days without edges."""
    n_dates, n = shape
    label = community.reshape(n_dates, n)
    day = graphs["edge_day"].astype(np.int64)
    src, dst = graphs["edge_src"].astype(np.int64), graphs["edge_dst"].astype(np.int64)
    w = graphs["edge_weight"]
    total = np.bincount(day, weights=w, minlength=n_dates)  # m per day
    inside = np.bincount(day, weights=np.where(label[day, src] == label[day, dst], w, 0.0), minlength=n_dates)
    degree = np.zeros((n_dates, n))
    np.add.at(degree, (day, src), w)
    np.add.at(degree, (day, dst), w)
    q = np.full(n_dates, np.nan)
    for t in np.flatnonzero(total > 0):
        ok = np.isfinite(label[t])
        per = np.bincount(label[t, ok].astype(np.int64), weights=degree[t, ok])
        q[t] = inside[t] / total[t] - np.sum((per / (2.0 * total[t])) ** 2)
    return q
