"""The dataset config (configs/dataset/*.yaml): the enrichment groups, an ordered list of feature ops with
their parameters, the targets, the normalisation, and the span to build. Ops and their parameters are
checked against the op registry (gpuetl.ops) at load time, so a typo fails before any data is read."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from gpuetl import (
    features,  # noqa: F401  (registers every feature)
    ops,
)
from gpuetl.config import ConfigError, coerce, load


@dataclasses.dataclass(frozen=True)
class FeatureOp:
    op: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TargetSettings:
    horizons: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class NormalizeSettings:
    """How `<feature><suffix>` is made; each feature declares its kind (gpuetl.features.normalize)."""

    method: Literal["zscore", "rankgauss", "none"]  # for `cross_section` features (per day across codes)
    clip: float  # winsorise z-scores at +-clip
    suffix: str  # normalised columns are written beside the raw ones as <feature><suffix>
    ts_window: int  # `time_series` features: trailing business days their z-score is fitted on
    ts_min_periods: int  # ... and the fewest days it needs (part of the build's warm-up)


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


def load_dataset_config(path: str | Path, overrides: Iterable[str] = ()) -> DatasetConfig:
    cfg = load(DatasetConfig, path, overrides)
    for i, (op, params) in enumerate(cfg.feature_params()):
        try:
            spec = ops.get(op, "feature")
        except KeyError as err:
            raise ConfigError(f"features[{i}].op: {err.args[0]}") from None
        names = list(inspect.signature(spec.fn).parameters)[1:]
        unknown = sorted(set(params) - set(names))
        try:
            if unknown:
                raise TypeError(f"unknown parameter(s) {', '.join(unknown)}")
            inspect.signature(spec.fn).bind(None, **params)
        except TypeError as err:
            raise ConfigError(f"features[{i}] ({op}): {err}; parameters: {', '.join(names) or '(none)'}") from None
        hints = typing.get_type_hints(spec.fn)
        for name, value in params.items():
            coerce(hints.get(name, Any), value, f"features[{i}].params.{name}")
    return cfg


def _tuples(value: Any) -> Any:
    """YAML lists -> tuples (hashable, and what the feature functions' signatures say)."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value
