"""An exponential moving average of a model's weights, the weights that are validated and used to predict."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    """`update(model)` after each step moves the average towards the model's weights (with the usual warm-up,
    decay = min(decay, (1 + n) / (10 + n)), so the first steps do not drag the random start along). Foreach
    lerps on the device; the step count lives on the host, so an update never syncs."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.steps = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        self.steps += 1
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()), 1.0 - decay)
        for mine, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.model.load_state_dict(state["model"])
