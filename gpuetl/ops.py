"""Ops and their one executor: every column of a dataset or of its graphs comes from an op run by `run`.

An `Op` declares, once: its name, the stage it runs in (`STAGES`), its inputs (raw datasets or panel columns),
its outputs (given its parameters), how they are stored (dtype), its lookback (rows of a code's history before
the first valid value: the build's warm-up is the longest one), the normalisation of each output
(`NORMALIZATIONS`), its axis (`AXES`: what one output value depends on, which is what lets a scheduler split the
work by code or by day), the backends it runs on, and how far its GPU result may be from its CPU result
(`TOLERANCES`). Its function's signature declares its parameters' types and bounds
(`windows: Annotated[Sequence[Days], SOME]`): `Op.params` checks given parameters against it, for the dataset
config at load and for every run.

`run(op, target, params)` is the only way an op is called: `op.fn(target, **params)` on the panel, the
enrichment context or the batch of daily graphs, with its declared inputs checked, exactly its declared outputs
required, inside an NVTX range named after the op, and on the CPU (counted, per `on_cpu_fallback`) when the op
cannot run on the target's GPU backend. Ops are plain values: `Registry` holds an explicit list of them
(gpuetl/dataset/registry.py lists every op of gpuetl).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal, Protocol

from gpuetl.backend import Backend, BackendName
from gpuetl.config import ConfigError, Items, Range, coerce

Stage = Literal["enrich", "feature", "target", "normalize", "graph"]
Axis = Literal["code", "day", "market"]
Normalization = Literal["cross_section", "time_series", "raw"]
NormalizeRule = Normalization | Callable[[str], Normalization]  # one kind, or the kind of each output name
Params = Mapping[str, Any]  # an op's parameters by name, of the types its function declares (Op.params)

# The bounds of feature op parameters, read from their signatures by `Op.params`:
Days = Annotated[int, Range(min=1)]  # business days (a code's rows): a window, period, horizon or lag
Days2 = Annotated[int, Range(min=2)]  # ... of a statistic that needs two values: a standard deviation, a regression
SOME = Items(min=1)  # a list of windows or horizons holds one at least (the op's lookback is their largest)

STAGES: dict[str, str] = {
    "enrich": "as-of joins of raw lake datasets onto the panel (gpuetl.enrich), before the feature ops",
    "feature": "a function of the (Code, Date) panel and its parameters (gpuetl.features)",
    "target": "forward returns and labels of the panel, never read by a feature (gpuetl.features.targets)",
    "normalize": "the normalised view written beside every feature (gpuetl.features.normalize)",
    "graph": "per-node features of a batch of daily graphs (gpuetl.graphs)",
}
NORMALIZATIONS: dict[str, str] = {
    "cross_section": "the day's winsorised z-score (or rank-gauss) across codes: features that differ by stock",
    "time_series": "a z-score of the day's value against its own trailing window of days (normalize.ts_window, "
                   "fitted on the past only): features that are the same for every stock on a day (market "
                   "regime, market-wide flows), whose cross-sectional z-score would always be 0",
    "raw": "the raw value: flags, counts and bounded values (calendar, maturity, limit hits, categories)",
}
# Named parity tolerances (rtol, atol): why an op's GPU result may differ from its CPU result (`Op.tolerance`),
# not a number picked to make a test pass.
TOLERANCES: dict[str, tuple[float, float]] = {
    "exact": (0.0, 0.0),  # same operations in the same order: bit for bit
    "sum_order": (1e-12, 1e-15),  # libcudf's hash groupby / cuBLAS add in another order than pandas / OpenBLAS
    "float32": (1e-5, 1e-6),  # float64 results that differ in the last bits, stored as float32
    "reference": (1e-9, 0.0),  # a fast op against a slow reference formula (TA-Lib, pandas loops)
    "weight_grid": (0.0, 2.0**-32),  # graph edge weights rounded to the 2^-32 grid
    "pagerank": (0.0, 1e-6),  # power iterations stopped at tol 1e-10 per day's graph
    # ... and why the two results of a test's comparison may differ (tests/_testing.py's assert_backend_equal):
    # the same formula rounded at other steps (operation order, the device's libm against the host's): a few ulps
    # of the value; a zero stays exactly zero (no sums that cancel), so no absolute floor
    "rounding": (1e-12, 0.0),
    # two compensated (Kahan) sums of the same values along different paths (pandas' group mean on small groups):
    # a couple of ulps, whatever the count
    "kahan": (1e-13, 0.0),
    # a reference value that crosses 0 and is a difference of window statistics of O(1) values (MACD / close,
    # Bollinger %b, close / SMA - 1, a time-series z-score): relative error means nothing at 0, where the absolute
    # error is the statistics' rounding
    "reference_crossing": (1e-9, 1e-12),
    # the same at price scale (~1e3): CCI's numerator is the typical price minus its window mean, over 0.015 x the
    # mean deviation
    "reference_crossing_price": (1e-9, 1e-9),
    # covariances and variances of daily returns over a window (beta, correlation) from window sums of products,
    # against pandas' online rolling cov/var: the sums cancel, so their rounding is large next to the result
    "rolling_moments": (1e-8, 1e-10),
    # libcudf sums each window afresh, pandas keeps a running sum: rolling mean/var/std equal but for the last
    # bits of O(1) values
    "window_sums": (1e-10, 1e-12),
    # the same values but for their last bits, stored or computed as float32 (as-of joins taking the same rows, a
    # float32 loss or score against a float64 reference): a float32 step (2^-23 of the value) or a few apart
    "float32_step": (1e-6, 1e-9),
    # z-scores (scale 1) of float64 work that differs in the last bits, stored as float32: the error is the float32
    # rounding of the spread's scale, not of the value, so the absolute floor is float32's rtol
    "float32_zscore": (1e-5, 1e-5),
    # a reference recomputed from float32-stored inputs against the build's float64 work (stored as float32): the
    # inputs' rounding (6e-8) grows by |x| / std in a z-score
    "float32_inputs": (1e-4, 1e-4),
    # averages weighted by graph edge weights that may sit one 2^-32 grid step apart (~2e-9 of a weight above the
    # 0.1 threshold), summed in another order
    "weight_grid_average": (1e-8, 1e-15),
    # the same PageRank power iteration stopped at another step (cuGraph's stop test over a whole union of days,
    # tol 1e-10 or 1e-12, or a fixed count of iterations)
    "pagerank_stop": (0.0, 1e-9),
    # the modularity of two Louvain heuristics' partitions (cuGraph's, ours/networkx's): different partitions of
    # about the same quality
    "louvain": (0.0, 0.02),
}
AXES: dict[str, str] = {
    "code": "a value depends on its own code's rows (and the lake's raw publications): computable per code",
    "day": "a value depends on the whole cross-section of its day: computable per date",
    "market": "a value depends on the per-date market series over every date: computed once, over all dates",
}
BACKENDS: frozenset[BackendName] = frozenset({"cpu", "gpu"})
# outputs that are labels (a Louvain community), not values: a parity check compares the partitions they make
# (their modularity on the same graph, to the "louvain" tolerance), never the labels themselves
PARTITIONS = frozenset({"louvain"})


@dataclasses.dataclass(frozen=True)
class ByColumn:
    """An op's parity tolerance per output: `default`, and `columns` ((output, tolerance) pairs) where another
    reason holds (e.g. the graph op's community labels, compared as partitions)."""

    default: str
    columns: tuple[tuple[str, str], ...] = ()

    def __call__(self, column: str) -> str:
        return dict(self.columns).get(column, self.default)

    def names(self) -> set[str]:
        return {self.default, *(t for _, t in self.columns)}


class Target(Protocol):
    """What an op runs on (the panel, the enrichment context, a batch of daily graphs): it knows its backend, and
    can copy itself to the host for an op that runs only on the CPU."""

    @property
    def backend(self) -> Backend: ...

    def on_cpu(self, cpu: Backend) -> Any: ...


def columns_param(params: Params) -> tuple[str, ...]:
    """The panel columns an op is given in its `columns` parameter (e.g. the features cs_rank ranks)."""
    return tuple(params.get("columns", ()))


@dataclasses.dataclass(frozen=True)
class Op:
    name: str  # the op name used in configs
    stage: Stage
    group: str  # e.g. "returns", "trend", "statements"
    fn: Callable[..., Mapping[str, Any]]  # fn(target, **params) -> the columns, in declared order
    inputs: tuple[str, ...]  # panel columns (feature ops) or raw lake datasets (enrich ops) it always reads
    outputs: Callable[[Params], tuple[str, ...]]  # column names produced, given the params
    lookback: Callable[[Params], int]  # rows of a code's history before the first valid value
    doc: str
    normalize: NormalizeRule = "cross_section"
    axis: Axis = "code"
    dtype: str = "float32"  # how the dataset stores the outputs (computed in float64)
    backends: frozenset[BackendName] = BACKENDS  # where it runs; elsewhere `run` falls back to the CPU
    tolerance: str | ByColumn = "exact"  # a key of TOLERANCES (per output with ByColumn): how its GPU result may
    # differ from its CPU result
    param_inputs: Callable[[Params], tuple[str, ...]] = columns_param  # columns it reads, given the params

    def __post_init__(self) -> None:
        tolerances = self.tolerance.names() if isinstance(self.tolerance, ByColumn) else {self.tolerance}
        checks: list[tuple[str, Collection[str], str]] = [(self.stage, STAGES, "stage"), (self.axis, AXES, "axis")]
        checks += [(t, TOLERANCES, "tolerance") for t in sorted(tolerances)]
        for value, valid, what in checks:
            if value not in valid:
                raise ValueError(f"op {self.name!r}: unknown {what} {value!r}; valid: {', '.join(valid)}")
        if not self.backends or not self.backends <= BACKENDS:
            raise ValueError(f"op {self.name!r}: backends must be some of cpu, gpu, got {sorted(self.backends)}")

    def params(self, given: Mapping[str, object], where: str | None = None) -> dict[str, object]:
        """`given` checked against the function's signature: every name known, every required one there, each
        value of its declared type and within its bounds (lists become tuples). A ConfigError names `where`
        (default: the op) and the parameter; a parameter typed as a config dataclass takes a loaded one."""
        where = where or f"{self.stage} {self.name!r}"
        names, required, hints = _signature(self.fn)
        unknown = sorted(set(given) - set(names))
        missing = [n for n in required if n not in given]
        if unknown or missing:
            problem = (f"unknown parameter(s) {', '.join(unknown)}" if unknown
                       else f"missing a required argument: {', '.join(map(repr, missing))}")
            raise ConfigError(f"{where}: {problem}; parameters: {', '.join(names) or '(none)'}", where)
        return {name: _checked(hints.get(name, Any), value, f"{where}.params.{name}")
                for name, value in given.items()}

    def tolerance_of(self, column: str) -> str:
        """The parity tolerance of output `column` (a key of TOLERANCES; one of PARTITIONS for labels)."""
        return self.tolerance(column) if isinstance(self.tolerance, ByColumn) else self.tolerance

    def normalization(self, params: Params) -> dict[str, Normalization]:
        """The normalisation kind of each output column for `params`."""
        return {col: normalization_of(self.normalize, col) for col in self.outputs(params)}

    def reads(self, params: Params) -> set[str]:
        """Every column it reads: its inputs and those its parameters name (e.g. per-day ranks of features)."""
        return set(self.inputs) | set(self.param_inputs(params))


@functools.cache
def _signature(fn: Callable[..., Any]) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, Any]]:
    """(parameter names after the target, the required ones, their type hints) of an op's function."""
    parameters = list(inspect.signature(fn).parameters.values())[1:]
    required = tuple(p.name for p in parameters if p.default is inspect.Parameter.empty)
    return tuple(p.name for p in parameters), required, typing.get_type_hints(fn, include_extras=True)


def _checked(hint: Any, value: object, path: str) -> object:
    """`value` coerced to `hint`; a loaded config dataclass (checked at its load) is taken as it is."""
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint
    if dataclasses.is_dataclass(base) and isinstance(value, base):  # type: ignore[arg-type]
        return value
    return coerce(hint, value, path)


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


def op(name: str, *, stage: Stage, group: str, inputs: Iterable[str], outputs: Callable[[Params], tuple[str, ...]],
       lookback: Callable[[Params], int] = lambda p: 0, normalize: NormalizeRule = "cross_section",
       axis: Axis = "code", dtype: str = "float32", backends: Iterable[BackendName] = BACKENDS,
       tolerance: str | ByColumn = "exact", param_inputs: Callable[[Params], tuple[str, ...]] = columns_param,
       doc: str | None = None) -> Callable[[Callable[..., Mapping[str, Any]]], Op]:
    """The decorated function as op `name` (registered only by a `Registry` that lists it); `doc` defaults to the
    first line of its docstring."""

    def wrap(fn: Callable[..., Mapping[str, Any]]) -> Op:
        return Op(name, stage, group, fn, tuple(inputs), outputs, lookback,
                  doc or (fn.__doc__ or "").strip().split("\n")[0], normalize, axis, dtype, frozenset(backends),
                  tolerance, param_inputs)

    return wrap


def feature(name: str, **declared: Any) -> Callable[[Callable[..., Mapping[str, Any]]], Op]:
    """`op(name, stage="feature", ...)`: a pure function of the panel and its parameters."""
    return op(name, stage="feature", **declared)


class Registry:
    """Ops by name, from an explicit list: a name listed twice is an error, a miss lists the valid names."""

    def __init__(self, ops: Iterable[Op]) -> None:
        self._ops: dict[str, Op] = {}
        for each in ops:
            if each.name in self._ops:
                raise ValueError(f"op {each.name!r} is listed twice (a {self._ops[each.name].stage} op and a "
                                 f"{each.stage} op); op names are unique")
            self._ops[each.name] = each

    def get(self, name: str, stage: Stage | None = None) -> Op:
        """Op `name` (of `stage`, when given)."""
        found = self._ops.get(name)
        if found is None or (stage is not None and found.stage != stage):
            raise KeyError(f"unknown {stage or 'op'} {name!r}; registered: {', '.join(sorted(self.of(stage)))}")
        return found

    def __getitem__(self, name: str) -> Op:
        return self.get(name)

    def of(self, stage: Stage | None = None) -> dict[str, Op]:
        """The ops (of one stage), in list order."""
        return {n: o for n, o in self._ops.items() if stage is None or o.stage == stage}

    def __iter__(self) -> Iterator[Op]:
        return iter(self._ops.values())

    def __len__(self) -> int:
        return len(self._ops)

    def __contains__(self, name: object) -> bool:
        return name in self._ops


def run(op: Op, target: Target, params: Params | None = None,
        available: Collection[str] | None = None) -> dict[str, Any]:
    """Run `op` on `target` with `params` (checked against its signature): its declared inputs must be in
    `available` when given, and it must produce exactly the columns it declares, in order. The run is an NVTX
    range named after the op; an op that cannot run on the target's backend runs on a host copy of the target
    (counted by the backend, refused or warned per `on_cpu_fallback`) and its outputs go back to the device."""
    checked = op.params(params or {})
    if available is not None:
        missing = sorted(op.reads(checked) - set(available))
        if missing:
            raise KeyError(f"{op.stage} {op.name!r} needs columns {missing}")
    backend = target.backend
    with backend.range(f"{op.stage}:{op.name}"):
        if backend.name in op.backends:
            out = dict(op.fn(target, **checked))
        else:
            runs_on = ", ".join(sorted(op.backends))
            cpu = backend.fall_back_to_cpu(f"{op.stage} op {op.name!r}", f"it runs on {runs_on}")
            out = {k: backend.xp.asarray(v) for k, v in op.fn(target.on_cpu(cpu), **checked).items()}
    check_outputs(op, out, checked)
    return out


def check_outputs(op: Op, produced: Iterable[str], params: Params) -> None:
    declared = op.outputs(params)
    if tuple(produced) != declared:
        raise RuntimeError(f"{op.stage} {op.name!r} produced {tuple(produced)}, declared {declared}")
