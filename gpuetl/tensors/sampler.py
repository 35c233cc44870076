"""The day-batch sampler: per day t, the last L days of every code as a view of the panel, that day's graph,
context and targets, and which codes count.

`values.unfold(0, L, 1)` is a strided view: window t is `windows[t - L + 1]` with no copy; only the batch
that stacks a few days' windows allocates (on the panel's device). Days before the L-th have shorter
histories and are padded with missing values. A code counts on day t (`eligible`) when it has a row that
day and at least `min_history` rows up to t; the others stay in the batch as nodes (they can be
neighbours) but are masked out of the loss and the metrics, never silently dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from gpuetl.tensors.graphs import DailyGraphs


def eligible_rows(present: torch.Tensor, min_history: int) -> torch.Tensor:
    """(D, N) bool: the code has a row on day t and at least `min_history` rows up to t."""
    return present & (present.to(torch.int32).cumsum(0) >= min_history)


@dataclasses.dataclass(frozen=True)
class DayBatch:
    """B days of N codes. Shapes: x (B*N, L, F), context (B*N, C), edge_index (2, E), edge_attr (E, A) (the
    relations' attributes and a self-loop flag), y (B, N, H), mask (B, N) bool (the codes that count)."""

    days: tuple[int, ...]
    x: torch.Tensor
    context: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor


class DaySampler:
    """Windows, graphs, context and targets of a (D, N, F) panel, day by day.

    Args:
        values: (D, N, F) per-code inputs, NaN where missing (read as 0 in batches).
        eligible: (D, N) bool, the codes that count each day (`eligible_rows(present, min_history)`).
        targets: (D, N, H) labels, NaN where missing.
        window: L, days of history per code.
        context: (D, C) day-constant inputs, or None.
        graphs: the daily graphs, or None (self-loops only).
        graph: False to drop the edges (the graph-free ablation) but keep the self-loops and the attributes' shape.
    """

    def __init__(self, values: torch.Tensor, eligible: torch.Tensor, targets: torch.Tensor, window: int,
                 context: torch.Tensor | None = None, graphs: DailyGraphs | None = None, graph: bool = True) -> None:
        self.values, self.eligible, self.targets = values, eligible, targets
        self.window_days = window
        d, n, _ = values.shape
        self.n_codes = int(n)
        self.windows = values.unfold(0, window, 1) if d >= window else None  # (D-L+1, N, F, L), a view
        self.context = context if context is not None else values.new_zeros((d, 0))
        self.graphs, self.graph = graphs, graph and graphs is not None

    @property
    def edge_dim(self) -> int:
        """Columns of a batch's edge_attr: one per relation and the self-loop flag."""
        return self.graphs.edge_dim if self.graphs is not None else 1

    def window(self, t: int) -> torch.Tensor:
        """(N, L, F): the last L days of every code at day t; a view of the panel from day L-1 on."""
        if self.windows is not None and t >= self.window_days - 1:
            return self.windows[t - self.window_days + 1].permute(0, 2, 1)
        short = self.values[: t + 1]
        pad = short.new_full((self.window_days - t - 1, *short.shape[1:]), float("nan"))
        return torch.cat([pad, short]).permute(1, 0, 2)

    def batch(self, days: Sequence[int]) -> DayBatch:
        """Days (host ints: every index is a Python int, so nothing is copied to or from the device). Each day's
        window is copied once into the batch, whose missing values are then zeroed in place."""
        n = self.n_codes
        x = self.values.new_empty((len(days), n, self.window_days, self.values.shape[-1]))
        for b, t in enumerate(days):
            x[b].copy_(self.window(t))
        torch.nan_to_num_(x, nan=0.0)
        context = torch.stack([self.context[t] for t in days]).repeat_interleave(n, dim=0)
        if self.graphs is not None:
            edge_index, edge_attr = self.graphs.batch(days, graph=self.graph)
        else:
            loop = torch.arange(len(days) * n, device=self.values.device)
            edge_index, edge_attr = torch.stack([loop, loop]), self.values.new_ones((len(days) * n, 1))
        return DayBatch(days=tuple(days), x=x.reshape(len(days) * n, self.window_days, -1), context=context,
                        edge_index=edge_index, edge_attr=edge_attr,
                        y=torch.stack([self.targets[t] for t in days]),
                        mask=torch.stack([self.eligible[t] for t in days]))
