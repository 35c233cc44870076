"""The XGBoost baseline behind the learners' `fit` / `predict`: one row per (code, day) with the day's per-code
inputs and the day's context (no window), trained on the label's per-day z-scores (clipped), the number of
trees chosen by validation RankIC every `eval_every` rounds (stopping after `patience` checks without a
better one). On the GPU the rows stay on the device: CuPy arrays over the panel's memory go to
`device="cuda"`; on the CPU, NumPy arrays to `tree_method="hist"`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xgboost as xgb
from rich.progress import Progress

from gpuetl.train.config import XgbConfig
from gpuetl.train.data import FoldData
from gpuetl.train.learner import FitLog, TrainError
from gpuetl.train.loop import synchronize
from gpuetl.train.loss import masked_zscore
from gpuetl.train.metrics import daily_rank_ic


def day_rows(fold: FoldData, days: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(T, N, F + C) inputs and (fold-standardised) context of `days`, their (T, N) label, and the (T, N) codes
    that count."""
    d = fold.data
    x = torch.stack([d.x[t] for t in days])
    ctx = torch.stack([fold.context[t] for t in days])
    label, mask = d.rows(days)
    return torch.cat([x, ctx.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1), label, mask


class RankICStopping(xgb.callback.TrainingCallback):
    """Every `every` trees: validation RankIC of the trees so far; stop after `patience` checks without a gain."""

    def __init__(self, learner: XGBLearner, rows: Any, label: torch.Tensor, mask: torch.Tensor, every: int,
                 patience: int, progress: Progress | None, task: Any) -> None:
        super().__init__()
        self.learner, self.rows, self.label, self.mask = learner, rows, label, mask
        self.every, self.patience, self.progress, self.task = every, patience, progress, task
        self.history: list[dict[str, Any]] = []
        self.best, self.best_trees, self.bad = -np.inf, 0, 0

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        trees = epoch + 1
        if self.progress is not None:
            self.progress.advance(self.task)
        if trees % self.every:
            return False
        pred = self.learner.scatter(model.inplace_predict(self.rows, iteration_range=(0, trees)), self.mask)
        score = float(torch.nanmean(daily_rank_ic(pred, self.label, self.mask))
                      .item())  # host-ok: one score per evaluation, for early stopping
        self.history.append({"trees": trees, "valid_rank_ic": score})
        if score > self.best:
            self.best, self.best_trees, self.bad = score, trees, 0
        else:
            self.bad += 1
        return self.bad >= self.patience


class XGBLearner:
    """XGBoost regression on the label's per-day z-scores (see the module docstring)."""

    name = "xgb"
    checkpoint_suffix = "ubj"

    def __init__(self, cfg: XgbConfig, seed: int) -> None:
        self.cfg, self.seed = cfg, seed
        self.booster: xgb.Booster | None = None
        self.trees = 0

    def _array(self, fold: FoldData, t: torch.Tensor) -> Any:
        """A tensor as the backend's array over the same memory (CuPy on the GPU: XGBoost reads it on the device)."""
        return fold.data.backend.xp.from_dlpack(t.contiguous())

    def scatter(self, values: Any, mask: torch.Tensor) -> torch.Tensor:
        """Predictions of the masked-in rows -> (T, N) with NaN elsewhere."""
        out = torch.full(mask.shape, float("nan"), device=mask.device)
        out[mask] = torch.from_dlpack(values).to(out.dtype).reshape(-1)
        return out

    def fit(self, fold: FoldData, checkpoint: Path, resume: bool = False, progress: Progress | None = None) -> FitLog:
        c = self.cfg.xgb
        data = fold.data
        meta = checkpoint.with_suffix(".json")
        if resume and checkpoint.is_file() and meta.is_file():
            self.booster = xgb.Booster(model_file=str(checkpoint))
            saved = json.loads(meta.read_text())
            self.trees = int(saved["best"])
            return FitLog(saved["history"], self.trees, float(saved["best_score"]), float(saved["seconds"]),
                          int(saved["stock_days"]), resumed=True)
        train, valid = data.days(fold.fold.train), data.days(fold.fold.valid)
        if not train or not valid:
            raise TrainError(f"fold {fold.fold.index}: no training or validation day has codes with the label")
        x, label, mask = day_rows(fold, train)
        rows = mask & torch.isfinite(label)
        target = masked_zscore(torch.nan_to_num(label, nan=0.0), rows).clamp(-c.target_clip, c.target_clip)
        dtrain = xgb.QuantileDMatrix(self._array(fold, x[rows]), self._array(fold, target[rows]), max_bin=c.max_bin)
        vx, vlabel, vmask = day_rows(fold, valid)
        device = "cuda" if data.device.type == "cuda" else "cpu"
        params = {"objective": "reg:squarederror", "tree_method": "hist", "device": device, "eta": c.learning_rate,
                  "max_depth": c.max_depth, "min_child_weight": c.min_child_weight, "subsample": c.subsample,
                  "colsample_bytree": c.colsample_bytree, "lambda": c.reg_lambda, "max_bin": c.max_bin,
                  "seed": self.seed, **({"nthread": self.cfg.run.threads} if self.cfg.run.threads else {})}
        task = progress.add_task(f"fold {fold.fold.index} trees", total=c.n_estimators) if progress else None
        stop = RankICStopping(self, self._array(fold, vx[vmask]), vlabel, vmask, c.eval_every, c.patience,
                              progress, task)
        synchronize(data.device)
        t0 = time.perf_counter()
        booster = xgb.train(params, dtrain, num_boost_round=c.n_estimators, callbacks=[stop])
        synchronize(data.device)
        seconds = time.perf_counter() - t0
        if progress is not None and task is not None:
            progress.remove_task(task)
            progress.console.print(f"fold {fold.fold.index}: {stop.best_trees} trees, valid RankIC {stop.best:+.4f}")
        self.booster, self.trees = booster, max(stop.best_trees, 1)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(checkpoint))
        stock_days = int(rows.sum().item())  # host-ok: one count per fold, for the report
        meta.write_text(json.dumps({"best": self.trees, "best_score": stop.best, "history": stop.history,
                                    "seconds": seconds, "stock_days": stock_days}, indent=2))
        return FitLog(stop.history, self.trees, float(stop.best), seconds, stock_days)

    def restore(self, checkpoint: Path, device: torch.device | None = None) -> None:
        """The trees a finished fold predicts with, as `fit` leaves them: its booster, cut at the chosen count, set
        to predict on `device` (a model file does not keep it: on CUDA, rows on the device stay there)."""
        meta = checkpoint.with_suffix(".json")
        if not meta.is_file():
            raise TrainError(f"{checkpoint} has no {meta.name} beside it: the fold did not finish")
        self.booster = xgb.Booster(model_file=str(checkpoint))
        if device is not None and device.type == "cuda":
            self.booster.set_param({"device": "cuda"})
        self.trees = int(json.loads(meta.read_text())["best"])

    def predict(self, fold: FoldData, days: list[int]) -> torch.Tensor:
        if self.booster is None:
            raise RuntimeError("fit (or resume) before predict")
        x, _, mask = day_rows(fold, days)
        return self.scatter(self.booster.inplace_predict(self._array(fold, x[mask]), iteration_range=(0, self.trees)),
                            mask)
