"""Training configs (configs/train/*.yaml) as frozen dataclasses: what to learn from, how to split, how to
score, and the model's own settings. Every default is in the YAML."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from gpuetl.config import ConfigError, load


@dataclasses.dataclass(frozen=True)
class InputSettings:
    groups: tuple[str, ...]  # feature groups (metadata features_by_group) the inputs and context come from; () = all
    missing_flags: bool  # feed the <feature>_missing flags beside the normalised values
    graph_features: bool  # feed the graph_* columns of <dataset>/graphs (z-scored per day here)
    context_prefixes: tuple[str, ...]  # day-constant features (market, calendar): per-day context, raw values
    exclude_prefixes: tuple[str, ...]  # features left out


@dataclasses.dataclass(frozen=True)
class DataSettings:
    dataset: str  # dataset folder, or a name under settings paths.datasets
    label: str  # the evaluated target column, or "default": the dataset's default_label
    horizons: tuple[int, ...]  # one head per horizon k, in the label's family (<family>_{k}d); includes the label's
    min_history: int  # a code counts on day t once it has this many rows up to t (else masked, never dropped)
    inputs: InputSettings


@dataclasses.dataclass(frozen=True)
class SplitSettings:
    test_years: int  # folds: the dataset's last n calendar years, one test year each, expanding training window
    min_train_days: int  # a year is a fold only with at least this many training days before it
    valid_days: int  # the last business days before the test (after the gap) pick the epoch / tree count
    embargo_days: int  # business days between a period's last target and the next period (>= the longest horizon)


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    portfolio_size: int  # JPX 2022: top and bottom 200 names
    min_names: int  # with fewer names on a day, take the top and bottom `fallback_share` instead
    fallback_share: float
    top_weight: float  # position weights linspace(top_weight, 1, n)


@dataclasses.dataclass(frozen=True)
class RunSettings:
    seed: int
    device: Literal["auto", "cpu", "cuda"]  # auto: the backend's device
    threads: int  # CPU threads for torch and XGBoost (0: their default, all cores)
    out: str | None  # run folder (None: <paths.data>/runs/<name>)
    progress: bool


@dataclasses.dataclass(frozen=True)
class SectorRelation:
    """Sector edges beside the correlation graph: each code hears from the `peers` largest others of its sector."""

    column: str  # the sector code per (code, day), a raw dataset column (lst_s33)
    size: str  # the size per (code, day) that ranks a sector's codes (st_log_mcap)
    peers: int


@dataclasses.dataclass(frozen=True)
class LeadLagRelation:
    """Lead-lag edges estimated on each fold's training days (gpuetl/train/leadlag.py): j -> i when j's return today
    correlates with i's tomorrow."""

    column: str  # the daily return per (code, day), a raw dataset column (ret_1d)
    within: str | None  # leaders only among codes with the same value of this column (lst_s33); None: any code
    peers: int  # leaders kept per code: the largest positive t-statistics
    min_days: int  # consecutive-day pairs a (leader, follower) pair needs in the training days


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    encoder: Literal["gru", "transformer"]
    window: int  # L, days of history per code
    hidden: int
    encoder_layers: int
    gat_layers: int
    heads: int
    dropout: float
    relation_means: bool  # each relation's weighted mean of the neighbours' last-day inputs joins the encoding
    graph: bool  # false: the graph-free ablation (same model, self-loops only)
    sector: SectorRelation | None  # None: the correlation graph's edges only
    lead_lag: LeadLagRelation | None  # None: no lead-lag relation


@dataclasses.dataclass(frozen=True)
class OptimSettings:
    lr: float
    weight_decay: float
    max_epochs: int
    patience: int  # epochs without a better validation RankIC before stopping
    days_per_batch: int
    days_per_epoch: int  # an epoch: this many training days drawn at random (0: all), so its cost is the same every fold
    grad_clip: float
    ema_decay: float
    bf16: bool  # autocast to bfloat16 (CUDA only; the CPU runs float32)


@dataclasses.dataclass(frozen=True)
class LossSettings:
    huber_weight: float
    huber_delta: float
    rank_weight: float  # weight of 1 - soft Spearman correlation
    rank_temperature: float  # of the pairwise sigmoid, in per-day z units of the prediction
    target_clip: float  # cross-sectional z-scores of the targets clipped at +-clip


@dataclasses.dataclass(frozen=True)
class GatConfig:
    name: str
    data: DataSettings
    splits: SplitSettings
    eval: EvalSettings
    run: RunSettings
    model: ModelSettings
    optim: OptimSettings
    loss: LossSettings


@dataclasses.dataclass(frozen=True)
class XgbSettings:
    n_estimators: int  # at most
    learning_rate: float
    max_depth: int
    min_child_weight: float
    subsample: float
    colsample_bytree: float
    reg_lambda: float
    max_bin: int
    eval_every: int  # trees between validation RankIC checks
    patience: int  # checks without improvement before stopping
    target_clip: float  # the label's cross-sectional z-scores, clipped


@dataclasses.dataclass(frozen=True)
class XgbConfig:
    name: str
    data: DataSettings
    splits: SplitSettings
    eval: EvalSettings
    run: RunSettings
    xgb: XgbSettings


def _check_common(cfg: GatConfig | XgbConfig) -> None:
    if not cfg.data.horizons:
        raise ConfigError("data.horizons: at least one horizon")
    if cfg.splits.embargo_days < max(cfg.data.horizons):
        raise ConfigError(f"splits.embargo_days ({cfg.splits.embargo_days}) must be at least the longest horizon "
                          f"({max(cfg.data.horizons)})")
    if cfg.data.min_history < 1:
        raise ConfigError(f"data.min_history must be >= 1, got {cfg.data.min_history}")
    if cfg.splits.test_years < 1 or cfg.splits.valid_days < 1:
        raise ConfigError("splits.test_years and splits.valid_days must be >= 1")


def load_gat_config(path: str | Path, overrides: Iterable[str] = ()) -> GatConfig:
    cfg = load(GatConfig, path, overrides)
    _check_common(cfg)
    m = cfg.model
    if m.window < 1:
        raise ConfigError(f"model.window must be >= 1, got {m.window}")
    if m.lead_lag is not None and (m.lead_lag.peers < 1 or m.lead_lag.min_days < 2):
        raise ConfigError(f"model.lead_lag: peers >= 1 and min_days >= 2, got {m.lead_lag.peers}, {m.lead_lag.min_days}")
    if m.hidden % m.heads:
        raise ConfigError(f"model.hidden ({m.hidden}) must be a multiple of model.heads ({m.heads})")
    return cfg


def load_xgb_config(path: str | Path, overrides: Iterable[str] = ()) -> XgbConfig:
    cfg = load(XgbConfig, path, overrides)
    _check_common(cfg)
    return cfg
