"""`gpuetl predict`: rank the codes of a dataset's latest day (or --date) with a finished run's model, written as a
`predictions` output (gpuetl/train/predict.py says what scores and what is checked)."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gpuetl.commands.common import CommandError, add_output_options, config_inputs, dataset_dir, dataset_url
from gpuetl.commands.train import TRAIN_EXTRA
from gpuetl.config import Settings
from gpuetl.lake.outputs import Input, check_output_dir

SHOWN = 10  # rows of the ranking printed (all of them are in the file)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("predict", parents=[common],
                       help="rank a dataset's codes on its latest day (or --date) with a trained run's model")
    p.add_argument("--run", dest="run_path", required=True, metavar="DIR_OR_NAME",
                   help="a finished run folder of `gpuetl train` or `gpuetl baseline`, or a name under "
                        "<paths.data>/runs (e.g. gat); its last fold's model scores")
    p.add_argument("--dataset", metavar="DIR_OR_NAME",
                   help="dataset folder, or a name under settings paths.datasets, made with the run's dataset "
                        "config (default: the dataset the run was trained on)")
    p.add_argument("--date", metavar="YYYY-MM-DD", help="the day to score (default: the dataset's latest day)")
    p.add_argument("--out", metavar="DIR",
                   help="output folder; the ranking is predictions-<date>.<format> inside it (default: "
                        "<paths.data>/predictions/<run name>/<date>)")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet",
                   help="the ranking file's format (default: %(default)s)")
    add_output_options(p, "summary and the top of the ranking", overwrite=True)
    p.set_defaults(run=run, remote=lambda a: {"run_path": "input", "dataset": "input",  # s3://: gpuetl.remote
                                              "out": "output:predictions"},
                   url_defaults=lambda a, s: {"dataset": dataset_url(s, a.dataset)})  # paths.datasets as a URL


def run_dir(arg: str, settings: Settings) -> Path:
    """--run as a folder, else a name under <paths.data>/runs."""
    path = Path(arg)
    return path if path.exists() or path.is_absolute() or len(path.parts) > 1 \
        else Path(settings.paths.data) / "runs" / arg


def run(args: argparse.Namespace, settings: Settings) -> int:
    missing = [m for m in TRAIN_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise CommandError(f"{', '.join(missing)} not installed: install the train extra "
                           "(pip install -e '.[train]')", 2)
    from gpuetl import backend
    from gpuetl.tensors import DatasetError, open_dataset
    from gpuetl.train.learner import TrainError
    from gpuetl.train.predict import KIND, PredictError, open_run, plan_prediction, run_prediction

    try:
        trained = open_run(run_dir(args.run_path, settings))
        path = dataset_dir(args.dataset, str(trained.recorded["dataset"]), settings, "predict")
        configs = config_inputs(args)
        read = [Input(trained.path, "the run"), Input(path, "the dataset"), *configs]
        if args.out:
            check_output_dir(args.out, KIND, overwrite=args.overwrite, read=read)  # before the work
        job = plan_prediction(trained, open_dataset(path, backend.init(settings)), args.date)
        out = Path(args.out) if args.out else Path(settings.paths.data) / "predictions" / trained.path.name / job.date
        if out.suffix in (".parquet", ".csv"):
            raise CommandError(f"--out {out} names the folder the ranking goes in (predictions-<date>.<format> inside "
                               "it), not the file: pass a folder", 2)
        check_output_dir(out, KIND, overwrite=args.overwrite, read=read)
        result = run_prediction(job, out, args.format, overwrite=args.overwrite, read=configs)
    except PredictError as err:
        raise CommandError(str(err), 2) from None
    except (DatasetError, TrainError) as err:
        raise CommandError(str(err)) from None
    s = result.summary
    top = result.ranking.head(SHOWN)
    if args.json:
        print(json.dumps({"out": str(result.out), "file": str(result.file), **{k: s[k] for k in (
            "run", "model", "dataset", "date", "codes", "left_out_short_history", "out_of_sample", "format")},
            "top": [{"rank": int(r.rank), "Code": r.Code, "score": float(r.score)} for r in top.itertuples()]},
            indent=2))
        return 0
    table = Table(title=f"{s['model']} run {trained.path.name}, {s['date']}"
                        f"{'' if s['out_of_sample'] else ' (a day the model was fitted or validated on)'}")
    for name in ("rank", "Code", "score"):
        table.add_column(name, justify="left" if name == "Code" else "right")
    for r in top.itertuples():
        table.add_row(str(r.rank), str(r.Code), f"{r.score:+.6f}")
    console = Console()
    console.print(table)
    console.print(f"{s['codes']:,} codes of {path} ranked by {trained.path} -> {result.file}"
                  + (f" ({s['left_out_short_history']} with a shorter history left out)"
                     if s["left_out_short_history"] else ""))
    return 0
