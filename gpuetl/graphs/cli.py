"""`gpuetl graph`: the daily correlation graphs of an existing dataset (edges + per-(Code, Date) features)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from gpuetl.cli import CommandError, add_config_options, command_config
from gpuetl.config import Settings
from gpuetl.stages import peak_memory_text, timings_table

DEFAULT_CONFIG = "configs/graph/default.yaml"


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("graph", parents=[common],
                       help="build the daily correlation graphs and graph features of an existing dataset")
    p.add_argument("--dataset", default="default", metavar="DIR_OR_NAME",
                   help="dataset directory, or a name under settings paths.datasets (default: %(default)s)")
    add_config_options(p, DEFAULT_CONFIG, "graph", "knn.k=10")
    p.add_argument("--lake", help="raw lake directory, for the returns (default: settings paths.lake)")
    p.add_argument("--out", help="output directory (default: <dataset>/graphs)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl import backend
    from gpuetl.graphs.config import load_graph_config
    from gpuetl.graphs.dataset import GraphInputError, graph_dataset

    cfg = command_config(load_graph_config, args)
    b = backend.init(settings)
    dataset = Path(args.dataset)
    if not dataset.is_dir():
        dataset = Path(settings.paths.datasets) / args.dataset
    try:
        result = graph_dataset(b, cfg, dataset, args.lake or settings.paths.lake, args.out,
                               progress=not args.no_progress)
    except GraphInputError as err:
        raise CommandError(str(err)) from None
    console = Console()
    console.print(timings_table(f"graphs of {dataset} -> {result.out} on {b.name}", result.timings, "step"))
    peak = peak_memory_text(result.peak_device_bytes, result.peak_host_bytes)
    console.print(f"{result.graph_days:,} graph days, {result.codes:,} codes, {result.edges:,} edges, "
                  f"{result.batch_days} days per batch, {len(result.features)} features on {result.rows:,} rows{peak}")
    return 0
