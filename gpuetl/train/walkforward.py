"""A walk-forward run: plan and check the folds, fit and score a learner fold by fold, write the run folder.

    <out>/config.json        the resolved config, dataset (hashes, definition), label, heads, inputs, seeds, device,
                             versions
    <out>/splits.json        the folds (`Splits`, checked before any fit)
    <out>/checkpoints/       fold<k>.pt (GAT: every epoch) or fold<k>.ubj + .json (XGBoost); --resume reuses them;
                             the last fold's is the model `gpuetl predict` scores with (gpuetl/train/predict.py)
    <out>/predictions.parquet  Date, Code, fold, prediction, label: every scored test row
    <out>/metrics.json       per fold and overall summaries, the simple rules beside them (gpuetl/train/rules.py),
                             daily series, training curves, throughput, memory
    <out>/report.md, <out>/charts/*.png

The folder is written beside `out` (`.<name>.tmp`) and swapped in when the run is complete; a run that stops
(an error, Ctrl-C, a kill) leaves that folder for `--resume`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gpuetl.config import to_dict
from gpuetl.graphs.io import dataset_digest, graphs_digest
from gpuetl.lake.outputs import Input, partial_dir, replaced_dir
from gpuetl.stages import peak_host_bytes
from gpuetl.tensors import Dataset
from gpuetl.tensors.graphs import graph_dir
from gpuetl.train.config import GatConfig, XgbConfig
from gpuetl.train.data import TrainData
from gpuetl.train.definition import dataset_definition, graphs_definition
from gpuetl.train.learner import FitLog, Learner, TrainError
from gpuetl.train.metrics import DAILY, daily_metrics, summarize, to_host
from gpuetl.train.report import write_report
from gpuetl.train.rules import paired, rule_scores
from gpuetl.train.splits import Splits, check_splits, label_reach, make_splits
from gpuetl.version import __version__


@dataclasses.dataclass
class FoldResult:
    index: int
    test_year: int
    seed: int
    summary: dict[str, float]
    dates: np.ndarray  # test dates (datetime64[D])
    daily: dict[str, np.ndarray]
    fit: FitLog


def progress_bar(enabled: bool) -> Progress:
    """Per-epoch bars on stderr (rich), hidden when disabled."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=True)


class ResumeError(TrainError):
    """`--resume` of a run that cannot be continued as it is asked (another dataset, graphs or config)."""


# config.json keys that may differ when a run is continued: where it runs and where the dataset lies; and the
# definitions `gpuetl predict` compares, which the hashes imply (a run made before they were recorded resumes)
_MAY_CHANGE = frozenset({"device", "backend", "dataset", "dataset_definition", "graphs_definition"})


def run_kind(model: str) -> str:
    """The output kind of a model's run folder (its marker): a run of one model never replaces another's."""
    return f"{model}-run"


def run_inputs(cfg: GatConfig | XgbConfig, ds: Dataset) -> dict[str, Any]:
    """What a run is made from, known before any data is read: the model's config and the hashes of the dataset
    and its graphs (None without), so that `--resume` after a rebuild of either is refused; and how the dataset's
    columns (and the graphs, where the model reads them) are made, which `gpuetl predict` compares."""
    config = to_dict(cfg)
    config["run"].pop("progress")
    reads_graphs = isinstance(cfg, GatConfig) or cfg.data.inputs.graph_features
    return {"config": config, "dataset": str(ds.path.resolve()), "dataset_hash": dataset_digest(ds.path),
            "graphs_hash": graphs_digest(graph_dir(ds.path)), "gpuetl": __version__, "torch": torch.__version__,
            "dataset_definition": dataset_definition(ds),
            "graphs_definition": graphs_definition(ds) if reads_graphs else None}


def check_resume(out: Path, made_from: dict[str, Any]) -> None:
    """ResumeError unless the run to continue at `out` (a killed one beside it, else the finished one) was made
    from the same config, dataset and graphs; call it before reading the data."""
    for folder in (partial_dir(out), out):
        saved = folder / "config.json"
        if saved.is_file():
            _compare(out, json.loads(saved.read_text()), made_from)
            return


def _compare(out: Path, before: dict[str, Any], now: dict[str, Any]) -> None:
    changed = sorted(k for k in now if k not in _MAY_CHANGE and before.get(k) != now.get(k))
    if not changed:
        return
    what = {"dataset_hash": "dataset (rebuilt since)", "graphs_hash": "graphs (rebuilt since)"}
    raise ResumeError(f"the run at {out} was made from another {', '.join(what.get(k, k) for k in changed)}: "
                      "pass --overwrite instead of --resume to start afresh, or choose another --out")


def _run_config(made_from: dict[str, Any], data: TrainData, model: str) -> dict[str, Any]:
    return {"model": model, **made_from, "label": data.label,
            "heads": list(data.heads), "inputs": list(data.inputs), "context": list(data.context_columns),
            "left_out": list(data.notes), "device": str(data.device), "backend": data.backend.name}


def _prepare(out: Path, run_config: dict[str, Any], resume: bool) -> None:
    saved = out / "config.json"
    if resume and saved.is_file():
        _compare(out, json.loads(saved.read_text()), run_config)
    saved.write_text(json.dumps(run_config, indent=2))


def plan_folds(cfg: GatConfig | XgbConfig, ds: Dataset, data: TrainData) -> Splits:
    """The folds (TrainError when none fits), planned before the run folder is touched."""
    plan = make_splits(ds.dates, cfg.splits, label_reach(data.label, cfg.data.horizons))
    if not plan.folds:
        raise TrainError(f"no fold fits {ds.path} ({len(ds.dates)} dates): {'; '.join(plan.skipped)}")
    return plan


def save_plan(cfg: GatConfig | XgbConfig, ds: Dataset, plan: Splits, out: Path) -> Splits:
    """Write splits.json, and check the plan as read back from it."""
    plan.save(out / "splits.json", ds.dates)
    checked = Splits.from_json(json.loads((out / "splits.json").read_text()))
    check_splits(checked, ds.dates, max(cfg.data.horizons))
    return checked


def walk_forward(cfg: GatConfig | XgbConfig, ds: Dataset, data: TrainData, learner: Callable[[int], Learner],
                 out: Path, resume: bool = False, progress: bool = True, *, overwrite: bool = False,
                 read: Sequence[Input] = ()) -> dict[str, Any]:
    """Fit and score `learner(seed)` on every fold; write the run folder; return metrics.json's content.

    The run is written beside `out` and swapped in when it is complete (an existing run of the same model only with
    `overwrite`); a run that stops keeps what it wrote there, and `resume` continues it (or re-scores a finished
    run from its checkpoints). `out` may not be the dataset, inside or above it, or anything else in `read`."""
    first = learner(cfg.run.seed)
    planned = plan_folds(cfg, ds, data)
    made_from = run_inputs(cfg, ds)
    read = [Input(ds.path, "the dataset"), *read]
    with replaced_dir(out, run_kind(first.name), overwrite=overwrite, read=read, resume=resume,
                      resumable=True) as work:
        _prepare(work, _run_config(made_from, data, first.name), resume)
        plan = save_plan(cfg, ds, planned, work)
        metrics = _walk(cfg, ds, data, learner, first, work, resume, progress, plan)
    return metrics


def _walk(cfg: GatConfig | XgbConfig, ds: Dataset, data: TrainData, learner: Callable[[int], Learner], first: Learner,
          out: Path, resume: bool, progress: bool, plan: Splits) -> dict[str, Any]:
    results: list[FoldResult] = []
    frames: list[pd.DataFrame] = []
    scores, missing = rule_scores(ds, data, cfg.run.seed)
    rules: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in scores}  # host-ok: the rules' names
    with progress_bar(progress) as bar:
        for fold in plan.folds:
            seed = cfg.run.seed + fold.index
            model = first if fold.index == 0 else learner(seed)
            fd = data.fold(fold)
            log = model.fit(fd, out / "checkpoints" / f"fold{fold.index}.{model.checkpoint_suffix}", resume, bar)
            days = list(fold.test.days)
            pred = model.predict(fd, days)
            label, mask = data.rows(days)
            daily = to_host(daily_metrics(pred, label, mask, cfg.eval))
            for name, score in scores.items():  # the same days, codes and label
                rules[name].append(to_host(daily_metrics(score[days], label, mask, cfg.eval)))
            dates = ds.dates[fold.test.first: fold.test.last + 1]
            results.append(FoldResult(fold.index, fold.test_year, seed, summarize(daily), dates, daily, log))
            frames.append(_predictions(data, dates, fold.index, pred, label, mask))
            bar.console.print(f"fold {fold.index} (test {fold.test_year}): "
                              f"RankIC {results[-1].summary['rank_ic']:+.4f}")
    pd.concat(frames, ignore_index=True).to_parquet(out / "predictions.parquet", index=False)
    metrics = _finite(_metrics(first.name, data, plan, results, rules, missing))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_report(out, metrics)
    return metrics


def _predictions(data: TrainData, dates: np.ndarray, fold: int, pred: torch.Tensor, label: torch.Tensor,
                 mask: torch.Tensor) -> pd.DataFrame:
    """The fold's scored rows as a host frame (once per fold, for the run folder)."""
    m = mask.cpu().numpy()  # host-ok: the fold's predictions are written to predictions.parquet
    t, n = np.nonzero(m)
    return pd.DataFrame({"Date": dates[t].astype("datetime64[ms]"), "Code": data.panel.codes[n],
                         "fold": np.int16(fold),
                         "prediction": pred.cpu().numpy()[m].astype(np.float32),  # host-ok: as above
                         "label": label.cpu().numpy()[m].astype(np.float32)})  # host-ok: as above


def _metrics(name: str, data: TrainData, plan: Splits, results: list[FoldResult],
             rules: dict[str, list[dict[str, np.ndarray]]], rules_missing: list[str]) -> dict[str, Any]:
    daily = {k: np.concatenate([r.daily[k] for r in results]) for k in DAILY}
    overall = summarize(daily)
    by_rule = {rule: {k: np.concatenate([f[k] for f in folds]) for k in DAILY} for rule, folds in rules.items()}
    overall["fold_mean_rank_ic"] = float(np.mean([r.summary["rank_ic"] for r in results]))
    seconds = sum(r.fit.seconds for r in results)
    stock_days = sum(r.fit.stock_days for r in results)
    device_peak = peak_device_bytes(data)
    return {
        "model": name, "device": str(data.device), "label": data.label, "heads": list(data.heads),
        "folds": [{"fold": r.index, "test_year": r.test_year, "seed": r.seed, **r.summary, "best": r.fit.best,
                   "best_valid_rank_ic": r.fit.best_score, "train_seconds": round(r.fit.seconds, 3),
                   "resumed": r.fit.resumed, "history": r.fit.history} for r in results],
        "overall": overall,
        "rules": {rule: {**summarize(d), **paired(daily["rank_ic"], d["rank_ic"])} for rule, d in by_rule.items()},
        "rules_missing": rules_missing,
        "skipped_years": list(plan.skipped),
        "train": {"seconds": round(seconds, 3), "stock_days": stock_days,
                  "stock_days_per_s": round(stock_days / seconds, 1) if seconds > 0 else None,
                  "peak_host_bytes": peak_host_bytes(), "peak_device_bytes": device_peak},
        "daily": {"dates": [str(d) for r in results for d in r.dates],
                  **{k: v.tolist() for k, v in daily.items()},  # host-ok: NumPy arrays (metrics.to_host), for JSON
                  "fold": [r.index for r in results for _ in r.dates],
                  "rules_rank_ic": {rule: d["rank_ic"].tolist() for rule, d in by_rule.items()}},  # host-ok: NumPy
    }


def peak_device_bytes(data: TrainData) -> int | None:
    """Peak bytes of the backend's RMM pool (cuDF, CuPy and torch share it), else torch's own peak; None on the CPU."""
    stats = data.backend.memory_stats()
    if stats is not None:
        return stats["peak_bytes"]
    return int(torch.cuda.max_memory_allocated(data.device)) if data.device.type == "cuda" else None


def _finite(value: Any) -> Any:
    """Plain JSON: NaN/inf as null, NumPy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()  # host-ok: a NumPy scalar, for JSON
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
