"""GPU == CPU for the graph kernels and the whole graph pipeline (skipped without a usable GPU).

Kernels on equal inputs: bit-identical. The pipeline: the covariance matmul differs in the last bits between
cuBLAS and OpenBLAS; the 2^-32 weight grid absorbs that, so edges (and ties) are the same, weights equal up to
one grid step;
PageRank to 1e-6; degrees exactly; Louvain partitions (cuGraph vs networkx) compared by modularity. Each
comparison names its tolerance (tests/_testing.py, gpuetl.ops.TOLERANCES).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from gpuetl.backend import Backend
from gpuetl.graphs.build import build_graphs
from gpuetl.graphs.returns import Returns
from gpuetl.kernels.graph_analytics import union_louvain_cpu, union_pagerank_cpu
from gpuetl.kernels.knn import row_topk_cpu, shrunk_correlation_cpu
from tests._testing import CPU, assert_backend_equal
from tests.support.graphs import SIZES, factor_returns, graph_config, random_union, segment_graph

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("k", [1, 15, 64])
def test_row_topk_gpu_equals_cpu(gpu_backend: Backend, k: int) -> None:
    xp = gpu_backend.xp
    rng = np.random.default_rng(k)
    x = rng.choice([0.1, 0.2, 0.3, -np.inf, np.nan], size=(1000, 333))
    x[:, ::7] = rng.standard_normal((1000, 48))
    want_i, want_v = row_topk_cpu(x, k)
    got_i, got_v = gpu_backend.kernels.row_topk(xp.asarray(x), k)
    assert_backend_equal(got_i, want_i, tol="exact")
    assert_backend_equal(got_v, want_v, tol="exact")


@pytest.mark.parametrize("n", [1, 31, 32, 33, 200])
def test_shrunk_correlation_gpu_equals_cpu(gpu_backend: Backend, n: int) -> None:
    xp = gpu_backend.xp
    rng = np.random.default_rng(n)
    x = rng.standard_normal((4, 40, n))
    s = np.matmul(x.transpose(0, 2, 1), x)
    s[:, :, 0] += 1e-9  # asymmetric on purpose
    inv = 1.0 / np.sqrt(np.abs(np.diagonal(s, axis1=1, axis2=2)))
    valid = rng.random((4, n)) > 0.2
    target = np.array([0.0, 0.1, 0.2, -0.1])
    want = shrunk_correlation_cpu(s.copy(), inv, valid, target, gamma=0.1, threshold=0.05, bits=32)
    got = gpu_backend.kernels.shrunk_correlation(xp.asarray(s), xp.asarray(inv), xp.asarray(valid),
                                                 xp.asarray(target), gamma=0.1, threshold=0.05, bits=32)
    assert_backend_equal(got, want, tol="exact")


@pytest.mark.cugraph
def test_union_pagerank_and_louvain_gpu_vs_cpu(gpu_backend: Backend) -> None:
    xp = gpu_backend.xp
    src, dst, weight, offsets = random_union(seed=2)
    args = [xp.asarray(a) for a in (src, dst, weight, offsets)]
    pr_cpu = union_pagerank_cpu(src, dst, weight, offsets, damping=0.85, tol=1e-10, max_iter=500)
    pr_gpu = gpu_backend.kernels.union_pagerank(*args, damping=0.85, tol=1e-10, max_iter=500)
    assert_backend_equal(pr_gpu, pr_cpu, tol="pagerank")
    lab_cpu = union_louvain_cpu(src, dst, weight, offsets, resolution=1.0, threshold=1e-7, max_level=100, seed=1)
    lab_gpu = xp.asnumpy(gpu_backend.kernels.union_louvain(*args, resolution=1.0, threshold=1e-7, max_level=100,
                                                           seed=1))
    for g in range(len(SIZES)):
        lo, hi = offsets[g], offsets[g + 1]
        graph = segment_graph(src, dst, weight, lo, hi)
        if graph.number_of_edges() == 0:
            continue
        q = [nx.community.modularity(graph, [set(np.flatnonzero(lab[lo:hi] == c).tolist())
                                             for c in np.unique(lab[lo:hi])]) for lab in (lab_cpu, lab_gpu)]
        assert_backend_equal(q[1], q[0], tol="louvain", err_msg=f"modularity of day {g}")


@pytest.mark.cugraph
def test_pipeline_gpu_equals_cpu(gpu_backend: Backend) -> None:
    xp = gpu_backend.xp
    r1, _ = factor_returns(120, 300, seed=4)
    r5, _ = factor_returns(120, 300, seed=5)
    cfg = graph_config("knn.k=8", "knn.threshold=0.1", "batch.max_days=16")
    cpu = build_graphs(CPU, Returns(np.arange(120), r1, r5), cfg, start=2)
    gpu = build_graphs(gpu_backend, Returns(xp.arange(120), xp.asarray(r1), xp.asarray(r5)), cfg, start=2)
    for k in ("day", "src", "dst"):
        assert_backend_equal(gpu.edges[k], cpu.edges[k], tol="exact", err_msg=k)
    # equal but for a weight whose two computations straddle a grid midpoint (probability ~1e-7 per weight)
    assert_backend_equal(gpu.edges["weight"], cpu.edges["weight"], tol="weight_grid")
    g = {k: xp.asnumpy(v) for k, v in gpu.features.items()}
    c = cpu.features
    assert_backend_equal(g["graph_degree"], c["graph_degree"], tol="exact")
    assert_backend_equal(g["graph_community_size"] > 0, c["graph_community_size"] > 0, tol="exact")
    # weighted degree sums up to 2k weights, each of which may sit one grid step (2^-32) apart (sums of values
    # on the grid are exact in float64, in any order)
    assert_backend_equal(g["graph_wdegree"], c["graph_wdegree"], tol="weight_grid", terms=2 * cfg.knn.k)
    assert_backend_equal(g["graph_pagerank"], c["graph_pagerank"], tol="pagerank")
    for name in ("graph_peer_ret_1d", "graph_peer_ret_5d"):
        assert_backend_equal(g[name], c[name], tol="weight_grid_average", err_msg=name)
    edges = cpu.edges
    for day in cpu.graph_days[cpu.graph_days >= 16][::10]:
        nodes = np.flatnonzero(np.isfinite(c["graph_degree"][day]))
        graph = nx.Graph()
        graph.add_nodes_from(nodes.tolist())
        on = edges["day"] == day
        graph.add_weighted_edges_from(zip(edges["src"][on], edges["dst"][on], edges["weight"][on], strict=True))
        q = [nx.community.modularity(graph, [set(nodes[f["graph_community"][day][nodes] == lab].tolist())
                                             for lab in np.unique(f["graph_community"][day][nodes])])
             for f in (c, g)]
        assert_backend_equal(q[1], q[0], tol="louvain", err_msg=f"modularity of day {day}")
