"""The training loss: Huber on cross-sectionally normalised targets plus a differentiable rank-correlation term.

Per day and horizon, over the codes that count (mask) and have the target:
- targets are z-scored across codes and clipped at +-clip, so every day weighs alike whatever its volatility;
- Huber(pred, z) is averaged over those entries;
- the rank term is 1 - corr(soft_rank(pred), rank(target)): soft ranks from pairwise sigmoids of the day's
  z-scored predictions (temperature in z units), exact average ranks of the target. O(N^2) per day.
total = huber_weight * huber + rank_weight * rank term. No boolean indexing: no device sync.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gpuetl.train.config import LossSettings
from gpuetl.train.metrics import average_ranks, masked_pearson


def masked_zscore(x: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """z-scores of x along `dim` over masked-in entries (population std); 0 where masked out or no spread."""
    m = mask.to(x.dtype)
    n = m.sum(dim, keepdim=True).clamp(min=1)
    x0 = torch.where(mask, x, torch.zeros_like(x))
    mean = x0.sum(dim, keepdim=True) / n
    dev = (x0 - mean) * m
    std = ((dev * dev).sum(dim, keepdim=True) / n).sqrt()
    return torch.where(mask & (std > 0), dev / std.clamp(min=1e-12), torch.zeros_like(x))


def soft_rank(x: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """(R, N) -> differentiable ranks among each row's masked-in entries: 0.5 + sum_j sigmoid((x_i - x_j) / t)."""
    return _SoftRank.apply(x, mask, temperature)


def _pair_chunk(x: torch.Tensor) -> int:
    """Rows i per (R, i, N) block of pairwise sigmoids: 4 M pairs (16 MiB) on the CPU, where the whole (R, N, N)
    tensor and autograd's copies of it went through memory five times; as fast as 2 MiB blocks with one thread
    and far faster with two on a busy machine (each op of a block is a parallel region that waits for a core the
    other jobs hold: two threads took 10x one thread's time with 2 MiB blocks there, 3x with 16 MiB); larger on
    a GPU."""
    budget = 2**22 if x.device.type == "cpu" else 2**26
    return max(1, budget // max(x.shape[0] * x.shape[1], 1))


class _SoftRank(torch.autograd.Function):
    """soft_rank in blocks of rows, forward and backward, never holding the (R, N, N) sigmoids. With s_ij =
    sigmoid((x_i - x_j) / t), s'_ij = s_ij (1 - s_ij) and mask m: rank_i = 0.5 + sum_j s_ij m_j, so for the
    gradient g of the ranks, dL/dx_k = (g_k sum_j s'_kj m_j - m_k sum_i g_i s'_ik) / t (the backward recomputes
    the blocks: a sigmoid is cheaper than storing it). A masked-out x_j enters as +inf, so its sigmoid and
    derivative are exactly 0 (the mask costs no product): a block is a subtraction, a sigmoid and its sums."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
        other = torch.where(mask, x, torch.full_like(x, float("inf")))
        out = torch.empty_like(x)
        step = _pair_chunk(x)
        for lo in range(0, x.shape[-1], step):
            s = _sigmoids(x[:, lo: lo + step], other, temperature)
            torch.sum(s, dim=-1, out=out[:, lo: lo + step])
        ctx.save_for_backward(x, other)
        ctx.temperature = temperature
        return out.add_(0.5)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, other = ctx.saved_tensors
        own, others = torch.empty_like(x), torch.zeros_like(x)  # g_k sum_j s'_kj m_j, sum_i g_i s'_ik m_k
        step = _pair_chunk(x)
        for lo in range(0, x.shape[-1], step):
            s = _sigmoids(x[:, lo: lo + step], other, ctx.temperature)
            d = torch.ops.aten.sigmoid_backward(g[:, lo: lo + step, None].expand_as(s), s)  # g_i s'_ij
            torch.sum(d, dim=-1, out=own[:, lo: lo + step])
            others += d.sum(dim=1)
        return (own - others) / ctx.temperature, None, None


def _sigmoids(rows: torch.Tensor, other: torch.Tensor, temperature: float) -> torch.Tensor:
    """(R, i, N) sigmoid((x_i - x_j) / t), in place on the one block allocated."""
    return (rows[:, :, None] - other[:, None, :]).div_(temperature).sigmoid_()


def ranking_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                 cfg: LossSettings) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """pred, target (B, N, H), mask (B, N) -> the scalar loss and its parts (device tensors, not read here)."""
    pred = pred.float()
    valid = mask.unsqueeze(-1) & torch.isfinite(target)  # (B, N, H)
    # per (day, horizon) rows across codes
    p = pred.transpose(1, 2).reshape(-1, pred.shape[1])
    y = torch.nan_to_num(target.float(), nan=0.0).transpose(1, 2).reshape(-1, pred.shape[1])
    v = valid.transpose(1, 2).reshape(-1, pred.shape[1])
    z = masked_zscore(y, v).clamp(-cfg.target_clip, cfg.target_clip)
    count = v.sum().clamp(min=1)
    huber = (F.huber_loss(p, z, reduction="none", delta=cfg.huber_delta) * v).sum() / count
    ranks = soft_rank(masked_zscore(p, v), v, cfg.rank_temperature)
    target_ranks = torch.nan_to_num(average_ranks(y, v), nan=0.0)
    rows = (v.sum(-1) >= 2).to(p.dtype)
    corr = torch.nan_to_num(masked_pearson(ranks, target_ranks, v), nan=0.0)  # 0 on days with < 2 codes
    rank = ((1.0 - corr) * rows).sum() / rows.sum().clamp(min=1)
    total = cfg.huber_weight * huber + cfg.rank_weight * rank
    return total, {"huber": huber.detach(), "rank": rank.detach()}
