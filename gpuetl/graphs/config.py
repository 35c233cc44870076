"""The graph config (configs/graph/*.yaml) as frozen dataclasses; values are checked at load time."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

from dask.utils import parse_bytes

from gpuetl.config import ConfigError, Count, Positive, Range, Share, load
from gpuetl.kernels.knn import MAX_K

DEFAULT_CONFIG = "configs/graph/default.yaml"


@dataclasses.dataclass(frozen=True)
class ShrinkageSettings:
    gamma: Share
    target: Literal["identity", "constant_correlation"]


@dataclasses.dataclass(frozen=True)
class KnnSettings:
    k: Annotated[int, Range(min=1, max=MAX_K)]  # the top-k kernels keep at most MAX_K per node
    threshold: Annotated[float, Range(min=-1, max=1)]  # a correlation
    grid_bits: Annotated[int, Range(min=8, max=48)]  # the grid must stay exact in float64


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    max_days: Count
    gpu_memory_fraction: Annotated[float, Range(above=0, max=1)]
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
    damping: Annotated[float, Range(above=0, below=1)]
    tol: Positive
    max_iter: Count


@dataclasses.dataclass(frozen=True)
class LouvainSettings:
    resolution: Positive
    threshold: Annotated[float, Range(min=0)]  # modularity gain per level
    max_level: Count
    seed: int


@dataclasses.dataclass(frozen=True)
class GraphConfig:
    name: str
    window: Annotated[int, Range(min=2)]  # a correlation needs two returns
    halflife: Positive
    min_coverage: Annotated[float, Range(above=0, max=1)]
    every_n_days: Count
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


def load_graph_config(path: str | Path = DEFAULT_CONFIG, overrides: Iterable[str] = (),
                      flag: str = "--config-set") -> GraphConfig:
    """The graph config at `path` with `flag`'s overrides; every bound is declared on the fields above, the rules
    across fields are in `validate`."""
    return load(GraphConfig, path, overrides, flag, validate)


def validate(cfg: GraphConfig) -> None:
    """Domain checks the field bounds cannot express; errors name the key."""
    try:
        if cfg.batch.cpu_bytes <= 0:
            raise ValueError("must be positive")
    except ValueError as err:
        raise ConfigError(f"batch.cpu_memory: {cfg.batch.cpu_memory!r} is not a size ({err})",
                          "batch.cpu_memory") from None
    if cfg.features.enabled and cfg.knn.threshold <= 0:
        raise ConfigError(f"knn.threshold: must be > 0 when features are enabled (PageRank and Louvain need "
                          f"positive edge weights), got {cfg.knn.threshold}", "knn.threshold", "features.enabled")
