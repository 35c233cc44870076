"""`gpuetl build`: the dataset build from the raw lake, with per-stage timings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from gpuetl.config import ConfigError, Settings
from gpuetl.stages import peak_memory_text, timings_table

DEFAULT_CONFIG = "configs/dataset/default.yaml"


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("build", parents=[common], help="build the dataset (features, targets) from the raw lake")
    p.add_argument("--config", default=DEFAULT_CONFIG, metavar="YAML", help="dataset config (default: %(default)s)")
    p.add_argument("--config-set", dest="config_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a dataset-config key, e.g. --config-set start=2020-01-01 (repeatable)")
    p.add_argument("--lake", help="raw lake directory (default: settings paths.lake)")
    p.add_argument("--out", help="output directory (default: <paths.datasets>/<dataset name>)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl import backend
    from gpuetl.dataset.build import BuildError, build_dataset
    from gpuetl.dataset.config import load_dataset_config

    try:
        cfg = load_dataset_config(args.config, args.config_overrides)
    except (ConfigError, FileNotFoundError) as err:
        print(f"gpuetl build: config error: {err}", file=sys.stderr)
        return 2
    b = backend.init(settings)
    out = Path(args.out) if args.out else Path(settings.paths.datasets) / cfg.name
    try:
        result = build_dataset(b, cfg, args.lake or settings.paths.lake, out, progress=not args.no_progress)
    except BuildError as err:  # nothing was written: the dataset folder is swapped in only at the end
        print(f"gpuetl build: {err}", file=sys.stderr)
        return 1
    console = Console()
    console.print(timings_table(f"built {out} on {b.name}", result.timings, "stage"))
    peak = peak_memory_text(result.peak_device_bytes, result.peak_host_bytes)
    console.print(f"{result.rows:,} rows, {result.codes:,} codes, {result.dates:,} dates, "
                  f"{len(result.features)} features, {len(result.targets)} targets{peak}")
    return 0
