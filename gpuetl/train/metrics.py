"""Daily cross-sectional metrics of predictions against a label, then their summaries.

Every metric is computed per day over the codes that count that day (mask), as torch ops over a (days x codes)
matrix on the predictions' device (no host copy, no per-day Python loop), then summarised on the host:

- IC: Pearson correlation of prediction and label; RankIC: Spearman (Pearson of average ranks, ties averaged
  as pandas' rank does); ICIR = mean / std (ddof 1) of the daily values; t-stat = ICIR * sqrt(days).
- hit rate: share of the day's codes whose prediction and label fall on the same side of their day's means.
- JPX 2022 score: each day, the codes ranked by prediction; the top n and the bottom n (n = 200, or 20% of the
  day's codes when it has fewer than 400) get weights linspace(2, 1, n) by rank (the best / the worst first);
  spread = sum(w * label of top) / mean(w) - sum(w * label of bottom) / mean(w), the competition's formula;
  score = mean(spread) / std(spread) (ddof 1, as the competition's pandas code).
- long-short return: the same portfolios with weights summing to 1 on each side: spread / n; cumulated as
  prod(1 + r) - 1 (a daily-rebalanced return when the label is a one-day return).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from gpuetl.train.config import EvalSettings

DAILY = ("ic", "rank_ic", "hit_rate", "spread", "long_short")


def average_ranks(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(D, N) -> ranks 1..n_d among each row's masked-in values, ties averaged; NaN where masked out."""
    n = x.shape[-1]
    v = torch.where(mask, x, torch.full_like(x, float("inf")))
    s, order = torch.sort(v, dim=-1, stable=True)
    pos = torch.arange(n, device=x.device).expand_as(s)
    new = torch.ones_like(s, dtype=torch.bool)
    new[..., 1:] = s[..., 1:] != s[..., :-1]
    end = torch.ones_like(new)
    end[..., :-1] = new[..., 1:]
    first = torch.cummax(torch.where(new, pos, torch.zeros_like(pos)), dim=-1).values
    last = torch.flip(torch.cummin(torch.flip(torch.where(end, pos, torch.full_like(pos, n - 1)), [-1]),
                                   dim=-1).values, [-1])
    ranks = torch.empty_like(s, dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
    ranks.scatter_(-1, order, ((first + last).to(ranks.dtype) / 2 + 1))
    return torch.where(mask, ranks, torch.full_like(ranks, float("nan")))


def masked_pearson(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-wise Pearson correlation over masked-in entries; NaN with < 2 entries or no variance."""
    m = mask.to(a.dtype)
    n = m.sum(-1)
    a0 = torch.where(mask, a, torch.zeros_like(a))
    b0 = torch.where(mask, b, torch.zeros_like(b))
    ma = a0.sum(-1, keepdim=True) / n.clamp(min=1).unsqueeze(-1)
    mb = b0.sum(-1, keepdim=True) / n.clamp(min=1).unsqueeze(-1)
    da, db = (a0 - ma) * m, (b0 - mb) * m
    cov = (da * db).sum(-1)
    var = (da * da).sum(-1) * (db * db).sum(-1)
    ok = (n >= 2) & (var > 0)
    return torch.where(ok, cov / var.clamp(min=torch.finfo(a.dtype).tiny).sqrt(), torch.full_like(cov, float("nan")))


def daily_rank_ic(pred: torch.Tensor, label: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(D,) Spearman correlation per day over the masked-in codes with both values finite."""
    mask = mask & torch.isfinite(pred) & torch.isfinite(label)
    return masked_pearson(average_ranks(pred, mask), average_ranks(label, mask), mask)


def daily_metrics(pred: torch.Tensor, label: torch.Tensor, mask: torch.Tensor,
                  cfg: EvalSettings) -> dict[str, torch.Tensor]:
    """(D, N) predictions, labels and mask -> each DAILY metric as a (D,) tensor (NaN on days it is undefined)."""
    pred, label = pred.double(), label.double()
    mask = mask & torch.isfinite(pred) & torch.isfinite(label)
    out = {"ic": masked_pearson(pred, label, mask), "rank_ic": daily_rank_ic(pred, label, mask)}
    n = mask.sum(-1)
    m = mask.to(pred.dtype)
    mean_p = torch.where(mask, pred, 0.0).sum(-1, keepdim=True) / n.clamp(min=1).unsqueeze(-1)
    mean_y = torch.where(mask, label, 0.0).sum(-1, keepdim=True) / n.clamp(min=1).unsqueeze(-1)
    same = (torch.sign(pred - mean_p) == torch.sign(label - mean_y)).to(pred.dtype) * m
    out["hit_rate"] = torch.where(n > 0, same.sum(-1) / n.clamp(min=1), float("nan"))
    spread, size = jpx_spread(pred, label, mask, cfg)
    out["spread"] = spread
    out["long_short"] = spread / size.clamp(min=1)
    return out


def jpx_spread(pred: torch.Tensor, label: torch.Tensor, mask: torch.Tensor,
               cfg: EvalSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """(D,) JPX spread returns and (D,) portfolio sizes n (0 and NaN on days with too few codes)."""
    count = mask.sum(-1)
    size = torch.where(count >= cfg.min_names, torch.full_like(count, cfg.portfolio_size),
                       torch.floor(count.to(torch.float64) * cfg.fallback_share).to(count.dtype))
    pos = torch.arange(pred.shape[-1], device=pred.device).to(pred.dtype).expand_as(pred)
    steps = (size - 1).clamp(min=1).to(pred.dtype).unsqueeze(-1)
    weight = torch.where(pos < size.unsqueeze(-1), cfg.top_weight - (cfg.top_weight - 1) * pos / steps, 0.0)
    sides = []
    for sign in (-1.0, 1.0):  # best first (descending prediction), then worst first
        key = torch.where(mask, sign * pred, torch.full_like(pred, float("inf")))
        order = torch.sort(key, dim=-1, stable=True).indices
        y = torch.gather(torch.where(mask, label, 0.0), -1, order)
        sides.append((weight * y).sum(-1))
    mean_w = torch.where(size > 1, (cfg.top_weight + 1) / 2, cfg.top_weight).to(pred.dtype)  # of linspace(top, 1, n)
    spread = (sides[0] - sides[1]) / mean_w
    return torch.where(size > 0, spread, float("nan")), size


def information_ratio(v: np.ndarray) -> float:
    """mean / std (ddof 1) of finite daily values: ICIR, or the JPX score of daily spreads (NaN without spread)."""
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    return float(v.mean() / sd) if sd > 0 else math.nan


def summarize(daily: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Host summaries of daily metrics (NaN days skipped): means, ICIR, t-stats, JPX score, long-short return."""

    def clean(name: str) -> np.ndarray:
        v = np.asarray(daily[name], dtype=np.float64)
        return v[np.isfinite(v)]

    ratio = information_ratio
    ic, ric, spread, ls = clean("ic"), clean("rank_ic"), clean("spread"), clean("long_short")
    mean = lambda v: float(v.mean()) if len(v) else math.nan  # noqa: E731
    return {
        "days": len(ric),
        "ic": mean(ic), "rank_ic": mean(ric),
        "icir": ratio(ic), "rank_icir": ratio(ric),
        "ic_t": ratio(ic) * math.sqrt(len(ic)), "rank_ic_t": ratio(ric) * math.sqrt(len(ric)),
        "hit_rate": mean(clean("hit_rate")),
        "jpx_score": ratio(spread), "spread": mean(spread),
        "long_short_cum": float(np.prod(1.0 + ls) - 1.0) if len(ls) else math.nan,
    }


def to_host(daily: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Daily metric tensors -> host arrays (once per fold, for the summaries and the report)."""
    return {k: v.detach().to("cpu", torch.float64).numpy() for k, v in daily.items()}  # host-ok: D values per metric
