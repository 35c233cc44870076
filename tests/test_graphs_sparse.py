"""The CPU's sparse graph path equals the dense one (shrunk_correlation + row_topk + union), edges bit for bit;
its per-day kernel equals a brute-force kNN with ties; numpy's dsyrk gives np.matmul's bits; the strided windows
equal the gathered ones; the edge sums equal the dense products."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gpuetl import ops
from gpuetl.graphs.config import GraphConfig
from gpuetl.graphs.daily import (
    BatchGraphs,
    batch_graphs,
    knn_graphs,
    pad_returns,
    shrunk_correlations,
    sparse_graphs,
    window_stack,
)
from gpuetl.graphs.features import GraphBatch, graph
from gpuetl.graphs.returns import Returns
from gpuetl.kernels import knn
from gpuetl.kernels.knn import day_knn_cpu, gram_upper, offdiagonal_mean_cpu, shrunk_correlation_cpu
from tests._testing import CPU, assert_backend_equal
from tests.support.graphs import factor_returns, graph_config


def dense_reference(r1: np.ndarray, days: np.ndarray, cfg: GraphConfig, eligible: Any = None) -> BatchGraphs:
    """The dense CPU path: the GPU's algorithm (batched matmul, shrink kernel, row top-k, union) on NumPy."""
    padded = pad_returns(np, r1, cfg.window)
    cand, valid = shrunk_correlations(CPU, padded, days, cfg, eligible)
    return knn_graphs(CPU, days, cand, valid, cfg)


def assert_same_edges(got: BatchGraphs, want: BatchGraphs) -> None:
    np.testing.assert_array_equal(got.valid, want.valid)
    for name in ("edge_batch", "edge_src", "edge_dst", "edge_weight"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("overrides", [(), ("knn.k=1",), ("knn.threshold=-1", "knn.k=6", "features.enabled=false"),
                                       ("shrinkage.gamma=0.4", "knn.grid_bits=48")])  # 48 bits: any other order shows
def test_sparse_equals_dense_path(threads: int, overrides: tuple[str, ...]) -> None:
    cfg = graph_config(*overrides)
    r1, _ = factor_returns(90, 37, seed=21, missing=0.1)
    r1[:, 4] = 0.002  # constant: never a node
    r1[30:, 9] = np.nan  # drops below the coverage rule
    days = np.arange(cfg.min_observations, 90)
    got = sparse_graphs(pad_returns(np, r1, cfg.window), days, cfg, threads=threads)
    want = dense_reference(r1, days, cfg)
    assert len(want.edge_src) > 100 and not want.valid[:, 4].any() and not want.valid[-1, 9]
    assert_same_edges(got, want)
    assert got.weights is None and got.adjacency is None


def test_sparse_path_with_irregular_days_and_eligible_codes() -> None:
    cfg = graph_config()
    r1, _ = factor_returns(80, 25, seed=5)
    days = np.array([17, 18, 25, 40, 41, 79])  # not evenly spaced: the windows are gathered
    eligible = np.random.default_rng(2).random((len(days), 25)) > 0.2
    got = sparse_graphs(pad_returns(np, r1, cfg.window), days, cfg, eligible, threads=2)
    want = dense_reference(r1, days, cfg, eligible)
    assert not (got.valid & ~eligible).any()
    assert_same_edges(got, want)
    assert batch_graphs(CPU, pad_returns(np, r1, cfg.window), days, cfg, eligible).weights is None  # the CPU's path


def test_constant_correlation_target() -> None:
    cfg = graph_config("shrinkage.target=constant_correlation", "shrinkage.gamma=0.5", "knn.threshold=0.1")
    r1, _ = factor_returns(70, 30, seed=8)
    days = np.arange(30, 70, 3)
    got = sparse_graphs(pad_returns(np, r1, cfg.window), days, cfg, threads=2)
    want = dense_reference(r1, days, cfg)
    assert_same_edges(got, want)
    # the target itself: the mean off-diagonal correlation over the nodes, from the upper triangle only
    x = np.random.default_rng(3).standard_normal((20, 12))
    s = x.T @ x
    valid = np.ones(12, dtype=bool)
    valid[[2, 7]] = False
    inv = np.where(valid, 1.0 / np.sqrt(np.diag(s)), 0.0)
    rho = s * np.outer(inv, inv)
    off = valid[:, None] & valid[None, :] & ~np.eye(12, dtype=bool)
    s[np.tril_indices(12, -1)] = np.nan  # never read
    assert_backend_equal(offdiagonal_mean_cpu(s, inv, valid), rho[off].mean(), tol="sum_order")
    assert offdiagonal_mean_cpu(s, inv, np.eye(1, 12, dtype=bool)[0]) == 0.0  # one node: no pair


def brute_union(w: np.ndarray, k: int) -> list[tuple[int, int, float]]:
    """Union of each row's k best (weight descending, then the smaller column), -inf never kept."""
    edges = {}
    for i, row in enumerate(w):
        kept = sorted((-v, j) for j, v in enumerate(row) if v > -np.inf)[:k]
        for _, j in kept:
            edges[(min(i, j), max(i, j))] = float(w[i, j])
    return [(a, b, v) for (a, b), v in sorted(edges.items())]


@pytest.mark.parametrize("k", [1, 3, 15])
def test_day_kernel_equals_brute_force_with_ties(k: int) -> None:
    rng = np.random.default_rng(40 + k)
    n = 45
    s = rng.choice([0.3, 0.45, 0.5, 0.8, -0.2], size=(n, n))  # a few distinct values: many exact ties
    s = np.triu(s, 1) + np.triu(s, 1).T + np.eye(n)
    valid = rng.random(n) > 0.15
    inv = np.where(valid, 1.0, 0.0)
    dense = shrunk_correlation_cpu(s[None].copy(), inv[None], valid[None], np.zeros(1), gamma=0.0, threshold=0.3,
                                   bits=32)[0]
    upper = s.copy()
    upper[np.tril_indices(n, -1)] = np.nan  # the kernel reads the upper triangle only
    src, dst, weight = day_knn_cpu(upper, inv, valid, 0.0, gamma=0.0, threshold=0.3, bits=32, k=k)
    got = list(zip(src.tolist(), dst.tolist(), weight.tolist(), strict=True))
    assert got == brute_union(dense, k)
    cleared = upper.copy()
    again = day_knn_cpu(cleared, inv, valid, 0.0, gamma=0.0, threshold=0.3, bits=32, k=k, clear=True)
    assert list(zip(*(a.tolist() for a in again), strict=True)) == got
    assert (cleared[np.triu_indices(n)] == 0.0).all()  # ready for the next gram_upper(..., zeroed=True)
    np.testing.assert_array_equal(cleared[np.tril_indices(n, -1)], upper[np.tril_indices(n, -1)])
    assert len(got) > 0 and not set(np.flatnonzero(~valid)) & (set(src.tolist()) | set(dst.tolist()))


def test_day_kernel_weights_are_the_shrink_kernels_to_the_last_bit() -> None:
    rng = np.random.default_rng(7)
    n = 60
    x = rng.standard_normal((30, n)) + rng.standard_normal((30, 1))
    s = x.T @ x
    valid = np.ones(n, dtype=bool)
    inv = 1.0 / np.sqrt(np.diag(s))
    # a grid of 2^-52: a different rounding anywhere shows; k = n - 1 keeps every candidate
    dense = shrunk_correlation_cpu(s[None].copy(), inv[None], valid[None], np.array([0.2]), gamma=0.3, threshold=0.1,
                                   bits=52)[0]
    src, dst, weight = day_knn_cpu(s, inv, valid, 0.2, gamma=0.3, threshold=0.1, bits=52, k=n - 1)
    want = brute_union(dense, n - 1)
    assert len(want) > 800
    assert list(zip(src.tolist(), dst.tolist(), weight.tolist(), strict=True)) == want


def test_day_kernel_rejects_bad_inputs() -> None:
    s = np.eye(4)
    with pytest.raises(ValueError, match="k must be in"):
        day_knn_cpu(s, np.ones(4), np.ones(4, bool), 0.0, gamma=0.1, threshold=0.2, bits=32, k=0)
    with pytest.raises(ValueError, match="inv and valid"):
        day_knn_cpu(s, np.ones(3), np.ones(4, bool), 0.0, gamma=0.1, threshold=0.2, bits=32, k=2)
    with pytest.raises(ValueError, match="C-contiguous"):
        day_knn_cpu(np.eye(4)[:, ::-1], np.ones(4), np.ones(4, bool), 0.0, gamma=0.1, threshold=0.2, bits=32, k=2)


@pytest.mark.parametrize("shape", [(60, 200), (7, 33), (300, 5)])
def test_gram_upper_is_numpys_matmul_bit_for_bit(shape: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(shape[1]).standard_normal(shape) * 0.01
    want = np.matmul(x.T, x)
    upper = np.triu_indices(shape[1])
    got = gram_upper(x, np.full((shape[1], shape[1]), np.nan))
    np.testing.assert_array_equal(got[upper], want[upper])
    with knn.single_threaded_blas():  # the workers' setting: the same bits on one thread
        np.testing.assert_array_equal(gram_upper(x, np.empty_like(want))[upper], want[upper])
        added = gram_upper(x, np.zeros_like(want), zeroed=True)  # BLAS adds to the zeros: the same sums
        np.testing.assert_array_equal(added[upper], want[upper])
    monkeypatch.setattr(knn, "blas", lambda: None)  # no bundled OpenBLAS: np.matmul itself
    np.testing.assert_array_equal(gram_upper(x, np.empty_like(want)), want)


def test_single_threaded_blas_nests_and_restores() -> None:
    lib = knn.blas()
    if lib is None:
        pytest.skip("numpy does not bundle scipy-openblas here")
    before = lib.get_threads()
    with knn.single_threaded_blas():
        with knn.single_threaded_blas():
            assert lib.get_threads() == 1
        assert lib.get_threads() == 1  # the outer caller is still inside
    assert lib.get_threads() == before


def test_window_stack_equals_the_gathered_windows() -> None:
    a = np.arange(40.0 * 3).reshape(40, 3)
    for days in (np.array([2, 5, 8, 11]), np.array([0]), np.array([3, 4, 9]), np.array([7, 7])):
        got = window_stack(a, days, 6)
        np.testing.assert_array_equal(got, a[days[:, None] + np.arange(6)[None, :]])


def test_graph_features_equal_the_dense_products() -> None:
    cfg = graph_config("every_n_days=3", "features.pagerank=false", "features.louvain=false")
    r1, _ = factor_returns(75, 26, seed=13)
    r5, _ = factor_returns(75, 26, seed=14)
    returns = Returns(np.arange(75), r1, r5)
    days = np.arange(20, 75, 3)
    params = {"config": cfg}
    got = ops.run(graph, GraphBatch(CPU, sparse_graphs(pad_returns(np, r1, cfg.window), days, cfg), returns, 3), params)
    want = ops.run(graph, GraphBatch(CPU, dense_reference(r1, days, cfg), returns, 3), params)
    assert set(got) == set(want)
    for name in ("graph_degree", "graph_wdegree"):  # sums of grid weights: exact in any order
        assert_backend_equal(got[name], want[name], tol="exact", err_msg=name)
    for name in ("graph_peer_ret_1d", "graph_peer_ret_5d"):
        assert np.isfinite(want[name]).mean() > 0.5 and np.isnan(want[name][-1, 1:]).all()  # past the last date
        assert_backend_equal(got[name], want[name], tol="sum_order", err_msg=name)
