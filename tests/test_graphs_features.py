"""Graph features: PageRank vs networkx and a plain power iteration, degrees exact, Louvain (our Numba one) vs
networkx by modularity, canonical labels, neighbour-averaged returns vs a pandas reference. Louvain's own tests
(levels, seeds, independence of the days, networkx's quality over many graphs) are tests/test_kernel_louvain.py."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from gpuetl.graphs.build import GraphOutput, build_graphs
from gpuetl.graphs.returns import Returns
from gpuetl.kernels.graph_analytics import canonical_labels, union_louvain_cpu, union_pagerank_cpu
from tests._testing import CPU, TOL, assert_backend_equal
from tests.support.graphs import SIZES, factor_returns, graph_config, random_union, segment_graph


def plain_pagerank(graph: nx.Graph, damping: float, iterations: int = 3000) -> np.ndarray:
    """Dense power iteration: follow an edge with probability w / out-weight, dangling mass spread evenly."""
    n = graph.number_of_nodes()
    a = nx.to_numpy_array(graph, nodelist=range(n), weight="weight")
    out = a.sum(axis=1)
    x = np.full(n, 1.0 / n)
    for _ in range(iterations):
        flow = np.zeros(n)
        for u in range(n):
            if out[u] > 0:
                flow += x[u] * a[u] / out[u]
        x = damping * flow + (damping * x[out == 0].sum() + 1 - damping) / n
    return x


def test_pagerank_equals_networkx_and_a_plain_power_iteration() -> None:
    src, dst, weight, offsets = random_union()
    pr = union_pagerank_cpu(src, dst, weight, offsets, damping=0.85, tol=1e-12, max_iter=1000)
    for g in range(len(SIZES)):
        lo, hi = offsets[g], offsets[g + 1]
        if hi == lo:
            continue
        graph = segment_graph(src, dst, weight, lo, hi)
        want = nx.pagerank(graph, alpha=0.85, tol=1e-15, max_iter=10_000, weight="weight")
        assert_backend_equal(pr[lo:hi], [want[v] for v in range(hi - lo)], tol="pagerank")
        assert_backend_equal(pr[lo:hi], plain_pagerank(graph, 0.85), tol="pagerank_stop")
        assert pr[lo:hi].sum() == pytest.approx(1.0, abs=1e-12)
        alone = union_pagerank_cpu(src[(src >= lo) & (src < hi)] - lo, dst[(src >= lo) & (src < hi)] - lo,
                                   weight[(src >= lo) & (src < hi)], np.array([0, hi - lo]), damping=0.85,
                                   tol=1e-12, max_iter=1000)
        assert_backend_equal(pr[lo:hi], alone, tol="exact")  # a day's PageRank does not depend on the other days


def test_louvain_per_day_is_a_canonical_partition_as_good_as_networkx() -> None:
    src, dst, weight, offsets = random_union(seed=4)
    labels = union_louvain_cpu(src, dst, weight, offsets, resolution=1.0, threshold=1e-7, max_level=100, seed=9)
    for g in range(len(SIZES)):
        lo, hi = offsets[g], offsets[g + 1]
        if hi == lo:
            continue
        graph = segment_graph(src, dst, weight, lo, hi)
        if graph.number_of_edges() == 0:
            assert labels[lo:hi].tolist() == list(range(hi - lo))  # isolated vertices are singletons
            continue
        got = [set(np.flatnonzero(labels[lo:hi] == c).tolist()) for c in range(labels[lo:hi].max() + 1)]
        assert all(got) and sum(map(len, got)) == hi - lo  # a partition: every label used, every vertex once
        want = nx.community.louvain_communities(graph, weight="weight", resolution=1.0, threshold=1e-7, seed=9)
        # another visiting order than networkx's: about the same quality, not the same partition
        assert nx.community.modularity(graph, got) >= nx.community.modularity(graph, want) - TOL["louvain"][1]
        first_seen = [int(c) for c in pd.unique(labels[lo:hi])]
        assert first_seen == list(range(len(first_seen)))  # numbered in the order of their smallest vertex


def test_louvain_finds_planted_communities() -> None:
    a, b = [0, 0, 1, 3, 3, 4], [1, 2, 2, 4, 5, 5]
    src, dst = np.array([*a, 2]), np.array([*b, 3])
    weight = np.array([1.0] * 6 + [0.05])
    labels = union_louvain_cpu(src, dst, weight, np.array([0, 6]), resolution=1.0, threshold=1e-7, max_level=10,
                               seed=0)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_canonical_labels_and_union_checks() -> None:
    offsets = np.array([0, 4, 4, 7])
    raw = np.array([9, 3, 9, 5, 2, 2, 8])
    assert canonical_labels(np, raw, offsets).tolist() == [0, 1, 0, 2, 0, 0, 1]
    ok = dict(damping=0.85, tol=1e-10, max_iter=100)
    with pytest.raises(ValueError, match="joins two segments"):
        union_pagerank_cpu(np.array([0]), np.array([5]), np.array([1.0]), offsets, **ok)
    with pytest.raises(ValueError, match="self loops"):
        union_pagerank_cpu(np.array([1]), np.array([1]), np.array([1.0]), offsets, **ok)
    with pytest.raises(ValueError, match="positive"):
        union_pagerank_cpu(np.array([0]), np.array([1]), np.array([-0.5]), offsets, **ok)


def graphs_of(every_n_days: int = 1) -> tuple[np.ndarray, np.ndarray, GraphOutput]:
    cfg = graph_config("knn.k=3", f"every_n_days={every_n_days}")
    r1, _ = factor_returns(70, 24, seed=8)
    r5, _ = factor_returns(70, 24, seed=9)
    out = build_graphs(CPU, Returns(np.arange(70) + 18_000, r1, r5), cfg, start=4)
    return r1, r5, out


def edges_frame(out: GraphOutput) -> pd.DataFrame:
    return pd.DataFrame({k: np.asarray(v) for k, v in out.edges.items()})


@pytest.mark.parametrize("every_n_days", [1, 3])
def test_degrees_exact_and_neighbour_returns_equal_pandas(every_n_days: int) -> None:
    r1, r5, out = graphs_of(every_n_days)
    edges = edges_frame(out)
    n_dates, n_codes = r1.shape
    both = pd.concat([edges, edges.rename(columns={"src": "dst", "dst": "src"})], ignore_index=True)
    graph_days = out.graph_days[out.graph_days >= 16]  # days with a full-enough window
    assert set(edges["day"]) <= set(graph_days.tolist()) and len(edges) > 0
    for day in graph_days:
        nodes = np.isfinite(out.features["graph_degree"][day])
        day_edges = both[both["day"] == day]
        degree = day_edges.groupby("src").size().reindex(range(n_codes), fill_value=0).to_numpy()
        wdegree = day_edges.groupby("src")["weight"].sum().reindex(range(n_codes), fill_value=0.0).to_numpy()
        assert_backend_equal(out.features["graph_degree"][day][nodes], degree[nodes], tol="exact")
        # weights on the 2^-32 grid: their sums are exact in float64, in any order
        assert_backend_equal(out.features["graph_wdegree"][day][nodes], wdegree[nodes], tol="exact")
        assert not day_edges["src"].isin(np.flatnonzero(~nodes)).any()
    # the pandas reference: each served date takes the last graph at or before it and that date's returns
    rows = []
    for day in graph_days:
        for k in range(every_n_days):
            if day + k < n_dates:
                rows.append(both[both["day"] == day].assign(date=day + k))
    served = pd.concat(rows, ignore_index=True)
    for name, r in (("graph_peer_ret_1d", r1), ("graph_peer_ret_5d", r5)):
        ret = served["dst"].to_numpy()
        served["r"] = r[served["date"].to_numpy(), ret]
        seen = served[np.isfinite(served["r"])]
        ref = (seen.assign(wr=seen["weight"] * seen["r"]).groupby(["date", "src"])[["wr", "weight"]].sum())
        ref = ref["wr"] / ref["weight"]
        got = out.features[name][ref.index.get_level_values(0), ref.index.get_level_values(1)]
        assert_backend_equal(got, ref.to_numpy(), tol="sum_order", err_msg=name)
        dense = out.features[name]
        expected = np.full_like(dense, np.nan)
        expected[ref.index.get_level_values(0), ref.index.get_level_values(1)] = ref.to_numpy()
        np.testing.assert_array_equal(np.isnan(dense), np.isnan(expected))  # NaN exactly where pandas has none
    # the graph's own features are carried to the dates it serves, and dates before the first graph are NaN
    for day in graph_days:
        for k in range(1, every_n_days):
            if day + k < n_dates:
                assert_backend_equal(out.features["graph_pagerank"][day + k], out.features["graph_pagerank"][day],
                                     tol="exact")
    assert np.isnan(out.features["graph_degree"][:16]).all()


def test_pagerank_and_communities_per_day_match_networkx() -> None:
    _, _, out = graphs_of()
    edges = edges_frame(out)
    for day in out.graph_days[out.graph_days >= 16][::7]:
        nodes = np.flatnonzero(np.isfinite(out.features["graph_degree"][day]))
        graph = nx.Graph()
        graph.add_nodes_from(nodes.tolist())
        e = edges[edges["day"] == day]
        graph.add_weighted_edges_from(zip(e["src"], e["dst"], e["weight"], strict=True))
        want = nx.pagerank(graph, alpha=0.85, tol=1e-15, max_iter=10_000, weight="weight")
        assert_backend_equal(out.features["graph_pagerank"][day][nodes], [want[v] for v in nodes], tol="pagerank")
        comm = out.features["graph_community"][day][nodes]
        size = out.features["graph_community_size"][day][nodes]
        for c in np.unique(comm):
            assert (size[comm == c] == (comm == c).sum()).all()
        parts = [set(nodes[comm == c].tolist()) for c in np.unique(comm)]
        nx_parts = nx.community.louvain_communities(nx.relabel_nodes(graph, {v: i for i, v in enumerate(nodes)}),
                                                    weight="weight", resolution=1.0, threshold=1e-7, seed=42)
        q = nx.community.modularity(graph, parts)
        nx_q = nx.community.modularity(nx.relabel_nodes(graph, {v: i for i, v in enumerate(nodes)}), nx_parts)
        assert q >= nx_q - TOL["louvain"][1]  # our Louvain visits in another order: as good, not the same
