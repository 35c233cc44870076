"""`gpuetl tune`: Optuna over a declared search space (configs/tune/*.yaml) on validation days before the test years,
resumable from its study storage, writing the best training config (gpuetl/train/tune.py)."""

from __future__ import annotations

import argparse
import importlib.util
import json
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
    local_only,
    note,
)
from gpuetl.config import ConfigError, Settings
from gpuetl.lake.outputs import Input, check_output_dir, claimed
from gpuetl.resources import config_path

TUNE_CONFIG = "configs/tune/gat.yaml"
TUNE_EXTRA = ("torch", "torch_geometric", "xgboost", "optuna")


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("tune", parents=[common],
                       help="Optuna search of a training config on validation days only (never the test years)")
    add_config_options(p, TUNE_CONFIG, "tuning", "optim.max_epochs=4")
    p.set_defaults(run=run, remote=lambda a: {"dataset": "input"},  # an s3:// dataset: gpuetl.remote
                   url_defaults=_url_defaults)
    p.add_argument("--dataset", metavar="DIR_OR_NAME",
                   help="dataset folder, or a name under settings paths.datasets (default: the training config's "
                        "data.dataset)")
    p.add_argument("--out", help="output folder (default: the tuning config's out, else <paths.data>/tune/<name>); "
                                 "a rerun continues the study there")
    p.add_argument("--trials", type=int, metavar="N",
                   help="finished trials in the study in all (default: the tuning config's trials); a rerun runs "
                        "only the missing ones")
    p.add_argument("--storage", metavar="URL",
                   help="Optuna storage URL (default: sqlite:///<out>/study.db)")
    add_output_options(p, "tuning summary", overwrite=True)


def _url_defaults(args: argparse.Namespace, settings: Settings) -> dict[str, str | None]:
    """--dataset's default (the training config's data.dataset) under paths.datasets where that is a URL."""
    if args.dataset:
        return {"dataset": dataset_url(settings, args.dataset)}
    from gpuetl.train.tune_config import load_train, load_tune_config

    tcfg = command_config(lambda path, _: load_tune_config(path), args)
    try:
        name = load_train(tcfg, list(args.config_overrides)).data.dataset
    except (ConfigError, FileNotFoundError) as err:
        raise CommandError(f"config error: {err}", 2) from None
    return {"dataset": dataset_url(settings, name)}


def run(args: argparse.Namespace, settings: Settings) -> int:
    """--config-set overrides the tuned *training* config (a trial's values go on top); --trials the count."""
    missing = [m for m in TUNE_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise CommandError(f"{', '.join(missing)} not installed: install the train extra "
                           "(pip install -e '.[train]')", 2)
    from gpuetl.train.tune_config import check_space, load_train, load_tune_config

    if args.trials is not None and args.trials < 1:
        raise CommandError(f"--trials {args.trials}: must be >= 1", 2)
    tcfg = command_config(lambda path, _: load_tune_config(path), args)
    base = list(args.config_overrides)
    try:
        cfg = load_train(tcfg, base)
        check_space(tcfg, base)  # every bound and choice is a valid value of its key: before any data is read
    except (ConfigError, FileNotFoundError) as err:
        raise CommandError(f"config error: {err}", 2) from None
    path = dataset_dir(args.dataset, cfg.data.dataset, settings, "tune")
    local_only(args.out or tcfg.out or "", "--out" if args.out else "the tuning config's out", "tune")
    out = Path(args.out or tcfg.out or Path(settings.paths.data) / "tune" / tcfg.name)
    read = [Input(path, "the dataset"), *config_inputs(args), Input(config_path(tcfg.train), "the training config")]
    check_output_dir(out, "tune", overwrite=True, read=read)  # before the work; a tune output is continued
    with claimed(out):
        summary = _tune(args, settings, tcfg, base, cfg, path, out, read)
    if args.json:
        print(json.dumps({"out": str(out), **summary}, indent=2))
        return 0
    from gpuetl.train.tune import table

    best = summary["best"]
    print(f"{tcfg.name} ({tcfg.learner}) on {path} -> {out}: {summary['ran']} trial(s) run now\n{table(summary)}")
    if best is None:
        print("no trial finished: no best.yaml")
    else:
        print(f"best: trial {best['trial']}, mean daily validation RankIC {best['value']:+.4f} "
              f"({' '.join(best['overrides'])})\ntrain it: gpuetl {'train' if tcfg.learner == 'gat' else 'baseline'} "
              f"--config {out / 'best.yaml'}")
    return 0


def _tune(args: argparse.Namespace, settings: Settings, tcfg: Any, base: list[str], cfg: Any, path: Path, out: Path,
          read: list[Input]) -> dict[str, Any]:
    """Open the dataset on the backend's device (as `gpuetl train` does) and run the study."""
    from gpuetl.commands.train import open_training_dataset, training_device
    from gpuetl.tensors import DatasetError
    from gpuetl.train.learner import TrainError
    from gpuetl.train.splits import SplitError
    from gpuetl.train.tune import TuneError, tune

    b, device = training_device(settings, cfg)
    say = None if args.no_progress else (lambda line: note("tune", line))
    try:
        ds = open_training_dataset(path, b, tcfg.learner == "gat" and cfg.model.graph, "tune")
        return tune(tcfg, base, ds, device, out, trials=args.trials, storage=args.storage, overwrite=args.overwrite,
                    read=read, say=say)
    except TuneError as err:
        raise CommandError(str(err), 2) from None
    except (DatasetError, SplitError, TrainError) as err:
        raise CommandError(str(err)) from None
