"""One interface for the GAT and the XGBoost baseline: `fit(fold)` learns from a fold's training days (choosing
epochs or trees on its validation days), `predict(fold, days)` scores every code of those days."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from rich.progress import Progress

from gpuetl.train.data import FoldData


class TrainError(RuntimeError):
    """A run that cannot go on (no fold fits the data, a fold without samples, checkpoints of another config);
    the message says what to change."""


@dataclasses.dataclass
class FitLog:
    history: list[dict[str, Any]]  # per epoch (GAT) or per validation check (XGBoost)
    best: int  # the chosen epoch / number of trees
    best_score: float  # its validation RankIC
    seconds: float  # training time (device synchronised)
    stock_days: int  # (code, day) samples trained on, epochs or rounds counted once each
    resumed: bool = False


class Learner(Protocol):
    name: str  # the model's name in the run's files
    checkpoint_suffix: str  # of its per-fold checkpoint (checkpoints/fold<k>.<suffix>)

    def fit(self, fold: FoldData, checkpoint: Path, resume: bool, progress: Progress | None) -> FitLog: ...

    def predict(self, fold: FoldData, days: list[int]) -> torch.Tensor:
        """(len(days), N) scores of the evaluated label (NaN where not scored)."""
        ...


@runtime_checkable
class MultiHead(Protocol):
    """A learner with one head per horizon (the GAT): its test days are scored per horizon too."""

    def predict_heads(self, fold: FoldData, days: list[int]) -> torch.Tensor:
        """(len(days), N, H) scores of every head, in TrainData.heads order."""
        ...
