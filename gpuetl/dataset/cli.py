"""`gpuetl build`: the dataset build from the raw lake, with per-stage timings."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from gpuetl.cli import CommandError, add_config_options, command_config
from gpuetl.config import Settings
from gpuetl.stages import peak_memory_text, timings_table

DEFAULT_CONFIG = "configs/dataset/default.yaml"


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("build", parents=[common], help="build the dataset (features, targets) from the raw lake")
    add_config_options(p, DEFAULT_CONFIG, "dataset", "start=2020-01-01")
    p.add_argument("--lake", help="raw lake directory (default: settings paths.lake)")
    p.add_argument("--out", help="output directory (default: <paths.datasets>/<dataset name>)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl import backend
    from gpuetl.dataset.build import BuildError, build_dataset
    from gpuetl.dataset.config import load_dataset_config

    cfg = command_config(load_dataset_config, args)
    b = backend.init(settings)
    out = Path(args.out) if args.out else Path(settings.paths.datasets) / cfg.name
    try:
        result = build_dataset(b, cfg, args.lake or settings.paths.lake, out, progress=not args.no_progress)
    except BuildError as err:  # nothing was written: the dataset folder is swapped in only at the end
        raise CommandError(str(err)) from None
    console = Console()
    console.print(timings_table(f"built {out} on {b.name}", result.timings, "stage"))
    peak = peak_memory_text(result.peak_device_bytes, result.peak_host_bytes)
    console.print(f"{result.rows:,} rows, {result.codes:,} codes, {result.dates:,} dates, "
                  f"{len(result.features)} features, {len(result.targets)} targets{peak}")
    return 0
