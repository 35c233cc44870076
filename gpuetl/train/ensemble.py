"""Seed ensembles: one model per seed in `run.seeds` and fold, their scores averaged.

The members' raw scores are on scales of their own (a network's outputs drift with its initialisation), so the
ensemble averages each member's per-day z-scores over the day's codes that count: every member weighs the same
in the ranking. One member is its own ensemble, unchanged. `gpuetl predict` combines the same way, so a run's
test predictions and a prediction of one of its test days agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from gpuetl.train.loss import masked_zscore


def member_seed(seed: int, fold: int) -> int:
    """The seed of the member of `seed` on fold `fold` (each fold starts afresh, from its own seed)."""
    return seed + fold


def checkpoint(folder: Path, fold: int, seed: int, suffix: str) -> Path:
    """checkpoints/fold<k>-seed<s>.<suffix>: the member of `seed` (as run.seeds names it) on fold k."""
    return folder / f"fold{fold}-seed{seed}.{suffix}"


def combine(members: Sequence[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """(T, N) ensemble scores of (T, N) member scores: the mean of their per-day z-scores over `mask`, NaN where a
    code does not count. One member is returned as it is."""
    if len(members) == 1:
        return members[0]
    preds = torch.stack(list(members)).float()  # (M, T, N)
    ok = mask & torch.isfinite(preds)
    z = torch.where(ok, masked_zscore(torch.nan_to_num(preds, nan=0.0), ok), torch.zeros_like(preds))
    return torch.where(mask, z.mean(0), torch.full_like(z[0], float("nan")))
