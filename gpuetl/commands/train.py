"""`gpuetl train` (the GAT, or its graph-free ablation with --config-set model.graph=false) and `gpuetl baseline`
(XGBoost): walk-forward runs on a built dataset, written to a run folder (gpuetl/train/walkforward.py)."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from pathlib import Path

from gpuetl.commands.common import CommandError, add_config_options, command_config
from gpuetl.config import Settings

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
                       help="dataset folder, or a name under settings paths.datasets (default: the config's data.dataset)")
        p.add_argument("--out", help="run folder (default: the config's run.out, else <paths.data>/runs/<name>)")
        p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoints")
        p.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
        p.set_defaults(run=run, model=name)


TRAIN_EXTRA = ("torch", "torch_geometric", "xgboost", "matplotlib")


def run(args: argparse.Namespace, settings: Settings) -> int:
    missing = [m for m in TRAIN_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise CommandError(f"{', '.join(missing)} not installed: install the train extra (pip install -e '.[train]')", 2)
    from gpuetl import backend
    from gpuetl.tensors import DatasetError, open_dataset
    from gpuetl.tensors.panel import torch_device
    from gpuetl.train.config import load_gat_config, load_xgb_config
    from gpuetl.train.data import load_train_data
    from gpuetl.train.learner import Learner, TrainError
    from gpuetl.train.report import fold_table
    from gpuetl.train.splits import SplitError
    from gpuetl.train.walkforward import walk_forward

    cfg = command_config(load_gat_config if args.model == "train" else load_xgb_config, args)
    b = backend.init(settings)
    name = args.dataset or cfg.data.dataset
    path = Path(name) if Path(name).is_dir() else Path(settings.paths.datasets) / name
    out = Path(args.out or cfg.run.out or Path(settings.paths.data) / "runs" / cfg.name)
    import torch

    device = torch_device(b) if cfg.run.device == "auto" else torch.device(cfg.run.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CommandError("run.device is cuda but torch sees no CUDA device", 2)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    try:
        ds = open_dataset(path, b)
        gat = args.model == "train"
        data = load_train_data(ds, cfg.data, device, cfg.model if gat else None)
        learner: Callable[[int], Learner]
        if gat:
            from gpuetl.train.loop import GATLearner

            learner = lambda seed: GATLearner(cfg, data, seed)  # noqa: E731
        else:
            from gpuetl.train.xgb import XGBLearner

            learner = lambda seed: XGBLearner(cfg, seed)  # noqa: E731
        metrics = walk_forward(cfg, ds, data, learner, out, args.resume, cfg.run.progress and not args.no_progress)
    except (DatasetError, SplitError, TrainError) as err:
        raise CommandError(str(err)) from None
    t = metrics["train"]
    print(f"{metrics['model']} on {path} -> {out} ({data.device})\n{fold_table(metrics)}\n"
          f"training {t['seconds']:.1f} s, {t['stock_days_per_s'] or 0:,.0f} stock-days/s; report: {out / 'report.md'}")
    return 0
