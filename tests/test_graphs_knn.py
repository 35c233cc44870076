"""Top-k and kNN edges equal brute-force references (ties included); threshold and symmetrisation rules."""

from __future__ import annotations

import numpy as np
import pytest

from gpuetl.backend import Backend
from gpuetl.graphs.daily import knn_graphs
from gpuetl.kernels import KernelSet
from gpuetl.kernels.knn import row_topk_cpu
from tests._testing import assert_backend_equal, host
from tests.support.graphs import graph_config


def brute_topk(row: np.ndarray, k: int) -> list[tuple[int, float]]:
    cands = [(j, v) for j, v in enumerate(row) if v > -np.inf]  # NaN and -inf are never candidates
    cands.sort(key=lambda jv: (-jv[1], jv[0]))  # weight descending, then the smaller index
    return cands[:k]


def tied_matrix(rng: np.random.Generator, batch: int, n: int) -> np.ndarray:
    """Symmetric candidate weights with many exact ties (a few distinct values), -inf holes, -inf diagonal."""
    w = rng.choice([0.3, 0.4, 0.5, 0.75], size=(batch, n, n))
    w = np.triu(w, 1)
    w = w + w.transpose(0, 2, 1)
    w[rng.random((batch, n, n)) < 0.3] = -np.inf
    w = np.where(np.isinf(w) | np.isinf(w.transpose(0, 2, 1)), -np.inf, w)  # keep it symmetric
    w[:, np.arange(n), np.arange(n)] = -np.inf
    return w


@pytest.mark.parametrize("k", [1, 3, 15])
def test_row_topk_equals_brute_force_with_ties(k: int) -> None:
    rng = np.random.default_rng(k)
    x = rng.choice([0.1, 0.2, 0.3, -np.inf, np.nan], size=(60, 50), p=[0.3, 0.2, 0.2, 0.2, 0.1])
    x[0] = -np.inf  # no candidate at all
    x[1, :] = 0.5  # all tied: the k smallest indices
    idx, val = row_topk_cpu(x, k)
    for r in range(len(x)):
        want = brute_topk(x[r], k)
        got = [(int(j), float(v)) for j, v in zip(idx[r], val[r], strict=True) if j >= 0]
        assert got == want
        assert np.all(idx[r, len(want):] == -1) and np.all(val[r, len(want):] == -np.inf)
    assert list(idx[1]) == list(range(k))


def test_row_topk_rejects_bad_k() -> None:
    with pytest.raises(ValueError, match="k must be in"):
        row_topk_cpu(np.zeros((2, 3)), 0)
    assert KernelSet("cpu").row_topk is row_topk_cpu


@pytest.mark.parametrize("k", [1, 2, 4])
def test_knn_edges_equal_brute_force(backend: Backend, k: int) -> None:
    cfg = graph_config(f"knn.k={k}")
    rng = np.random.default_rng(10 + k)
    batch, n = 3, 24
    w = tied_matrix(rng, batch, n)
    valid = np.ones((batch, n), dtype=bool)
    xp = backend.xp
    g = knn_graphs(backend, xp.asarray([7, 8, 9]), xp.asarray(w.copy()), xp.asarray(valid), cfg)
    got = {(int(b), int(s), int(d)): float(v) for b, s, d, v in
           zip(host(backend, g.edge_batch), host(backend, g.edge_src), host(backend, g.edge_dst),
               host(backend, g.edge_weight), strict=True)}
    want = {}
    for b in range(batch):
        for i in range(n):
            for j, v in brute_topk(w[b, i], k):
                want[(b, min(i, j), max(i, j))] = v  # union: kept by either end
    assert got == want
    keys = list(got)
    assert keys == sorted(keys) and all(s < d for _, s, d in keys)
    adjacency = host(backend, g.adjacency)
    np.testing.assert_array_equal(adjacency, adjacency.transpose(0, 2, 1))
    assert adjacency.sum() == 2 * len(want)
    weights = host(backend, g.weights)
    assert_backend_equal(weights, np.where(adjacency, w, 0.0), tol="exact")  # the weight matrix is zero off the graph


def test_union_keeps_one_sided_choices_and_degrees_can_exceed_k(backend: Backend) -> None:
    # a hub: every leaf's best neighbour is the hub, the hub keeps only k of them, the union keeps all leaves
    cfg = graph_config("knn.k=2")
    n = 6
    w = np.full((1, n, n), -np.inf)
    w[0, 0, 1:] = w[0, 1:, 0] = [0.9, 0.8, 0.7, 0.6, 0.5]
    xp = backend.xp
    g = knn_graphs(backend, xp.asarray([0]), xp.asarray(w), xp.asarray(np.ones((1, n), bool)), cfg)
    pairs = list(zip(host(backend, g.edge_src).tolist(), host(backend, g.edge_dst).tolist(), strict=True))
    assert pairs == [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)]
    assert host(backend, g.adjacency)[0, 0].sum() == 5  # degree 5 > k = 2
