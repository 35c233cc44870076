"""`gpuetl train` (the GAT, or its graph-free ablation with --config-set model.graph=false) and `gpuetl baseline`
(XGBoost): walk-forward runs on a built dataset, written to a run folder (gpuetl/train/walkforward.py)."""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpuetl.commands.common import (
    CommandError,
    add_config_options,
    add_output_options,
    command_config,
    config_inputs,
    dataset_dir,
    dataset_url,
    note,
)
from gpuetl.config import Settings
from gpuetl.lake.outputs import Input, check_output_dir, claimed, marker, output_kind, partial_dir

GAT_CONFIG = "configs/train/gat.yaml"
XGB_CONFIG = "configs/train/xgb.yaml"


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    for name, default, what, example, help_text in (
        ("train", GAT_CONFIG, "training", "model.graph=false", "walk-forward GAT training on a dataset and its graphs"),
        ("baseline", XGB_CONFIG, "baseline", "xgb.max_depth=4", "the XGBoost baseline on the same folds and metrics"),
    ):
        p = sub.add_parser(name, parents=[common], help=help_text)
        add_config_options(p, default, what, example)
        p.add_argument("--dataset", metavar="DIR_OR_NAME",
                       help="dataset folder, or a name under settings paths.datasets "
                            "(default: the config's data.dataset)")
        p.add_argument("--out", help="run folder (default: the config's run.out, else <paths.data>/runs/<name>)")
        p.add_argument("--resume", action="store_true",
                       help="continue the run at --out: one that stopped, or a finished one (re-scored from its "
                            "checkpoints); refused when the dataset, its graphs or the config changed")
        add_output_options(p, "run summary", overwrite=True)
        p.set_defaults(run=run, model=name, remote=_remote, url_defaults=_url_defaults)  # s3: gpuetl.remote


def _remote(args: argparse.Namespace) -> dict[str, str]:
    """URL flags (gpuetl.remote): the dataset read, the run folder written (published when the run ends well; a
    stopped run's partial folder stays in the local mirror, where --resume finds it)."""
    return {"dataset": "input", "out": "output:gat-run" if args.model == "train" else "output:xgb-run"}


def _url_defaults(args: argparse.Namespace, settings: Settings) -> dict[str, str | None]:
    """--dataset's default (the config's data.dataset) under paths.datasets where that setting is a URL."""
    from gpuetl.train.config import load_gat_config, load_xgb_config

    if args.dataset:
        return {"dataset": dataset_url(settings, args.dataset)}
    cfg = command_config(load_gat_config if args.model == "train" else load_xgb_config, args)
    return {"dataset": dataset_url(settings, cfg.data.dataset)}


TRAIN_EXTRA = ("torch", "torch_geometric", "xgboost", "matplotlib")


def run(args: argparse.Namespace, settings: Settings) -> int:
    missing = [m for m in TRAIN_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise CommandError(f"{', '.join(missing)} not installed: install the train extra "
                           "(pip install -e '.[train]')", 2)
    from gpuetl.train.config import load_gat_config, load_xgb_config

    if args.resume and args.overwrite:
        raise CommandError("--resume continues the run at --out and --overwrite replaces it: pass one of them", 2)
    cfg = command_config(load_gat_config if args.model == "train" else load_xgb_config, args)
    path = dataset_dir(args.dataset, cfg.data.dataset, settings, args.model)
    out = Path(args.out or cfg.run.out or Path(settings.paths.data) / "runs" / cfg.name)
    kind = "gat-run" if args.model == "train" else "xgb-run"
    read = [Input(path, "the dataset"), *config_inputs(args)]
    check_output_dir(out, kind, overwrite=args.overwrite or args.resume, read=read)  # before the work
    if args.resume and kind not in (output_kind(out), (marker(partial_dir(out)) or {}).get("kind")):
        raise CommandError(f"--resume: no {kind} at {out} to continue: drop --resume to start one", 2)
    with claimed(out):  # one writer per run folder, for the whole command
        metrics = _train(args, settings, cfg, path, out, read)
    if args.json:
        print(json.dumps({"out": str(out), "dataset": str(path), **{k: metrics[k] for k in (
            "model", "label", "heads", "overall", "seeds", "rules", "rules_missing", "train", "skipped_years")},
            "folds": [{**f, "members": [{k: v for k, v in m.items() if k != "history"} for m in f["members"]]}
                      for f in metrics["folds"]]}, indent=2))
        return 0
    from gpuetl.train.report import fold_table, seed_table
    from gpuetl.train.rules import rules_table

    t = metrics["train"]
    seeds = f"\nseeds (each alone, and their ensemble):\n{seed_table(metrics)}\n" \
        if len(metrics["seeds"]["each"]) > 1 else ""
    print(f"{metrics['model']} on {path} -> {out} ({metrics['device']})\n{fold_table(metrics)}\n{seeds}\n"
          f"beside simple rules (the same days, codes and label):\n{rules_table(metrics)}\n"
          f"training {t['seconds']:.1f} s, {t['stock_days_per_s'] or 0:,.0f} stock-days/s; report: {out / 'report.md'}")
    return 0


def training_device(settings: Settings, cfg: Any) -> tuple[Any, Any]:
    """The backend and the torch device a training config runs on (`run.device`, `run.threads`); exit 2 for a
    CUDA device torch does not see."""
    from gpuetl import backend
    from gpuetl.tensors.panel import torch_device

    b = backend.init(settings)
    import torch

    device = torch_device(b) if cfg.run.device == "auto" else torch.device(cfg.run.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CommandError("run.device is cuda but torch sees no CUDA device", 2)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    return b, device


def open_training_dataset(path: Path, b: Any, needs_graphs: bool, verb: str) -> Any:
    """The dataset, its graphs checked fresh before any work (stale ones are refused); a GAT that needs graphs
    and finds none is told how to make them or to go without."""
    from gpuetl.tensors import open_dataset

    ds = open_dataset(path, b)
    ds.graphs_metadata  # noqa: B018  (stale graphs are refused before any work)
    if needs_graphs and not ds.has_graphs:
        raise CommandError(f"no graphs at {path / 'graphs'} for the GAT: run `gpuetl graph --dataset {path}`, or "
                           f"{verb} the graph-free model with --config-set model.graph=false")
    return ds


def _train(args: argparse.Namespace, settings: Settings, cfg: Any, path: Path, out: Path,
           read: list[Input]) -> dict[str, Any]:
    """Open the dataset, check its graphs and what a resumed run was made from, load the data and walk forward."""
    from gpuetl.tensors import DatasetError
    from gpuetl.train.data import load_train_data
    from gpuetl.train.learner import Learner, TrainError
    from gpuetl.train.splits import SplitError
    from gpuetl.train.walkforward import ResumeError, check_resume, run_inputs, walk_forward

    if cfg.run.progress and not args.no_progress:  # the first line within seconds; the rest once the data is read
        note(args.model, f"{cfg.name} on {path}: loading the dataset ({len(cfg.run.seeds)} seed(s) per fold)")
    gat = args.model == "train"
    b, device = training_device(settings, cfg)
    try:
        ds = open_training_dataset(path, b, gat and cfg.model.graph, "train")
        if args.resume:
            check_resume(out, run_inputs(cfg, ds))
        data = load_train_data(ds, cfg.data, device, cfg.model if gat else None)
        for line in data.notes:  # what the dataset lacks the data for, left out
            note(args.model, line)
        learner: Callable[[int], Learner]
        if gat:
            from gpuetl.train.loop import GATLearner

            learner = lambda seed: GATLearner(cfg, data, seed)  # noqa: E731
        else:
            from gpuetl.train.xgb import XGBLearner

            learner = lambda seed: XGBLearner(cfg, seed)  # noqa: E731
        return walk_forward(cfg, ds, data, learner, out, args.resume, cfg.run.progress and not args.no_progress,
                            overwrite=args.overwrite, read=read)
    except ResumeError as err:
        raise CommandError(str(err), 2) from None
    except (DatasetError, SplitError, TrainError) as err:
        raise CommandError(str(err)) from None
