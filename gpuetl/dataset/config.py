"""The dataset config (configs/dataset/*.yaml): the enrichment groups, an ordered list of feature ops with
their parameters, the targets, the normalisation, and the span to build. Ops and their parameters are
checked against the op registry (gpuetl.dataset.registry) at load time: names, types and the bounds each op's
signature declares (`windows: Annotated[Sequence[Days], SOME]`), so a typo or a zero window fails before any
data is read."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from gpuetl.config import ConfigError, Count, Positive, Range, load
from gpuetl.dataset.registry import REGISTRY
from gpuetl.features.targets import Horizons


@dataclasses.dataclass(frozen=True)
class FeatureOp:
    op: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TargetSettings:
    horizons: Horizons  # the targets op's parameter (gpuetl.features.targets): business days ahead


@dataclasses.dataclass(frozen=True)
class NormalizeSettings:
    """How `<feature><suffix>` is made; each feature declares its kind (gpuetl.features.normalize)."""

    method: Literal["zscore", "rankgauss", "none"]  # for `cross_section` features (per day across codes)
    clip: Positive  # winsorise z-scores at +-clip
    suffix: str  # normalised columns are written beside the raw ones as <feature><suffix>
    # `time_series` features: the trailing business days their z-score is fitted on (a spread needs two), and the
    # fewest of them it needs (part of the build's warm-up), at most ts_window
    ts_window: Annotated[int, Range(min=2)]
    ts_min_periods: Count


Switch = bool | Literal["auto"]


@dataclasses.dataclass(frozen=True)
class EnrichSettings:
    """Enrichment groups (gpuetl.enrich), each true, false or auto (run when the lake has its data)."""

    statements: Switch
    investor_types: Switch
    margin_interest: Switch
    margin_alert: Switch
    short_ratio: Switch
    listing: Switch
    earnings: Switch
    dividends: Switch

    def switches(self) -> dict[str, bool | str]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    name: str
    start: str | None  # first date written (None: the first with a full warm-up before it)
    end: str | None
    universe: Literal["all", "prime", "prime_standard"]
    enrich: EnrichSettings  # as-of joined raw data (statements, flows, ...), before the feature ops
    features: tuple[FeatureOp, ...]
    targets: TargetSettings
    normalize: NormalizeSettings

    def feature_params(self) -> list[tuple[str, dict[str, Any]]]:
        return [(f.op, _tuples(f.params)) for f in self.features]


def load_dataset_config(path: str | Path, overrides: Iterable[str] = (), flag: str = "--config-set") -> DatasetConfig:
    """The dataset config at `path` with `flag`'s overrides, its feature ops checked against the registry."""
    return load(DatasetConfig, path, overrides, flag, check_dataset)


def check_dataset(cfg: DatasetConfig) -> None:
    """Rules across fields and against the op registry; errors name the key (features[i] (op).params.name)."""
    norm = cfg.normalize
    if norm.ts_min_periods > norm.ts_window:
        raise ConfigError(f"normalize.ts_min_periods: {norm.ts_min_periods} is more than normalize.ts_window "
                          f"{norm.ts_window}; choose at most the window", "normalize.ts_min_periods",
                          "normalize.ts_window")
    made: dict[str, str] = {}  # column -> the op that makes it
    for i, (op, params) in enumerate(cfg.feature_params()):
        _check_op(i, op, params)
        where = f"features[{i}] ({op})"
        for column in REGISTRY.get(op).outputs(params):
            if column in made:
                again = ("twice (a value repeats in its params)" if made[column] == where
                         else f"already by {made[column]}")
                raise ConfigError(f"{where}: column {column} is made {again}; drop the repeat", f"features[{i}]")
            made[column] = where


def _check_op(i: int, op: str, params: dict[str, Any]) -> None:
    """Op `op` exists, takes exactly `params`, and each value fits its parameter's type and bounds."""
    key = f"features[{i}]"
    try:
        spec = REGISTRY.get(op, "feature")
    except KeyError as err:
        raise ConfigError(f"{key}.op: {err.args[0]}", f"{key}.op") from None
    spec.params(params, f"{key} ({op})")


def _tuples(value: Any) -> Any:
    """YAML lists -> tuples (hashable, and what the feature functions' signatures say)."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value
