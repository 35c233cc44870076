"""The lead-lag relation: which codes' returns today move a code's returns tomorrow, estimated on a fold's
training days only and then used, unchanged, on its validation and test days (as the model's weights are).

A daily correlation graph links codes that move together on the same day; a stock that follows another
(a supplier after its customer, a small cap after the sector's leader) moves a day later, and only a lagged
correlation sees it. Per pair (leader j, follower i) over the training days:

    x[t, c] = r[t, c] - mean_c' r[t, c']              (the day's market move removed)
    z[t, c] = (x[t, c] - mean_t x[., c]) / std_t x[., c]
    rho[i, j] = sum_t z[t + 1, i] z[t, j] / m[i, j]   (m: days t with j on t and i on t + 1)
    s[i, j] = rho[i, j] * sqrt(m[i, j])               (its t-statistic under no relation)

Each code keeps the `peers` leaders with the largest positive s (with m >= min_days, optionally only among
codes of its own group, the 33-sector: a lagged correlation of one pair over a few years is mostly noise,
and a group narrows the candidates to where followers' leaders mostly are). The edge j -> i carries s[i, j].
The pairs (t, t + 1) lie within the training days, so nothing of the validation or test days enters.
"""

from __future__ import annotations

import torch

from gpuetl.train.loss import masked_zscore


def lead_lag_edges(returns: torch.Tensor, group: torch.Tensor | None, peers: int,
                   min_days: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Leader -> follower edges from the returns of consecutive training days.

    Shapes:
        returns: (T, N) the training days' returns, NaN where a code has none; group: (T, N) or None (a code's
        group is its last finite value) -> src (E,), dst (E,) int64, strength (E,) float32 (the t-statistic)
    """
    t, n = returns.shape
    k = min(peers, n - 1)
    if k < 1 or t < 2:
        none = torch.zeros(0, dtype=torch.int64, device=returns.device)
        return none, none, torch.zeros(0, device=returns.device)
    r = returns.double()
    ok = torch.isfinite(r)
    r0 = torch.where(ok, r, torch.zeros_like(r))
    day_mean = r0.sum(1, keepdim=True) / ok.sum(1, keepdim=True).clamp(min=1)
    z = masked_zscore(torch.where(ok, r - day_mean, torch.zeros_like(r)), ok, dim=0)  # per code, over the days
    v = ok.double()
    pairs = v[1:].T @ v[:-1]  # [i, j]: days with j on t and i on t + 1
    score = (z[1:].T @ z[:-1]) / pairs.clamp(min=1) * pairs.sqrt()
    candidate = (pairs >= min_days) & (score > 0)
    candidate &= ~torch.eye(n, dtype=torch.bool, device=r.device)
    if group is not None:
        g = _last_finite(group)
        candidate &= (g[:, None] == g[None, :]) & torch.isfinite(g)[:, None]
    top = torch.topk(torch.where(candidate, score, torch.full_like(score, -torch.inf)), k, dim=1)
    keep = torch.isfinite(top.values)
    follower = torch.arange(n, device=r.device)[:, None].expand_as(top.indices)
    return top.indices[keep], follower[keep], top.values[keep].float()


def _last_finite(values: torch.Tensor) -> torch.Tensor:
    """(T, N) -> (N,): each column's last finite value (NaN when it has none)."""
    ok = torch.isfinite(values)
    step = torch.arange(values.shape[0], device=values.device)[:, None]
    last = torch.where(ok, step, torch.full_like(step, -1)).max(0).values
    picked = values.gather(0, last.clamp(min=0)[None, :])[0]
    return torch.where(last >= 0, picked, torch.full_like(picked, float("nan")))
