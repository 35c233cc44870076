"""Configs are data: YAML files in `configs/` loaded into frozen dataclasses.

Every default lives in the YAML, not in code: the dataclasses below declare shape and types only.
Command-line `--set a.b=c` overrides are merged before validation, and any key the schema does not
know is an error that names its full path and the valid keys there.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from gpuetl.resources import config_path

T = TypeVar("T")

DEFAULT_SETTINGS = "configs/gpuetl.yaml"


class ConfigError(ValueError):
    """A config that does not fit its schema; the message names the offending key path."""


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
        raise ConfigError(f"{path}: {value!r} is not a date (YYYY-MM-DD)") from None


# ----------------------------------------------------------------------------- schema: runtime settings


@dataclasses.dataclass(frozen=True)
class GpuSettings:
    device: int
    rmm_pool: str  # initial RMM pool: "70%" of the device's total memory, or a size such as "40GB"
    share_pool_with_torch: bool  # point PyTorch's CUDA allocator at the same RMM pool


@dataclasses.dataclass(frozen=True)
class PathSettings:
    data: str
    lake: str
    datasets: str


@dataclasses.dataclass(frozen=True)
class JQuantsSettings:
    """How the client talks to J-Quants (the key itself comes only from JQUANTS_API_KEY / .env)."""

    api_version: Literal["v2", "v1"]  # v2: x-api-key; v1 (legacy): mail/password -> tokens
    api_url: str  # base URL without the version suffix
    plan: Literal["free", "light", "standard", "premium"]
    requests_per_minute: int | None  # None: the plan's published limit
    concurrency: int  # requests in flight at once
    timeout_s: float
    max_retries: int
    backoff_base_s: float
    backoff_max_s: float
    cooldown_s: float  # pause after persistent 429s (the API blocks ~5 minutes)


@dataclasses.dataclass(frozen=True)
class FetchSettings:
    datasets: tuple[str, ...]  # catalogue names (gpuetl.jquants.spec) fetched by default
    range_chunk_days: int  # span of one from/to query for `fetch: range` datasets


@dataclasses.dataclass(frozen=True)
class FaultSettings:
    error_rate: float  # share of data requests answered 500/502/503
    slow_rate: float  # share delayed by slow_s
    slow_s: float
    drop_rate: float  # share whose connection is dropped mid-response


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """The built-in fake J-Quants server and its synthetic market (`gpuetl demo-server`, `fetch --demo`)."""

    host: str
    port: int  # 0: any free port
    api_key: str
    plan: Literal["free", "light", "standard", "premium"]
    requests_per_minute: int | None  # the demo server's limit, which fetch --demo paces to; None: the plan's
    page_size: int
    codes: int
    start: str
    end: str
    seed: int
    faults: FaultSettings


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """How the dataset build splits its work (gpuetl.dataset.plan): by code, then by year."""

    partition_rows: int  # rows (code-days) per code partition: bounds one partition's memory


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    """The Dask cluster `--cluster local|local-cuda` starts (`tcp://host:port` joins an existing scheduler)."""

    workers: int | None  # local: worker processes (null: one per core); local-cuda ignores it: one per visible GPU
    threads_per_worker: int
    memory_limit: str  # per worker, e.g. "6GB" (the nanny restarts a worker that goes past it), or "auto"
    partition_rows: int  # rows per code part of a build on the cluster: each worker holds one part at a time
    rmm_pool_size: str | None  # local-cuda: each worker's RMM pool, e.g. "70%" of its GPU or "40GB"
    spill_dir: str | None  # where workers spill to disk (null: Dask's default temporary folder)
    dashboard: bool  # serve the Dask dashboard (its address is printed at start)


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


# ----------------------------------------------------------------------------- loading and validation


def load(schema: type[T], path: str | Path = DEFAULT_SETTINGS, overrides: Iterable[str] = ()) -> T:
    """Load YAML `path` into dataclass `schema`, after applying `--set key.path=value` overrides."""
    resolved = config_path(path)
    with open(resolved, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_Loader) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{resolved}: top level must be a mapping, got {type(data).__name__}")
    data = apply_overrides(data, overrides)
    try:
        return from_dict(schema, data)
    except ConfigError as err:
        raise ConfigError(f"{resolved}: {err}") from None


def load_settings(path: str | Path = DEFAULT_SETTINGS, overrides: Iterable[str] = ()) -> Settings:
    return load(Settings, path, overrides)


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a deep copy of `data` with each "a.b.c=value" set; values are parsed as YAML scalars."""
    out = _deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        parts = key.strip().split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[: i + 1])} is a value, not a section")
            node = child
        node[parts[-1]] = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
    return out


def from_dict(schema: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `schema` from plain data, checking keys and types; errors name the key path."""
    where = path or "<root>"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping for {schema.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        bad = ", ".join(_join(path, k) for k in unknown)
        raise ConfigError(f"unknown key(s) {bad}; valid keys at {where}: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key_path = _join(path, name)
        if name not in data:
            if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
                continue
            raise ConfigError(f"missing key {key_path}")
        values[name] = coerce(hints[name], data[name], key_path)
        if name in DATE_KEYS and isinstance(values[name], str):
            check_date(values[name], key_path)
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
    """Check `value` against type `tp` (dataclasses, Literal, unions, sequences, scalars); errors name `path`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(arg, value, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError("; ".join(errors))
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)  # type: ignore[arg-type]
    if origin in (tuple, list, collections.abc.Sequence):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        item_tp = args[0] if args else Any
        return tuple(coerce(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        val_tp = args[1] if len(args) == 2 else Any
        return {str(k): coerce(val_tp, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool) or value is None or isinstance(value, Mapping | list):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return str(value)  # YAML turns 2024-01-01 into a date and 40 into an int; both are fine as text
    raise ConfigError(f"{path}: unsupported schema type {tp!r}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _deepcopy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
