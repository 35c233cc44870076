"""Configs are data: YAML files in `configs/` loaded into frozen dataclasses.

Every default lives in the YAML, not in code: the dataclasses below declare shape, types and the bounds of every
number (`Annotated[int, Range(min=1)]`). Command-line `--set a.b=c` overrides are merged before validation; a key
the schema does not know, a value of the wrong type or out of its bounds is an error that names its full path (and
the override it came from), at load time, before any data is read.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml

from gpuetl.resources import config_path

T = TypeVar("T")

DEFAULT_SETTINGS = "configs/gpuetl.yaml"


class ConfigError(ValueError):
    """A config that does not fit its schema; the message names the offending key path, `keys` holds the paths
    (so `load` can tell whether a value came from the file or from an override)."""

    def __init__(self, message: str, *keys: str) -> None:
        super().__init__(message)
        self.keys = keys


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a number field, read by `coerce`: `min`/`max` inclusive, `above`/`below` exclusive, None: open.
    Used as `Annotated[int, Range(min=1)]`."""

    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None

    def describe(self) -> str:
        """The valid values in words: ">= 1", "> 0", "in [0, 1)"."""
        lo = f"[{_num(self.min)}" if self.min is not None else f"({_num(self.above)}" if self.above is not None else ""
        hi = f"{_num(self.max)}]" if self.max is not None else f"{_num(self.below)})" if self.below is not None else ""
        if lo and hi:
            return f"in {lo}, {hi}"
        if lo:
            return f"{'>=' if lo[0] == '[' else '>'} {lo[1:]}"
        return f"{'<=' if hi[-1] == ']' else '<'} {hi[:-1]}"

    def check(self, value: float, path: str) -> None:
        ok = ((self.min is None or value >= self.min) and (self.max is None or value <= self.max)
              and (self.above is None or value > self.above) and (self.below is None or value < self.below))
        if not ok:
            raise ConfigError(f"{path}: must be {self.describe()}, got {value!r}", path)


@dataclasses.dataclass(frozen=True)
class Items:
    """What a list field needs beyond its item type, read by `coerce`: at least `min` items, each at most once."""

    min: int = 0
    unique: bool = False

    def check(self, value: Sequence[Any], path: str) -> None:
        if len(value) < self.min:
            need = "at least one value" if self.min == 1 else f"at least {self.min} values"
            raise ConfigError(f"{path}: needs {need}, got {list(value)!r}", path)
        if self.unique:
            seen: list[Any] = []
            for v in value:
                if v in seen:
                    raise ConfigError(f"{path}: {v!r} appears twice in {list(value)!r}; list each value once", path)
                seen.append(v)


# the bounds most fields have
Count = Annotated[int, Range(min=1)]  # sizes, windows, iterations: one at least
Natural = Annotated[int, Range(min=0)]  # counts where 0 means none (or: the default)
Positive = Annotated[float, Range(above=0)]  # rates, scales, tolerances, clips
NonNegative = Annotated[float, Range(min=0)]  # weights, durations
Share = Annotated[float, Range(min=0, max=1)]  # probabilities and fractions
Port = Annotated[int, Range(min=0, max=65535)]  # a TCP port (0: any free one)


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else repr(x)


DATE_KEYS = frozenset({"start", "end"})  # in every config these hold a date (YYYY-MM-DD) or null


class _Loader(yaml.SafeLoader):
    """Safe YAML without implicit timestamps: dates stay text (every config types them `str`), so a bad one
    (2020-13-01) is reported with its key path by `check_date` instead of failing inside the YAML parser."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")  # exponent floats YAML 1.1 leaves as text


def check_date(value: str, path: str) -> None:
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{path}: {value!r} is not a date (YYYY-MM-DD)", path) from None


def check_span(start: str | None, end: str | None, start_key: str = "start", end_key: str = "end") -> None:
    """An end before the start selects nothing: an error at load time, not an empty build after minutes of work."""
    if start and end:
        check_date(start, start_key)
        check_date(end, end_key)
        if end < start:  # ISO dates sort as text
            raise ConfigError(f"{end_key}: {end} is before {start_key} {start}, so the span is empty; set {end_key} "
                              f"on or after {start}", end_key, start_key)


# ----------------------------------------------------------------------------- schema: runtime settings


@dataclasses.dataclass(frozen=True)
class GpuSettings:
    device: Natural
    rmm_pool: str  # initial RMM pool: "70%" of the device's total memory, or a size such as "40GB"
    share_pool_with_torch: bool  # point PyTorch's CUDA allocator at the same RMM pool


@dataclasses.dataclass(frozen=True)
class PathSettings:
    data: str
    lake: str
    datasets: str
    cache: str  # local mirrors of trees on object storage (gpuetl.remote): rewritten freely, never an input


@dataclasses.dataclass(frozen=True)
class JQuantsSettings:
    """How the client talks to J-Quants (the key itself comes only from JQUANTS_API_KEY / .env)."""

    api_version: Literal["v2", "v1"]  # v2: x-api-key; v1 (legacy): mail/password -> tokens
    api_url: str  # base URL without the version suffix
    plan: Literal["free", "light", "standard", "premium"]
    requests_per_minute: Count | None  # None: the plan's published limit
    concurrency: Count  # requests in flight at once
    timeout_s: Positive
    max_retries: Natural
    backoff_base_s: NonNegative
    backoff_max_s: NonNegative
    cooldown_s: NonNegative  # pause after persistent 429s (the API blocks ~5 minutes)


@dataclasses.dataclass(frozen=True)
class FetchSettings:
    datasets: tuple[str, ...]  # catalogue names (gpuetl.jquants.spec) fetched by default
    range_chunk_days: Count  # span of one from/to query for `fetch: range` datasets


@dataclasses.dataclass(frozen=True)
class FaultSettings:
    error_rate: Share  # share of data requests answered 500/502/503
    slow_rate: Share  # share delayed by slow_s
    slow_s: NonNegative
    drop_rate: Share  # share whose connection is dropped mid-response


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """The built-in fake J-Quants server and its synthetic market (`gpuetl demo-server`, `fetch --demo`)."""

    host: str
    port: Port  # 0: any free port
    api_key: str
    plan: Literal["free", "light", "standard", "premium"]
    requests_per_minute: Count | None  # the demo server's limit, which fetch --demo paces to; None: the plan's
    page_size: Count
    codes: Count
    start: str
    end: str
    seed: int
    faults: FaultSettings


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """How the dataset build splits its work (gpuetl.dataset.plan): by code, then by year."""

    partition_rows: Count  # rows (code-days) per code partition: bounds one partition's memory
    day_rows: Count  # rows written per day chunk of a year (its per-day ops and file): bounds that task's memory


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    """The Dask cluster `--cluster local|local-cuda` starts (`tcp://host:port` joins an existing scheduler)."""

    workers: Count | None  # local: worker processes (null: one per core); local-cuda ignores it: one per visible GPU
    threads_per_worker: Count
    memory_limit: str  # per worker, e.g. "6GB" (the nanny restarts a worker that goes past it), or "auto"
    partition_rows: Count  # rows per code part of a build on the cluster: each worker holds one part at a time
    rmm_pool_size: str | None  # local-cuda: each worker's RMM pool, e.g. "70%" of its GPU or "40GB"
    spill_dir: str | None  # where workers spill to disk (null: Dask's default temporary folder)
    dashboard: bool  # serve the Dask dashboard (its address is printed at start)


@dataclasses.dataclass(frozen=True)
class OrchestrateSettings:
    """The Dagster job's daily partitions (gpuetl.orchestrate, `make dagster`): Tokyo days `start` .. `end`."""

    start: str  # the first day with a partition
    end: str | None  # the day after the last partition (excluded); null: up to today


@dataclasses.dataclass(frozen=True)
class Settings:
    """The process-wide runtime settings (configs/gpuetl.yaml)."""

    backend: Literal["auto", "gpu", "cpu"]
    on_cpu_fallback: Literal["raise", "warn"]  # an op that cannot run on the GPU: fail, or warn by name
    gpu: GpuSettings
    paths: PathSettings
    jquants: JQuantsSettings
    fetch: FetchSettings
    demo: DemoSettings
    build: BuildSettings
    cluster: ClusterSettings
    orchestrate: OrchestrateSettings


# ----------------------------------------------------------------------------- loading and validation


def load(schema: type[T], path: str | Path = DEFAULT_SETTINGS, overrides: Iterable[str] = (), flag: str = "--set",
         check: Callable[[T], None] | None = None) -> T:
    """Load YAML `path` into dataclass `schema`, after applying the `key.path=value` overrides of option `flag`, and
    run `check` (cross-field rules) on the result. An error names the file, or the override its key came from
    (`--set nosuch=1: unknown key(s) nosuch; ...`), so the user knows which input to fix."""
    resolved = config_path(path)
    data = read_yaml(resolved)
    items = list(overrides)
    merged = apply_overrides(data, items, flag)
    try:
        cfg = from_dict(schema, merged)
        if check is not None:
            check(cfg)
    except ConfigError as err:
        raise ConfigError(f"{_blame(err, resolved, items, flag)}: {err}", *err.keys) from None
    return cfg


def load_settings(path: str | Path = DEFAULT_SETTINGS, overrides: Iterable[str] = ()) -> Settings:
    return load(Settings, path, overrides)


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in YAML file `path`; a file that is not UTF-8 text, not YAML or not a mapping is a ConfigError
    naming it (and the line). A missing file stays FileNotFoundError: the commands say which flag to fix."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 YAML file (byte {err.start} is {err.object[err.start]:#04x})") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a YAML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot be read (permission denied)") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}{_yaml_problem(err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _yaml_problem(err: yaml.YAMLError) -> str:
    """`:line:column: not valid YAML: problem` (one line) from PyYAML's multi-line message."""
    if isinstance(err, yaml.reader.ReaderError):  # a control character: binary data that happens to be UTF-8
        return f": not a UTF-8 YAML file (character {err.character!r} at position {err.position})"
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        return f"{where}: not valid YAML: {err.problem or err.context}"
    return f": not valid YAML: {str(err).splitlines()[0] if str(err) else type(err).__name__}"


def _blame(err: ConfigError, file: Path, overrides: list[str], flag: str) -> str:
    """`--set k=v` when the error's key was set (or lies under a section set) by that override (the last one wins),
    else the file."""
    for item in reversed(overrides):
        key = item.partition("=")[0].strip()
        if any(k == key or k.startswith((f"{key}.", f"{key}[")) for k in err.keys):
            return f"{flag} {item}"
    return str(file)


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str], flag: str = "--set") -> dict[str, Any]:
    """Return a deep copy of `data` with each "a.b.c=value" set; values are parsed as YAML scalars."""
    out = _deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r} is not of the form key.path=value")
        parts = key.strip().split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{flag} {item}: {'.'.join(parts[: i + 1])} is a value, not a section")
            node = child
        try:
            node[parts[-1]] = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or type(err).__name__
            raise ConfigError(f"{flag} {item}: the value is not valid YAML ({problem})") from None
    return out


def from_dict(schema: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `schema` from plain data, checking keys, types and bounds; errors name the key path."""
    where = path or "<root>"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping for {schema.__name__}, got {type(data).__name__}", where)
    hints = typing.get_type_hints(schema, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(schema)}  # type: ignore[arg-type]
    unknown = sorted(map(str, set(data) - set(fields)))
    if unknown:
        bad = [_join(path, k) for k in unknown]
        raise ConfigError(f"unknown key(s) {', '.join(bad)}; valid keys at {where}: {', '.join(fields)}", *bad)
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key_path = _join(path, name)
        if name not in data:
            if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
                continue
            raise ConfigError(f"missing key {key_path}", key_path)
        values[name] = coerce(hints[name], data[name], key_path)
        if name in DATE_KEYS and isinstance(values[name], str):
            check_date(values[name], key_path)
    if set(values) >= DATE_KEYS:
        check_span(values["start"], values["end"], _join(path, "start"), _join(path, "end"))
    return schema(**values)


def to_dict(obj: Any) -> Any:
    """Plain-data form of a config dataclass (for metadata.json and `doctor`)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def coerce(tp: Any, value: Any, path: str) -> Any:
    """Check `value` against type `tp` (dataclasses, Literal, unions, sequences, scalars, `Annotated` with `Range` or
    `Items` bounds); errors name `path`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        out = coerce(args[0], value, path)
        for rule in args[1:]:
            if isinstance(rule, Range | Items):
                rule.check(out, path)
        return out
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(repr, args))}", path)
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors: list[ConfigError] = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(arg, value, path)
            except ConfigError as err:
                errors.append(err)
        raise ConfigError("; ".join(map(str, errors)), *(k for err in errors for k in err.keys))
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)  # type: ignore[arg-type]
    if origin in (tuple, list, collections.abc.Sequence):
        return _sequence(args, value, path, fixed=origin is tuple and bool(args) and args[-1] is not Ellipsis)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}", path)
        val_tp = args[1] if len(args) == 2 else Any
        return {str(k): coerce(val_tp, v, f"{path}.{k}") for k, v in value.items()}
    return _scalar(tp, value, path)


def _sequence(args: tuple[Any, ...], value: Any, path: str, fixed: bool) -> tuple[Any, ...]:
    """A list as a tuple of checked items: `tuple[int, int]` (fixed length) or `tuple[int, ...]`, `Sequence[int]`."""
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{path}: expected a list, got {type(value).__name__}", path)
    if fixed:
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected a list of {len(args)} values, got {list(value)!r}", path)
        return tuple(coerce(t, v, f"{path}[{i}]") for i, (t, v) in enumerate(zip(args, value, strict=True)))
    item_tp = args[0] if args else Any
    return tuple(coerce(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value))


def _scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}", path)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}", path)
        return value
    if tp is float:
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}", path)
        if not math.isfinite(value):  # .nan passes every bound check; .inf is no setting
            raise ConfigError(f"{path}: expected a finite number, got {value!r}", path)
        return float(value)
    if tp is str:
        if isinstance(value, bool) or value is None or isinstance(value, Mapping | list):
            raise ConfigError(f"{path}: expected a string, got {value!r}", path)
        return str(value)  # YAML turns 2024-01-01 into a date and 40 into an int; both are fine as text
    raise ConfigError(f"{path}: unsupported schema type {tp!r}", path)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _deepcopy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
