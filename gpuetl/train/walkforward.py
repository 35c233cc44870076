"""A walk-forward run: plan and check the folds, fit and score a learner fold by fold, write the run folder.

    <out>/config.json        the resolved config, dataset (hashes, definition), label, heads, inputs, seeds, device,
                             versions
    <out>/splits.json        the folds (`Splits`, checked before any fit)
    <out>/checkpoints/       fold<k>-seed<s>.pt (GAT: every epoch) or .ubj + .json (XGBoost), one per seed of
                             run.seeds (gpuetl/train/ensemble.py); --resume reuses them; the last fold's are the
                             models `gpuetl predict` scores with (gpuetl/train/predict.py)
    <out>/predictions.parquet  Date, Code, fold, prediction, label: every scored test row (the seeds' ensemble);
                             prediction_<head> and <head> for every other head (GAT) and its target
    <out>/edges.parquet      Date, fold, relation, edges: the graph each fold learnt over, per relation and day
    <out>/metrics.json       per fold and overall summaries (and per horizon: each head against its own target),
                             each seed's and their mean and std, the simple rules
                             beside them (gpuetl/train/rules.py), daily series, training curves, edges per
                             relation, throughput, memory
    <out>/report.md, <out>/charts/*.png, <out>/tensorboard/ (event files; and MLflow: gpuetl/train/tracking.py)

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
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from gpuetl.config import to_dict
from gpuetl.graphs.io import dataset_digest, graphs_digest
from gpuetl.lake.outputs import Input, partial_dir, replaced_dir
from gpuetl.stages import peak_host_bytes
from gpuetl.tensors import Dataset
from gpuetl.tensors.graphs import graph_dir
from gpuetl.train.config import GatConfig, XgbConfig
from gpuetl.train.data import FoldData, TrainData
from gpuetl.train.definition import dataset_definition, graphs_definition
from gpuetl.train.ensemble import checkpoint, combine, member_seed
from gpuetl.train.eta import Eta
from gpuetl.train.learner import FitLog, Learner, MultiHead, TrainError
from gpuetl.train.metrics import DAILY, daily_metrics, summarize, to_host
from gpuetl.train.report import write_report
from gpuetl.train.rules import paired, rule_scores
from gpuetl.train.splits import Fold, Splits, check_splits, label_reach, make_splits
from gpuetl.train.tracking import Tracker
from gpuetl.version import __version__


@dataclasses.dataclass
class Member:
    """One model of a fold's ensemble: the seed run.seeds names, the seed it was fitted with, its fit, its test days."""

    seed: int
    fit_seed: int
    fit: FitLog
    daily: dict[str, np.ndarray]


@dataclasses.dataclass
class FoldResult:
    index: int
    test_year: int
    summary: dict[str, float]  # of the ensemble (one member: of that model)
    dates: np.ndarray  # test dates (datetime64[D])
    daily: dict[str, np.ndarray]
    members: list[Member]
    edges: dict[str, dict[str, float]]  # per relation: edges per day over the fold's training and test days
    horizons: dict[str, dict[str, np.ndarray]]  # per head target: the daily metrics of that head's scores


def progress_bar(enabled: bool) -> Progress:
    """Per-epoch bars on stderr (rich), hidden when disabled."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled, transient=True)


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
    config.pop("tracking")  # where copies of the results go: a resumed run may send them elsewhere
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
    first = learner(member_seed(cfg.run.seeds[0], 0))
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
    edges: list[pd.DataFrame] = []
    scores, missing = rule_scores(ds, data, cfg.run.seeds[0])
    rules: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in scores}  # host-ok: the rules' names
    seeds = cfg.run.seeds
    weights = {f.index: fit_weight(cfg, data, f) for f in plan.folds}
    eta = Eta([weights[f.index] for f in plan.folds for _ in seeds])
    chosen = "trees" if first.name == "xgb" else "epochs"
    config = json.loads((out / "config.json").read_text())
    with progress_bar(progress) as bar, Tracker(cfg.tracking, out, first.name, config) as tracker:
        for fold in plan.folds:
            fd = data.fold(fold)
            days = list(fold.test.days)
            label, mask = data.rows(days)
            preds, members = [], []
            others = [h for h in data.heads if h != data.label]  # the other heads' names
            by_head: dict[str, list[Any]] = {h: [] for h in others}  # their scores per member
            for i, seed in enumerate(seeds):
                fit_seed = member_seed(seed, fold.index)
                model = first if fold.index == 0 and i == 0 else learner(fit_seed)
                ckpt = checkpoint(out / "checkpoints", fold.index, seed, model.checkpoint_suffix)
                log = model.fit(fd, ckpt, resume, bar)
                preds.append(model.predict(fd, days))
                if others and isinstance(model, MultiHead):
                    every = model.predict_heads(fd, days)
                    for h in others:
                        by_head[h].append(every[..., data.heads.index(h)])
                member_daily = to_host(daily_metrics(preds[-1], label, mask, cfg.eval)) if len(seeds) > 1 else {}
                members.append(Member(seed, fit_seed, log, member_daily))
                tracker.member(fold.index, seed, log)
                eta.advance(weights[fold.index])
                bar.console.print(f"fold {fold.index} (test {fold.test_year}), seed {seed}: {log.best} {chosen}, "
                                  f"valid RankIC {log.best_score:+.4f}; {eta.line()}")
            pred = combine(preds, mask)
            daily = to_host(daily_metrics(pred, label, mask, cfg.eval))
            for m in members:
                m.daily = m.daily or daily  # one member: the ensemble is that model
            for name, score in scores.items():  # the same days, codes and label
                rules[name].append(to_host(daily_metrics(score[days], label, mask, cfg.eval)))
            horizons, head_rows = {data.label: daily}, {}
            for h, head_preds in by_head.items():
                if head_preds:
                    target, _ = data.rows(days, h)
                    head_rows[h] = (combine(head_preds, mask), target)
                    horizons[h] = to_host(daily_metrics(head_rows[h][0], target, mask, cfg.eval))
            dates = ds.dates[fold.test.first: fold.test.last + 1]
            counts = edge_counts(fd, ds, fold)
            results.append(FoldResult(fold.index, fold.test_year, summarize(daily), dates, daily, members,
                                      _edge_summary(counts), horizons))
            for rel, e in results[-1].edges.items():
                if e["max"] == 0:  # said, not hidden: a relation the data gave no edge adds nothing
                    bar.console.print(f"fold {fold.index}: the {rel} relation has no edges on any day (it adds "
                                      "nothing; edges.parquet)")
            frames.append(_predictions(data, dates, fold.index, pred, label, mask, head_rows))
            edges.append(counts)
            tracker.fold(fold.index, results[-1].summary)
            bar.console.print(f"fold {fold.index} (test {fold.test_year}): "
                              f"RankIC {results[-1].summary['rank_ic']:+.4f}"
                              + (f" (the ensemble of {len(seeds)} seeds)" if len(seeds) > 1 else ""))
        pd.concat(frames, ignore_index=True).to_parquet(out / "predictions.parquet", index=False)
        if any(len(e) for e in edges):
            pd.concat(edges, ignore_index=True).to_parquet(out / "edges.parquet", index=False)
        metrics = finite_json(_metrics(first.name, data, plan, results, rules, missing))
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        write_report(out, metrics)
        tracker.finish(out, metrics)
    return metrics


def fit_weight(cfg: GatConfig | XgbConfig, data: TrainData, fold: Fold) -> float:
    """What a fit of `fold` costs, relatively: the stock-days of its training period (of one epoch's draw when
    `optim.days_per_epoch` caps the days), for the run's time estimate."""
    counts = data.label_counts[fold.train.first: fold.train.last + 1]
    per_epoch = cfg.optim.days_per_epoch if isinstance(cfg, GatConfig) else 0
    if per_epoch and per_epoch < len(counts):
        return float(counts.mean() * per_epoch)
    return float(counts.sum()) or 1.0


def edge_counts(fd: FoldData, ds: Dataset, fold: Fold) -> pd.DataFrame:
    """Date, fold, relation, edges: the fold's graph per relation on every day from its first training day to its
    last test day (no graphs: no rows)."""
    graphs = fd.graphs
    if graphs is None:
        return pd.DataFrame({"Date": [], "fold": [], "relation": [], "edges": []})
    span = slice(fold.train.first, fold.test.last + 1)
    dates = ds.dates[span].astype("datetime64[ms]")
    per = {name: c[span].cpu().numpy() for name, c in graphs.edge_counts().items()}  # host-ok: D counts, per fold
    return pd.concat([pd.DataFrame({"Date": dates, "fold": np.int16(fold.index), "relation": _RELATION.get(n, n),
                                    "edges": v.astype(np.int64)}) for n, v in per.items()], ignore_index=True)


_RELATION = {"weight": "correlation"}  # the correlation graph's attribute column, by what it is


def _edge_summary(counts: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per relation: mean, min and max edges per day, and the days without an edge."""
    return {str(rel): {"mean": float(g["edges"].mean()), "min": int(g["edges"].min()), "max": int(g["edges"].max()),
                       "days_without": int((g["edges"] == 0).sum())}
            for rel, g in counts.groupby("relation", sort=False)}


def _predictions(data: TrainData, dates: np.ndarray, fold: int, pred: torch.Tensor, label: torch.Tensor,
                 mask: torch.Tensor, heads: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> pd.DataFrame:
    """The fold's scored rows as a host frame (once per fold, for the run folder); `heads`: the other heads'
    (scores, target), as prediction_<head> and <head> columns."""
    m = mask.cpu().numpy()  # host-ok: the fold's predictions are written to predictions.parquet
    t, n = np.nonzero(m)
    frame = pd.DataFrame({"Date": dates[t].astype("datetime64[ms]"), "Code": data.panel.codes[n],
                          "fold": np.int16(fold),
                          "prediction": pred.cpu().numpy()[m].astype(np.float32),  # host-ok: as above
                          "label": label.cpu().numpy()[m].astype(np.float32)})  # host-ok: as above
    for head, (scores, target) in heads.items():
        frame[f"prediction_{head}"] = scores.cpu().numpy()[m].astype(np.float32)  # host-ok: as above
        frame[head] = target.cpu().numpy()[m].astype(np.float32)  # host-ok: as above
    return frame


def _metrics(name: str, data: TrainData, plan: Splits, results: list[FoldResult],
             rules: dict[str, list[dict[str, np.ndarray]]], rules_missing: list[str]) -> dict[str, Any]:
    daily = {k: np.concatenate([r.daily[k] for r in results]) for k in DAILY}
    overall = summarize(daily)
    by_rule = {rule: {k: np.concatenate([f[k] for f in folds]) for k in DAILY} for rule, folds in rules.items()}
    fits = [m.fit for r in results for m in r.members]
    seconds = sum(f.seconds for f in fits)
    stock_days = sum(f.stock_days for f in fits)
    device_peak = peak_device_bytes(data)
    return {
        "model": name, "device": str(data.device), "label": data.label, "heads": list(data.heads),
        "folds": [{"fold": r.index, "test_year": r.test_year, **r.summary, "edges": r.edges,
                   "members": [{"seed": m.seed, "fit_seed": m.fit_seed, "best": m.fit.best,
                                "best_valid_rank_ic": m.fit.best_score, "rank_ic": summarize(m.daily)["rank_ic"],
                                "train_seconds": round(m.fit.seconds, 3), "resumed": m.fit.resumed,
                                "history": m.fit.history} for m in r.members]} for r in results],
        "overall": overall,
        "horizons": {h: summarize({k: np.concatenate([r.horizons[h][k] for r in results]) for k in DAILY})
                     for h in data.heads if h in results[0].horizons},
        "seeds": _seeds(results),
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


SEED_KEYS = ("rank_ic", "rank_ic_t", "ic", "jpx_score", "long_short_cum")


def _seeds(results: list[FoldResult]) -> dict[str, Any]:
    """Each seed's model scored alone over all test days, and the mean and std (ddof 1) over seeds: how much of a
    result is the seed. The ensemble's own scores are `overall`."""
    each = []
    for i, seed in enumerate(m.seed for m in results[0].members):
        daily = {k: np.concatenate([r.members[i].daily[k] for r in results]) for k in DAILY}
        each.append({"seed": seed, **summarize(daily)})
    values = {k: np.array([e[k] for e in each], dtype=float) for k in SEED_KEYS}
    return {"each": each, "mean": {k: float(np.nanmean(v)) for k, v in values.items()},
            "std": {k: float(np.nanstd(v, ddof=1)) if len(v) > 1 else None for k, v in values.items()}}


def peak_device_bytes(data: TrainData) -> int | None:
    """Peak bytes of the backend's RMM pool (cuDF, CuPy and torch share it), else torch's own peak; None on the CPU."""
    stats = data.backend.memory_stats()
    if stats is not None:
        return stats["peak_bytes"]
    return int(torch.cuda.max_memory_allocated(data.device)) if data.device.type == "cuda" else None


def finite_json(value: Any) -> Any:
    """Plain JSON: NaN/inf as null, NumPy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()  # host-ok: a NumPy scalar, for JSON
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
