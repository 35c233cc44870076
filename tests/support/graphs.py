"""Builders for graph tests: a small graph config, factor-model returns, random disjoint-union graphs."""

from __future__ import annotations

import networkx as nx
import numpy as np

from gpuetl.graphs.config import GraphConfig, load_graph_config

SMALL = ["window=20", "halflife=8.0", "min_coverage=0.8", "knn.k=3", "knn.threshold=0.2"]


def graph_config(*overrides: str) -> GraphConfig:
    return load_graph_config(overrides=[*SMALL, *overrides])


def factor_returns(n_dates: int, n_codes: int, seed: int = 0, missing: float = 0.05,
                   sectors: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Market + sector + noise daily returns (NaN holes, row 0 missing) and each code's sector."""
    rng = np.random.default_rng(seed)
    sector = rng.integers(0, sectors, n_codes)
    r = (rng.standard_normal((n_dates, 1)) * 0.01 + rng.standard_normal((n_dates, sectors))[:, sector] * 0.01
         + rng.standard_normal((n_dates, n_codes)) * 0.012)
    r[rng.random(r.shape) < missing] = np.nan
    r[0] = np.nan
    return r, sector


SIZES = [30, 1, 0, 25, 40]  # a singleton and an empty segment on purpose


def random_union(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(SIZES)])
    src, dst = [], []
    for g, n in enumerate(SIZES):
        if n < 2:
            continue
        pairs = {(int(a), int(b)) for a, b in rng.integers(0, n - 3, size=(3 * n, 2)) if a < b}  # last 3 isolated
        src += [offsets[g] + a for a, _ in sorted(pairs)]
        dst += [offsets[g] + b for _, b in sorted(pairs)]
    weight = rng.uniform(0.25, 1.0, len(src))
    return np.array(src), np.array(dst), weight, offsets


def segment_graph(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, lo: int, hi: int) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(range(hi - lo))
    inside = (src >= lo) & (src < hi)
    graph.add_weighted_edges_from(zip(src[inside] - lo, dst[inside] - lo, weight[inside], strict=True))
    return graph
