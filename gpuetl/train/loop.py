"""The GAT's training loop: shuffled day batches, bf16 autocast on CUDA, gradient clipping, an EMA of the weights,
early stopping on the validation RankIC of the EMA weights, a checkpoint after every epoch (resumable).

Nothing in an epoch leaves the device: day indices are host ints (slices and views, no index tensors to copy),
edges are slices of device tensors, the loss is summed on the device and read once per epoch with the
validation RankIC (the scalar logging). The model lives apart from this loop (gpuetl/train/model.py).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from gpuetl.tensors import DaySampler
from gpuetl.train.config import GatConfig
from gpuetl.train.data import FoldData, TrainData
from gpuetl.train.ema import EMA
from gpuetl.train.learner import FitLog, TrainError
from gpuetl.train.loss import ranking_loss
from gpuetl.train.metrics import daily_rank_ic
from gpuetl.train.model import GATRanker


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on CUDA when asked; the CPU always runs float32."""
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16) if bf16 and device.type == "cuda" \
        else contextlib.nullcontext()


def batches(days: Sequence[int], size: int, rng: np.random.Generator | None = None, limit: int = 0) -> list[list[int]]:
    """Days in chunks of `size` (host ints); shuffled by `rng` when given, and then only the first `limit` (0: all)."""
    order = [days[i] for i in rng.permutation(len(days))] if rng is not None else list(days)
    order = order[:limit] if limit else order
    return [order[i: i + size] for i in range(0, len(order), size)]


def train_epoch(model: GATRanker, ema: EMA, optimizer: torch.optim.Optimizer, sampler: DaySampler,
                day_batches: list[list[int]], cfg: GatConfig,
                on_step: Callable[[], None] | None = None) -> torch.Tensor:
    """One pass over `day_batches`; returns the mean loss as a device scalar (not read here)."""
    model.train()
    device = sampler.values.device
    total = torch.zeros((), device=device)
    for days in day_batches:
        b = sampler.batch(days)
        with autocast(device, cfg.optim.bf16):
            out = model(b.x, b.context, b.edge_index, b.edge_attr)
        loss, _ = ranking_loss(out.view(len(days), sampler.n_codes, -1), b.y, b.mask, cfg.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        ema.update(model)
        total += loss.detach()
        if on_step is not None:
            on_step()
    return total / max(len(day_batches), 1)


@torch.no_grad()
def predict_days(model: torch.nn.Module, sampler: DaySampler, days: Sequence[int], head: int | None,
                 days_per_batch: int, bf16: bool) -> torch.Tensor:
    """(len(days), N) scores of output `head` for every code (the mask is applied by the metrics); head None:
    (len(days), N, H), every head's."""
    model.eval()
    device = sampler.values.device
    out: torch.Tensor | None = None
    for i, chunk in enumerate(batches(days, days_per_batch)):
        b = sampler.batch(chunk)
        with autocast(device, bf16):
            pred = model(b.x, b.context, b.edge_index, b.edge_attr)
        pred = pred.view(len(chunk), sampler.n_codes, -1).float()
        if out is None:
            out = torch.full((len(days), sampler.n_codes, pred.shape[-1]), float("nan"), device=device)
        start = i * days_per_batch
        out[start: start + len(chunk)] = pred
    if out is None:
        out = torch.full((0, sampler.n_codes, 1), float("nan"), device=device)
    return out if head is None else out[..., head]


class GATLearner:
    """The GAT behind `fit` / `predict` (see gpuetl/train/learner.py)."""

    name = "gat"
    checkpoint_suffix = "pt"

    def __init__(self, cfg: GatConfig, data: TrainData, seed: int) -> None:
        self.cfg, self.seed = cfg, seed
        m = cfg.model
        torch.manual_seed(seed)
        self.model = GATRanker(len(data.inputs), len(data.context_columns), m.hidden, len(data.heads), m.window,
                               m.encoder, m.encoder_layers, m.gat_layers, m.heads, data.edge_dim,
                               m.dropout, m.relation_means).to(data.device)
        self.ema = EMA(self.model, cfg.optim.ema_decay)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.optim.lr,
                                           weight_decay=cfg.optim.weight_decay)

    def sampler(self, fold: FoldData) -> DaySampler:
        return fold.sampler(self.cfg.model.window, graph=self.cfg.model.graph)

    def predict(self, fold: FoldData, days: list[int]) -> torch.Tensor:
        return predict_days(self.ema.model, self.sampler(fold), days, fold.data.label_index,
                            self.cfg.optim.days_per_batch, self.cfg.optim.bf16)

    def predict_heads(self, fold: FoldData, days: list[int]) -> torch.Tensor:
        """(len(days), N, H) scores of every head (one per horizon of data.horizons)."""
        return predict_days(self.ema.model, self.sampler(fold), days, None, self.cfg.optim.days_per_batch,
                            self.cfg.optim.bf16)

    def validation_rank_ic(self, fold: FoldData, days: list[int]) -> torch.Tensor:
        """Mean daily RankIC of the EMA weights on `days` (a device scalar)."""
        label, mask = fold.data.rows(days)
        return torch.nanmean(daily_rank_ic(self.predict(fold, days), label, mask))

    def fit(self, fold: FoldData, checkpoint: Path, resume: bool = False, progress: Progress | None = None) -> FitLog:
        opt = self.cfg.optim
        data = fold.data
        train, valid = data.days(fold.fold.train), data.days(fold.fold.valid)
        if not train or not valid:
            raise TrainError(f"fold {fold.fold.index}: no training or validation day has codes with the label")
        sampler = self.sampler(fold)
        rng = np.random.default_rng(self.seed)
        state: dict[str, Any] = {"epoch": 0, "history": [], "best": -np.inf, "best_epoch": -1, "bad": 0,
                                 "best_state": None, "seconds": 0.0, "stock_days": 0, "done": False}
        resumed = resume and checkpoint.is_file()
        if resumed:
            state = self._restore(checkpoint, rng)
        while not state["done"] and state["epoch"] < opt.max_epochs:
            epoch = state["epoch"]
            day_batches = batches(train, opt.days_per_batch, rng, opt.days_per_epoch)
            per_epoch = int(sum(data.label_counts[t] for b in day_batches for t in b))
            task = progress.add_task(f"fold {fold.fold.index} epoch {epoch + 1}/{opt.max_epochs}",
                                     total=len(day_batches)) if progress else None
            synchronize(data.device)
            t0 = time.perf_counter()
            loss = train_epoch(self.model, self.ema, self.optimizer, sampler, day_batches, self.cfg,
                               functools.partial(progress.advance, task) if progress and task is not None else None)
            synchronize(data.device)
            seconds = time.perf_counter() - t0
            score = float(self.validation_rank_ic(fold, valid).item())  # host-ok: scalar logging, once per epoch
            entry = {"epoch": epoch + 1, "train_loss": float(loss.item()), "valid_rank_ic": score,  # host-ok: as above
                     "seconds": round(seconds, 3), "stock_days_per_s": round(per_epoch / seconds, 1)}
            state["history"].append(entry)
            state["seconds"] += seconds
            state["stock_days"] += per_epoch
            if progress is not None and task is not None:
                progress.remove_task(task)
                progress.console.print(f"fold {fold.fold.index} epoch {epoch + 1}: loss {entry['train_loss']:.4f}, "
                                       f"valid RankIC {score:+.4f}, {entry['stock_days_per_s']:,.0f} stock-days/s")
            if score > state["best"]:
                state.update(best=score, best_epoch=epoch + 1, bad=0,
                             best_state={k: v.detach().clone() for k, v in self.ema.model.state_dict().items()})
            else:
                state["bad"] += 1
            state["epoch"] = epoch + 1
            state["done"] = state["bad"] >= opt.patience or state["epoch"] >= opt.max_epochs
            self._save(checkpoint, state, rng)
        if state["best_state"] is not None:
            self.ema.model.load_state_dict(state["best_state"])
        return FitLog(state["history"], state["best_epoch"], float(state["best"]), state["seconds"],
                      state["stock_days"], resumed)

    def restore(self, checkpoint: Path) -> None:
        """The weights a finished fold predicts with, as `fit` leaves them: the EMA weights of the epoch with the
        best validation RankIC (the last EMA weights when no epoch scored). TrainError for an unfinished fold."""
        saved = torch.load(checkpoint, map_location=next(self.model.parameters()).device, weights_only=False)
        if not saved["done"] and saved["epoch"] < self.cfg.optim.max_epochs:  # host-ok: Python bool and int, saved
            raise TrainError(f"{checkpoint} is a fold that did not finish (epoch {saved['epoch']} of at most "
                             f"{self.cfg.optim.max_epochs})")
        self.ema.load_state_dict(saved["ema"])
        if saved["best_state"] is not None:
            self.ema.model.load_state_dict(saved["best_state"])

    def _save(self, path: Path, state: dict[str, Any], rng: np.random.Generator) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({**state, "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                    "optimizer": self.optimizer.state_dict(), "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}, tmp)
        tmp.replace(path)

    def _restore(self, path: Path, rng: np.random.Generator) -> dict[str, Any]:
        saved = torch.load(path, map_location=next(self.model.parameters()).device, weights_only=False)
        self.model.load_state_dict(saved.pop("model"))
        self.ema.load_state_dict(saved.pop("ema"))
        self.optimizer.load_state_dict(saved.pop("optimizer"))
        rng.bit_generator.state = saved.pop("rng")
        torch.set_rng_state(
            saved.pop("torch_rng").cpu())  # host-ok: torch's CPU RNG state must be a CPU tensor, once per resume
        cuda_rng = saved.pop("cuda_rng")
        if cuda_rng is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(
                [s.cpu() for s in cuda_rng])  # host-ok: CUDA RNG states are set from CPU tensors, once per resume
        return saved
