"""Training configs (configs/train/*.yaml) as frozen dataclasses: what to learn from, how to split, how to
score, and the model's own settings. Every default is in the YAML; every number declares its bounds (checked at
load, with the rules across fields in `check_gat` / `check_xgb`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

from gpuetl.config import ConfigError, Count, Items, Natural, NonNegative, Positive, Range, load

Horizons = Annotated[tuple[Count, ...], Items(min=1, unique=True)]
Dropout = Annotated[float, Range(min=0, below=1)]


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
    horizons: Horizons  # one head per horizon k, in the label's family (<family>_{k}d); includes the label's
    min_history: Count  # a code counts on day t once it has this many rows up to t (else masked, never dropped)
    inputs: InputSettings


@dataclasses.dataclass(frozen=True)
class SplitSettings:
    test_years: Count  # folds: the dataset's last n calendar years, one test year each, expanding training window
    min_train_days: Count  # a year is a fold only with at least this many training days before it
    valid_days: Count  # the last business days before the test (after the gap) pick the epoch / tree count
    embargo_days: Natural  # business days between a period's last target and the next period (>= the longest horizon)


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    portfolio_size: Count  # JPX 2022: top and bottom 200 names
    min_names: Count  # with fewer names on a day, take the top and bottom `fallback_share` instead (>= 2 portfolios)
    fallback_share: Annotated[float, Range(above=0, max=0.5)]  # of the day's names, on each side
    top_weight: Annotated[float, Range(min=1)]  # position weights linspace(top_weight, 1, n): the top name weighs most


Seeds = Annotated[tuple[Natural, ...], Items(min=1, unique=True)]  # NumPy's generators take no negative seed


@dataclasses.dataclass(frozen=True)
class RunSettings:
    seeds: Seeds  # one model per seed and fold (fold k: seed + k); more than one: their per-day z-scores averaged
    device: Literal["auto", "cpu", "cuda"]  # auto: the backend's device
    threads: Natural  # CPU threads for torch and XGBoost (0: their default, all cores)
    out: str | None  # run folder (None: <paths.data>/runs/<name>)
    progress: bool


@dataclasses.dataclass(frozen=True)
class SectorRelation:
    """Sector edges beside the correlation graph: each code hears from the `peers` largest others of its sector."""

    column: str  # the sector code per (code, day), a raw dataset column (lst_s33)
    size: str  # the size per (code, day) that ranks a sector's codes (st_log_mcap)
    peers: Count


@dataclasses.dataclass(frozen=True)
class LeadLagRelation:
    """Lead-lag edges estimated on each fold's training days (gpuetl/train/leadlag.py): j -> i when j's return today
    correlates with i's tomorrow."""

    column: str  # the daily return per (code, day), a raw dataset column (ret_1d)
    within: str | None  # leaders only among codes with the same value of this column (lst_s33); None: any code
    peers: Count  # leaders kept per code: the largest positive t-statistics
    min_days: Annotated[int, Range(min=2)]  # consecutive-day pairs a (leader, follower) pair needs (a correlation: 2)


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    encoder: Literal["gru", "transformer"]
    window: Count  # L, days of history per code
    hidden: Count  # a multiple of heads
    encoder_layers: Count
    gat_layers: Natural  # 0: no attention layer (the encoder and the relation means alone)
    heads: Count
    dropout: Dropout
    relation_means: bool  # each relation's weighted mean of the neighbours' last-day inputs joins the encoding
    graph: bool  # false: the graph-free ablation (same model, self-loops only)
    sector: SectorRelation | None  # None: the correlation graph's edges only
    lead_lag: LeadLagRelation | None  # None: no lead-lag relation


@dataclasses.dataclass(frozen=True)
class OptimSettings:
    lr: Positive
    weight_decay: NonNegative
    max_epochs: Count
    patience: Count  # epochs without a better validation RankIC before stopping
    days_per_batch: Count
    days_per_epoch: Natural  # an epoch: this many training days drawn at random (0: all): the same cost every fold
    grad_clip: Positive  # max gradient norm
    ema_decay: Dropout  # in [0, 1): 1 would never move the averaged weights
    bf16: bool  # autocast to bfloat16 (CUDA only; the CPU runs float32)


@dataclasses.dataclass(frozen=True)
class LossSettings:
    huber_weight: NonNegative
    huber_delta: Positive
    rank_weight: NonNegative  # weight of 1 - soft Spearman correlation
    rank_temperature: Positive  # of the pairwise sigmoid, in per-day z units of the prediction
    target_clip: Positive  # cross-sectional z-scores of the targets clipped at +-clip


@dataclasses.dataclass(frozen=True)
class TrackingSettings:
    """Where a run's params, curves and metrics go besides its own files (gpuetl/train/tracking.py)."""

    tensorboard: bool  # event files in <run>/tensorboard (`tensorboard --logdir <runs folder>`)
    mlflow_uri: str | None  # an MLflow tracking URI (a folder: a local file store); None: no MLflow
    experiment: str  # the MLflow experiment


@dataclasses.dataclass(frozen=True)
class GatConfig:
    name: str
    data: DataSettings
    splits: SplitSettings
    eval: EvalSettings
    run: RunSettings
    tracking: TrackingSettings
    model: ModelSettings
    optim: OptimSettings
    loss: LossSettings


@dataclasses.dataclass(frozen=True)
class XgbSettings:
    n_estimators: Count  # at most
    learning_rate: Annotated[float, Range(above=0, max=1)]  # XGBoost's eta
    max_depth: Count
    min_child_weight: NonNegative
    subsample: Annotated[float, Range(above=0, max=1)]
    colsample_bytree: Annotated[float, Range(above=0, max=1)]
    reg_lambda: NonNegative
    max_bin: Annotated[int, Range(min=2)]
    eval_every: Count  # trees between validation RankIC checks
    patience: Count  # checks without improvement before stopping
    target_clip: Positive  # the label's cross-sectional z-scores, clipped


@dataclasses.dataclass(frozen=True)
class XgbConfig:
    name: str
    data: DataSettings
    splits: SplitSettings
    eval: EvalSettings
    run: RunSettings
    tracking: TrackingSettings
    xgb: XgbSettings


def _check_common(cfg: GatConfig | XgbConfig) -> None:
    """Rules across fields of the sections both models share."""
    longest = max(cfg.data.horizons)
    if cfg.splits.embargo_days < longest:
        raise ConfigError(f"splits.embargo_days ({cfg.splits.embargo_days}) must be at least the longest horizon "
                          f"({longest}) in data.horizons, or a label leaks into the next period",
                          "splits.embargo_days", "data.horizons")
    e = cfg.eval
    if e.min_names < 2 * e.portfolio_size:
        raise ConfigError(f"eval.min_names ({e.min_names}) must be at least twice eval.portfolio_size "
                          f"({e.portfolio_size}), or the top and bottom portfolios share names",
                          "eval.min_names", "eval.portfolio_size")


def check_gat(cfg: GatConfig) -> None:
    """The GAT's rules across fields: heads split hidden evenly; the loss has a term to learn from."""
    _check_common(cfg)
    m = cfg.model
    if m.hidden % m.heads:
        raise ConfigError(f"model.hidden ({m.hidden}) must be a multiple of model.heads ({m.heads}): each head "
                          f"gets hidden / heads channels", "model.hidden", "model.heads")
    if cfg.loss.huber_weight == 0 and cfg.loss.rank_weight == 0:
        raise ConfigError("loss.huber_weight and loss.rank_weight are both 0: the loss is 0 and nothing is learnt; "
                          "make one positive", "loss.huber_weight", "loss.rank_weight")


def check_xgb(cfg: XgbConfig) -> None:
    """The baseline's rules across fields."""
    _check_common(cfg)


def load_gat_config(path: str | Path, overrides: Iterable[str] = (), flag: str = "--config-set") -> GatConfig:
    return load(GatConfig, path, overrides, flag, check_gat)


def load_xgb_config(path: str | Path, overrides: Iterable[str] = (), flag: str = "--config-set") -> XgbConfig:
    return load(XgbConfig, path, overrides, flag, check_xgb)
