"""The graph config (configs/graph/*.yaml) as frozen dataclasses; values are checked at load time."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from dask.utils import parse_bytes

from gpuetl.config import ConfigError, load
from gpuetl.kernels.knn import MAX_K

DEFAULT_CONFIG = "configs/graph/default.yaml"


@dataclasses.dataclass(frozen=True)
class ShrinkageSettings:
    gamma: float
    target: Literal["identity", "constant_correlation"]


@dataclasses.dataclass(frozen=True)
class KnnSettings:
    k: int
    threshold: float
    grid_bits: int


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    max_days: int
    gpu_memory_fraction: float
    cpu_memory: str  # a size such as "2GB"

    @property
    def cpu_bytes(self) -> int:
        return int(parse_bytes(self.cpu_memory))


@dataclasses.dataclass(frozen=True)
class FeatureSettings:
    enabled: bool
    pagerank: bool
    louvain: bool


@dataclasses.dataclass(frozen=True)
class PageRankSettings:
    damping: float
    tol: float
    max_iter: int


@dataclasses.dataclass(frozen=True)
class LouvainSettings:
    resolution: float
    threshold: float
    max_level: int
    seed: int


@dataclasses.dataclass(frozen=True)
class GraphConfig:
    name: str
    window: int
    halflife: float
    min_coverage: float
    every_n_days: int
    shrinkage: ShrinkageSettings
    knn: KnnSettings
    batch: BatchSettings
    features: FeatureSettings
    pagerank: PageRankSettings
    louvain: LouvainSettings

    @property
    def min_observations(self) -> int:
        """Returns a code needs inside the window to be a node that day."""
        return max(1, math.ceil(self.min_coverage * self.window - 1e-9))


def load_graph_config(path: str | Path = DEFAULT_CONFIG, overrides: Iterable[str] = ()) -> GraphConfig:
    cfg = load(GraphConfig, path, overrides)
    validate(cfg)
    return cfg


def validate(cfg: GraphConfig) -> None:
    """Domain checks the schema cannot express; errors name the key."""
    checks = [
        (cfg.window >= 2, "window", "must be >= 2"),
        (cfg.halflife > 0, "halflife", "must be > 0"),
        (0 < cfg.min_coverage <= 1, "min_coverage", "must be in (0, 1]"),
        (cfg.every_n_days >= 1, "every_n_days", "must be >= 1"),
        (0 <= cfg.shrinkage.gamma <= 1, "shrinkage.gamma", "must be in [0, 1]"),
        (1 <= cfg.knn.k <= MAX_K, "knn.k", f"must be in [1, {MAX_K}]"),
        (-1 <= cfg.knn.threshold <= 1, "knn.threshold", "must be in [-1, 1]"),
        (8 <= cfg.knn.grid_bits <= 48, "knn.grid_bits", "must be in [8, 48]"),
        (cfg.batch.max_days >= 1, "batch.max_days", "must be >= 1"),
        (0 < cfg.batch.gpu_memory_fraction <= 1, "batch.gpu_memory_fraction", "must be in (0, 1]"),
        (0 < cfg.pagerank.damping < 1, "pagerank.damping", "must be in (0, 1)"),
        (cfg.pagerank.tol > 0, "pagerank.tol", "must be > 0"),
        (cfg.pagerank.max_iter >= 1, "pagerank.max_iter", "must be >= 1"),
        (cfg.louvain.resolution > 0, "louvain.resolution", "must be > 0"),
        (cfg.louvain.max_level >= 1, "louvain.max_level", "must be >= 1"),
    ]
    for ok, key, rule in checks:
        if not ok:
            raise ConfigError(f"{key}: {rule}, got {_value(cfg, key)!r}")
    try:
        if cfg.batch.cpu_bytes <= 0:
            raise ValueError("must be positive")
    except ValueError as err:
        raise ConfigError(f"batch.cpu_memory: {cfg.batch.cpu_memory!r} is not a size ({err})") from None
    if cfg.features.enabled and cfg.knn.threshold <= 0:
        raise ConfigError(f"knn.threshold: must be > 0 when features are enabled (PageRank and Louvain need "
                          f"positive edge weights), got {cfg.knn.threshold}")


def _value(cfg: object, key: str) -> object:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg
