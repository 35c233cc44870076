"""Features are declared once, here: name, group, inputs, outputs, lookback, normalisation and a pure
function of the panel.

The dataset's metadata, the docs table and the tests all read this registry, so a feature exists in one
place. A feature function takes the `Panel` and its parameters and returns one array per output column.
The build reads the declared lookbacks for its warm-up and the declared normalisation of each output for
the normalised view (`<feature>_z`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from gpuetl.features.panel import Panel

FeatureFn = Callable[..., Mapping[str, Any]]
Normalization = Literal["cross_section", "time_series", "raw"]
NormalizeRule = Normalization | Callable[[str], Normalization]  # one kind, or the kind of each output name

NORMALIZATIONS: dict[str, str] = {
    "cross_section": "the day's winsorised z-score (or rank-gauss) across codes: features that differ by stock",
    "time_series": "a z-score of the day's value against its own trailing window of days (normalize.ts_window, "
                   "fitted on the past only): features that are the same for every stock on a day (market "
                   "regime, market-wide flows), whose cross-sectional z-score would always be 0",
    "raw": "the raw value: flags, counts and bounded values (calendar, maturity, limit hits, categories)",
}


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    name: str  # the op name used in configs
    group: str  # e.g. "returns", "trend", "momentum", "volatility", "volume", "range"
    inputs: tuple[str, ...]  # panel columns read
    outputs: Callable[[Mapping[str, Any]], tuple[str, ...]]  # column names produced, given the params
    lookback: Callable[[Mapping[str, Any]], int]  # rows of history before the first valid value
    fn: FeatureFn
    doc: str
    normalize: NormalizeRule = "cross_section"

    def normalization(self, params: Mapping[str, Any]) -> dict[str, Normalization]:
        """The normalisation kind of each output column for `params`."""
        return {col: normalization_of(self.normalize, col) for col in self.outputs(params)}


def by_column(raw: Iterable[str] = (), time_series: Iterable[str] = ()) -> Callable[[str], Normalization]:
    """A rule naming the outputs normalised `raw` or `time_series`; every other one is `cross_section`."""
    kinds: dict[str, Normalization] = dict.fromkeys(raw, "raw")
    kinds.update(dict.fromkeys(time_series, "time_series"))
    return lambda column: kinds.get(column, "cross_section")


def normalization_of(rule: NormalizeRule, column: str) -> Normalization:
    kind = rule if isinstance(rule, str) else rule(column)
    if kind not in NORMALIZATIONS:
        raise ValueError(f"column {column!r}: unknown normalisation {kind!r}; valid: {', '.join(NORMALIZATIONS)}")
    return kind


_REGISTRY: dict[str, FeatureSpec] = {}


def feature(name: str, *, group: str, inputs: Iterable[str], outputs: Callable[[Mapping[str, Any]], tuple[str, ...]],
            lookback: Callable[[Mapping[str, Any]], int],
            normalize: NormalizeRule = "cross_section") -> Callable[[FeatureFn], FeatureFn]:
    """Register a feature function under `name` (duplicate names are errors)."""

    def wrap(fn: FeatureFn) -> FeatureFn:
        if name in _REGISTRY:
            raise ValueError(f"feature {name!r} is already registered")
        _REGISTRY[name] = FeatureSpec(name, group, tuple(inputs), outputs, lookback, fn,
                                      (fn.__doc__ or "").strip().split("\n")[0], normalize)
        return fn

    return wrap


def get(name: str) -> FeatureSpec:
    if name not in _REGISTRY:
        raise KeyError(f"unknown feature {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def registered() -> dict[str, FeatureSpec]:
    return dict(_REGISTRY)


def compute(panel: Panel, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Run one registered feature; checks that it produced exactly the columns it declares."""
    spec = get(name)
    missing = [c for c in spec.inputs if c not in panel.columns]
    if missing:
        raise KeyError(f"feature {name!r} needs panel columns {missing}")
    out = dict(spec.fn(panel, **params))
    declared = spec.outputs(params)
    if tuple(out) != declared:
        raise RuntimeError(f"feature {name!r} produced {tuple(out)}, declared {declared}")
    return out
