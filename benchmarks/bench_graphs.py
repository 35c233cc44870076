"""All daily correlation graphs (default config: window 60, halflife 30, k 15) of a codes x days return matrix.

The returns are synthetic (market + 33 sectors + idiosyncratic, 2% missing) and already on the backend; the
timed part is `build_graphs`: batched covariances, shrinkage, top-k, symmetrisation and the graph features.
`features` picks what runs after the graphs: all (degree, weighted degree, peer returns, PageRank, Louvain),
`dense` (without PageRank/Louvain, i.e. without cuGraph on the GPU) or `none` (edges only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.harness import main
from gpuetl.backend import Backend
from gpuetl.graphs.build import build_graphs
from gpuetl.graphs.config import load_graph_config
from gpuetl.graphs.returns import Returns

SIZES = {
    "500x250d": {"codes": 500, "days": 250, "features": "all"},
    "4000x120d": {"codes": 4000, "days": 120, "features": "all"},  # CPU: ~60 graph days, seconds per day
    "4000x120d-dense": {"codes": 4000, "days": 120, "features": "dense"},
    "4000x2450d": {"codes": 4000, "days": 2450, "features": "all"},  # 4,000 codes x 10 years
    "4000x2450d-dense": {"codes": 4000, "days": 2450, "features": "dense"},
    "4000x2450d-edges": {"codes": 4000, "days": 2450, "features": "none"},
}
FEATURES = {"all": [], "dense": ["features.pagerank=false", "features.louvain=false"],
            "none": ["features.enabled=false"]}


def synthetic_returns(codes: int, days: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sector = rng.integers(0, 33, codes)
    beta = rng.uniform(0.5, 1.5, codes)
    market = rng.standard_normal((days, 1)) * 0.012
    r = beta * market + rng.standard_normal((days, 33))[:, sector] * 0.007
    r += rng.standard_normal((days, codes)) * rng.uniform(0.012, 0.03, codes)
    r[rng.random(r.shape) < 0.02] = np.nan
    r[0] = np.nan
    r5 = np.full_like(r, np.nan)
    r5[5:] = np.exp(np.nancumsum(np.log1p(np.nan_to_num(r)), axis=0)[5:] - np.nancumsum(
        np.log1p(np.nan_to_num(r)), axis=0)[:-5]) - 1.0
    return r, r5


def setup(backend: Backend, codes: int, days: int, features: str) -> dict[str, Any]:
    r1, r5 = synthetic_returns(codes, days)
    xp = backend.xp
    returns = Returns(xp.arange(days, dtype=xp.int64), xp.asarray(r1), xp.asarray(r5))
    return {"returns": returns, "config": load_graph_config(overrides=FEATURES[features])}


def run(backend: Backend, inputs: dict[str, Any]) -> None:
    build_graphs(backend, inputs["returns"], inputs["config"])


if __name__ == "__main__":
    main("graphs", SIZES, setup, run, smoke_size="500x250d")
