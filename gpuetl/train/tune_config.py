"""Tuning configs (configs/tune/*.yaml) as frozen dataclasses: which training config is tuned, how many trials,
the sampler's seed, the objective and the search space as data (a dotted training-config key per parameter, its
type and bounds). The space is checked against the training config at load time (`check_space`): every key must
exist there, and every bound and choice must pass the training config's own types and bounds, before any trial."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from gpuetl.config import ConfigError, Count, Items, Natural, load
from gpuetl.resources import config_path
from gpuetl.train.config import GatConfig, XgbConfig, load_gat_config, load_xgb_config

# keys a trial may not change: they decide the folds, the label, the rows that count and how a day is scored, so
# trials would no longer be compared on the same validation days (or the run's place and seed would move)
FIXED = ("name", "data.dataset", "data.label", "data.horizons", "data.min_history", "splits.", "eval.", "run.")


@dataclasses.dataclass(frozen=True)
class SearchParam:
    """One dimension of the search: the training-config key it sets and the values it may take."""

    key: str  # dotted training-config key, as for --config-set (optim.weight_decay)
    type: Literal["float", "int", "categorical"]
    low: float | None = None  # float / int: inclusive bounds
    high: float | None = None
    log: bool = False  # float / int: sample on a log scale (low > 0)
    choices: tuple[Any, ...] = ()  # categorical: the values (scalars, or lists such as feature groups)


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    name: str  # the study's name in its storage, and the default output folder <paths.data>/tune/<name>
    train: str  # the training config tuned (configs/train/gat.yaml)
    learner: Literal["gat", "xgb"]  # which model the training config is for
    trials: Count  # trials in the study in all (a rerun adds the missing ones)
    seed: Natural  # the sampler's seed (a resumed study draws from seed + the trials already there)
    objective: Literal["valid_rank_ic"]  # mean daily RankIC over the pooled validation days of the tuning folds
    pruner: Literal["median", "none"]  # median: stop a trial after a fold where it is below the median so far
    pruner_startup_trials: Natural  # trials run to the end before the pruner judges any
    out: str | None  # output folder (None: <paths.data>/tune/<name>)
    space: Annotated[tuple[SearchParam, ...], Items(min=1)]


def check_tune(cfg: TuneConfig) -> None:
    """The space's own rules: bounds for numbers, choices for categories, one entry per key, no fixed key."""
    seen: set[str] = set()
    for i, p in enumerate(cfg.space):
        where = f"space[{i}] ({p.key})"
        if p.key in seen:
            raise ConfigError(f"{where}: the key appears twice in the space; list each key once", f"space[{i}].key")
        seen.add(p.key)
        if any(p.key == f.rstrip(".") or p.key.startswith(f if f.endswith(".") else f"{f}.") for f in FIXED):
            raise ConfigError(f"{where}: may not be tuned: {', '.join(FIXED)} fix the folds, label, rows and "
                              f"scoring every trial is compared on", f"space[{i}].key")
        if p.type == "categorical":
            if not p.choices or p.low is not None or p.high is not None or p.log:
                raise ConfigError(f"{where}: a categorical parameter takes choices (at least one) and no low, high "
                                  f"or log", f"space[{i}]")
            continue
        if p.choices or p.low is None or p.high is None:
            raise ConfigError(f"{where}: a {p.type} parameter takes low and high (and no choices)", f"space[{i}]")
        if p.low > p.high:
            raise ConfigError(f"{where}: low {p.low:g} is above high {p.high:g}", f"space[{i}].low")
        if p.log and p.low <= 0:
            raise ConfigError(f"{where}: log: true needs low > 0, got {p.low:g}", f"space[{i}].low")
        if p.type == "int" and not (float(p.low).is_integer() and float(p.high).is_integer()):
            raise ConfigError(f"{where}: an int parameter needs whole bounds, got {p.low:g} and {p.high:g}",
                              f"space[{i}].low")


def load_tune_config(path: str | Path, overrides: Iterable[str] = (), flag: str = "--tune-set") -> TuneConfig:
    return load(TuneConfig, path, overrides, flag, check_tune)


def value_text(value: Any) -> str:
    """A value as the YAML text of a `key=value` override: floats always with a dot or exponent (1.0, not 1, so
    an int key rejects a float parameter), lists in flow style ([returns, sector])."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return str(value)


def endpoints(p: SearchParam) -> list[str]:
    """The values a parameter can reach at its edges (low and high, or every choice), as override text."""
    if p.type == "categorical":
        return [value_text(c) for c in p.choices]
    assert p.low is not None and p.high is not None  # check_tune
    if p.type == "int":
        return [str(int(p.low)), str(int(p.high))]
    return [value_text(float(p.low)), value_text(float(p.high))]


def load_train(cfg: TuneConfig, overrides: Iterable[str] = (), flag: str = "--config-set") -> GatConfig | XgbConfig:
    """The tuned training config with `overrides` (types, bounds and cross-field rules checked)."""
    loader = load_gat_config if cfg.learner == "gat" else load_xgb_config
    return loader(config_path(cfg.train), overrides, flag)


def check_space(cfg: TuneConfig, base: list[str]) -> None:
    """ConfigError, naming the space entry, unless every bound and choice of the space is a valid value of its
    training-config key (on top of the `base` overrides): an unknown key, a value of the wrong type or out of
    the key's declared range fails here, before any trial. Values are checked one parameter at a time."""
    for i, p in enumerate(cfg.space):
        for text in endpoints(p):
            try:
                load_train(cfg, [*base, f"{p.key}={text}"], flag="space")
            except ConfigError as err:
                raise ConfigError(f"{cfg.train}: space[{i}] {p.key}={text} does not fit the training config: "
                                  f"{_reason(err)}", f"space[{i}]") from None


def _reason(err: ConfigError) -> str:
    """The loader's message without the file or override it blames (the space entry is named instead)."""
    text = str(err)
    head, sep, rest = text.partition(": ")
    return rest if sep and (head.startswith("space ") or head.endswith(".yaml")) else text
