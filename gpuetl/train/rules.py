"""Simple rules scored beside every model: a result counts when it beats them. Each rule ranks the same test days,
codes and label as the model, with the same metrics (gpuetl/train/metrics.py), from columns the dataset already
holds; none is fitted, so none can have seen a test day.

- reversal_1d: -ret_1d (short-term reversal, one day); reversal_5d: -ret_5d (one week);
- momentum_120_20: (1 + ret_120d) / (1 + ret_20d) - 1, the return from t-120 to t-20 (momentum skipping the last
  month; 120 days is the default dataset's longest return, so not the 12-1-month form);
- low_vol_20d: -rvol_20d (the low-volatility anomaly);
- random: uniform noise seeded by the first of `run.seeds` (zero skill: what chance scores).

A rule whose columns the dataset lacks is left out, and the run says which (metrics.json `rules_missing`).
Beside each rule the run records the paired daily difference of RankIC (the model's minus the rule's, on the days
both are defined), its mean and t-statistic (mean / std * sqrt(days)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from gpuetl.tensors import Dataset
from gpuetl.train.data import TrainData

Columns = Mapping[str, torch.Tensor]

RULES: dict[str, tuple[tuple[str, ...], Callable[[Columns], torch.Tensor]]] = {
    "reversal_1d": (("ret_1d",), lambda c: -c["ret_1d"]),
    "reversal_5d": (("ret_5d",), lambda c: -c["ret_5d"]),
    "momentum_120_20": (("ret_120d", "ret_20d"), lambda c: (1 + c["ret_120d"]) / (1 + c["ret_20d"]) - 1),
    "low_vol_20d": (("rvol_20d",), lambda c: -c["rvol_20d"]),
}
RANDOM = "random"


def rule_scores(ds: Dataset, data: TrainData, seed: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(D, N) scores of every rule the dataset allows, on the training panel's days and codes and device, and the
    rules left out for want of columns."""
    usable = {name: rule for name, rule in RULES.items() if all(c in ds.features for c in rule[0])}
    missing = [name for name in RULES if name not in usable]
    columns = sorted({c for needs, _ in usable.values() for c in needs})
    shape = tuple(data.panel.present.shape)
    scores: dict[str, torch.Tensor] = {}
    if columns:
        panel = ds.panel(columns, data.device)
        if tuple(panel.present.shape) != shape:
            raise RuntimeError(f"the rules' panel {tuple(panel.present.shape)} is not the training panel {shape}")
        raw = {c: torch.where(panel.present, panel.column(c).double(), float("nan")) for c in columns}
        scores = {name: fn(raw) for name, (_, fn) in usable.items()}
    noise = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    scores[RANDOM] = noise.to(data.device)
    return scores, missing


def paired(model: np.ndarray, rule: np.ndarray) -> dict[str, float]:
    """The model's daily RankIC minus the rule's, on the days both are defined: mean, t-statistic, days."""
    diff = np.asarray(model, dtype=np.float64) - np.asarray(rule, dtype=np.float64)
    diff = diff[np.isfinite(diff)]
    sd = diff.std(ddof=1) if len(diff) > 1 else 0.0
    mean = float(diff.mean()) if len(diff) else math.nan
    return {"diff_rank_ic": mean, "diff_t": mean / sd * math.sqrt(len(diff)) if sd > 0 else math.nan,
            "diff_days": len(diff)}


def rules_table(metrics: Mapping[str, Any]) -> str:
    """The model's overall row and each rule's as a Markdown table, with the paired difference."""
    o = metrics["overall"]
    lines = ["| ranking | RankIC | t | JPX score | long-short | model minus it | paired t |",
             "|---|---:|---:|---:|---:|---:|---:|",
             f"| **{metrics['model']}** | {_f(o['rank_ic'], '+.4f')} | {_f(o['rank_ic_t'], '+.2f')} | "
             f"{_f(o['jpx_score'], '+.3f')} | {_f(o['long_short_cum'], '+.1%')} | | |"]
    for name, r in metrics["rules"].items():
        lines.append(f"| {name} | {_f(r['rank_ic'], '+.4f')} | {_f(r['rank_ic_t'], '+.2f')} | "
                     f"{_f(r['jpx_score'], '+.3f')} | {_f(r['long_short_cum'], '+.1%')} | "
                     f"{_f(r['diff_rank_ic'], '+.4f')} | {_f(r['diff_t'], '+.2f')} |")
    return "\n".join(lines)


def _f(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)
