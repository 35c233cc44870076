"""Features are declared once, here: name, group, inputs, lookback and a pure function of the panel.

The dataset's metadata, the docs table and the tests all read this registry, so a feature exists in one
place. A feature function takes the `Panel` and its parameters and returns one array per output column.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gpuetl.features.panel import Panel

FeatureFn = Callable[..., Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    name: str  # the op name used in configs
    group: str  # e.g. "returns", "trend", "momentum", "volatility", "volume", "range"
    inputs: tuple[str, ...]  # panel columns read
    outputs: Callable[[Mapping[str, Any]], tuple[str, ...]]  # column names produced, given the params
    lookback: Callable[[Mapping[str, Any]], int]  # rows of history before the first valid value
    fn: FeatureFn
    doc: str


_REGISTRY: dict[str, FeatureSpec] = {}


def feature(name: str, *, group: str, inputs: Iterable[str], outputs: Callable[[Mapping[str, Any]], tuple[str, ...]],
            lookback: Callable[[Mapping[str, Any]], int]) -> Callable[[FeatureFn], FeatureFn]:
    """Register a feature function under `name` (duplicate names are errors)."""

    def wrap(fn: FeatureFn) -> FeatureFn:
        if name in _REGISTRY:
            raise ValueError(f"feature {name!r} is already registered")
        _REGISTRY[name] = FeatureSpec(name, group, tuple(inputs), outputs, lookback, fn,
                                      (fn.__doc__ or "").strip().split("\n")[0])
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
