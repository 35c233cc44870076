"""One registry of ops: every column of a dataset or of its graphs comes from a registered op.

An op declares, once: its name, the stage it runs in (`enrich`: as-of joins of raw lake datasets; `feature`: a
function of the (Code, Date) panel; `graph`: the daily graphs' per-node features), its inputs (raw datasets or
panel columns), its outputs (given its parameters), how they are stored (dtype), its lookback (rows of a code's
history before the first valid value: the build's warm-up is the longest one), the normalisation of each output
(`NORMALIZATIONS`) and its axis (`AXES`: what one output value depends on, which is what lets a scheduler split
the work by code or by day). The build, the dataset config checks, metadata.json, the graph stage and the tests
read these declarations; `run` holds every op to what it declares. A feature op's signature declares its
parameters' types and bounds (`windows: Annotated[Sequence[Days], SOME]`), which the dataset config checks at load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Annotated, Any, Literal

from gpuetl.config import Items, Range

Stage = Literal["enrich", "feature", "graph"]
Axis = Literal["code", "day", "market"]
Normalization = Literal["cross_section", "time_series", "raw"]
NormalizeRule = Normalization | Callable[[str], Normalization]  # one kind, or the kind of each output name
Params = Any  # a mapping of keyword parameters (feature ops) or a config object (the graph op)

# The bounds of feature op parameters, read from their signatures by the dataset config's checks:
Days = Annotated[int, Range(min=1)]  # business days (a code's rows): a window, period, horizon or lag
Days2 = Annotated[int, Range(min=2)]  # ... of a statistic that needs two values: a standard deviation, a regression
SOME = Items(min=1)  # a list of windows or horizons holds one at least (the op's lookback is their largest)

NORMALIZATIONS: dict[str, str] = {
    "cross_section": "the day's winsorised z-score (or rank-gauss) across codes: features that differ by stock",
    "time_series": "a z-score of the day's value against its own trailing window of days (normalize.ts_window, "
                   "fitted on the past only): features that are the same for every stock on a day (market "
                   "regime, market-wide flows), whose cross-sectional z-score would always be 0",
    "raw": "the raw value: flags, counts and bounded values (calendar, maturity, limit hits, categories)",
}
AXES: dict[str, str] = {
    "code": "a value depends on its own code's rows (and the lake's raw publications): computable per code",
    "day": "a value depends on the whole cross-section of its day: computable per date",
    "market": "a value depends on the per-date market series over every date: computed once, over all dates",
}


@dataclasses.dataclass(frozen=True)
class OpSpec:
    name: str  # the op name used in configs
    stage: Stage
    group: str  # e.g. "returns", "trend", "statements"
    inputs: tuple[str, ...]  # panel columns (feature ops) or raw lake datasets (enrich ops) it always reads
    outputs: Callable[[Params], tuple[str, ...]]  # column names produced, given the params
    lookback: Callable[[Params], int]  # rows of a code's history before the first valid value
    fn: Callable[..., Mapping[str, Any]]
    doc: str
    normalize: NormalizeRule = "cross_section"
    axis: Axis = "code"
    dtype: str = "float32"  # how the dataset stores the outputs (computed in float64)

    def normalization(self, params: Params) -> dict[str, Normalization]:
        """The normalisation kind of each output column for `params`."""
        return {col: normalization_of(self.normalize, col) for col in self.outputs(params)}

    def reads(self, params: Mapping[str, Any]) -> set[str]:
        """Every column it reads: its inputs and the `columns` it is given (e.g. per-day ranks of features)."""
        return set(self.inputs) | set(params.get("columns", ()))


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


_REGISTRY: dict[str, OpSpec] = {}


def op(name: str, *, stage: Stage, group: str, inputs: Iterable[str], outputs: Callable[[Params], tuple[str, ...]],
       lookback: Callable[[Params], int] = lambda p: 0, normalize: NormalizeRule = "cross_section",
       axis: Axis = "code", dtype: str = "float32",
       doc: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as op `name` (duplicate names are errors); `doc` defaults to the first
    line of its docstring."""
    if axis not in AXES:
        raise ValueError(f"op {name!r}: unknown axis {axis!r}; valid: {', '.join(AXES)}")

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"op {name!r} is already registered")
        _REGISTRY[name] = OpSpec(name, stage, group, tuple(inputs), outputs, lookback, fn,
                                 doc or (fn.__doc__ or "").strip().split("\n")[0], normalize, axis, dtype)
        return fn

    return wrap


def feature(name: str, **declared: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`op(name, stage="feature", ...)`: a pure function of the panel and its parameters."""
    return op(name, stage="feature", **declared)


def get(name: str, stage: Stage | None = None) -> OpSpec:
    spec = _REGISTRY.get(name)
    if spec is None or (stage is not None and spec.stage != stage):
        valid = registered(stage)
        raise KeyError(f"unknown {stage or 'op'} {name!r}; registered: {', '.join(sorted(valid))}")
    return spec


def registered(stage: Stage | None = None) -> dict[str, OpSpec]:
    """The registered ops (of one stage), in registration order."""
    return {n: s for n, s in _REGISTRY.items() if stage is None or s.stage == stage}


def run(name: str, target: Any, params: Mapping[str, Any], available: Collection[str] | None = None) -> dict[str, Any]:
    """Run op `name` on `target` (the panel, an enrichment context) with `params`: its declared inputs must be in
    `available` when given, and it must produce exactly the columns it declares, in order."""
    spec = get(name)
    if available is not None:
        missing = sorted(spec.reads(params) - set(available))
        if missing:
            raise KeyError(f"{spec.stage} {name!r} needs columns {missing}")
    out = dict(spec.fn(target, **params))
    check_outputs(spec, out, params)
    return out


def check_outputs(spec: OpSpec, produced: Iterable[str], params: Params) -> None:
    declared = spec.outputs(params)
    if tuple(produced) != declared:
        raise RuntimeError(f"{spec.stage} {spec.name!r} produced {tuple(produced)}, declared {declared}")
