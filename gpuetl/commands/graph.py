"""`gpuetl graph`: the daily correlation graphs of an existing dataset (edges + per-(Code, Date) features),
with per-step timings (stdout; JSON with --json)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from gpuetl.commands.common import (
    CommandError,
    add_config_options,
    add_output_options,
    command_config,
    config_inputs,
    dataset_dir,
    dataset_url,
    lake_dir,
    lake_url,
    note,
    show_progress,
)
from gpuetl.config import Settings
from gpuetl.stages import peak_memory_text, timings_table

DEFAULT_CONFIG = "configs/graph/default.yaml"
DEFAULT_DATASET = "default"


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("graph", parents=[common],
                       help="build the daily correlation graphs and graph features of an existing dataset")
    p.add_argument("--dataset", metavar="DIR_OR_NAME",
                   help=f"dataset directory, or a name under settings paths.datasets (default: {DEFAULT_DATASET}, "
                        "or the demo dataset after `make demo`)")
    add_config_options(p, DEFAULT_CONFIG, "graph", "knn.k=10")
    p.add_argument("--lake", help="raw lake directory, for the returns (default: paths.lake, or the demo lake "
                                  "after `make demo`)")
    p.add_argument("--out", help="output directory (default: <dataset>/graphs)")
    add_output_options(p, "graph summary", overwrite=True, cluster=True)
    p.set_defaults(run=run, remote=_remote, url_defaults=lambda a, s: {
        "lake": lake_url(a, s), "dataset": dataset_url(s, a.dataset or DEFAULT_DATASET)})  # paths.* URLs


def _remote(args: argparse.Namespace) -> dict[str, str]:
    """URL flags (gpuetl.remote): the graphs go into the dataset's tree unless --out names their own."""
    if args.out:
        return {"lake": "input", "dataset": "input", "out": "output:graphs"}
    return {"lake": "input", "dataset": "output:dataset"}


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl import backend
    from gpuetl.cluster import ClusterError, open_runner
    from gpuetl.graphs.config import load_graph_config
    from gpuetl.graphs.dataset import GraphInputError, graph_dataset
    from gpuetl.graphs.io import StaleGraphsError, check_graphs
    from gpuetl.lake.manifest import ManifestError
    from gpuetl.lake.outputs import Input, check_output_dir, claimed

    cfg = command_config(load_graph_config, args)
    lake = lake_dir(args.lake, settings, "graph")
    dataset = dataset_dir(args.dataset, DEFAULT_DATASET, settings, "graph", fallback=True)
    out = Path(args.out) if args.out else dataset / "graphs"
    read = [Input(dataset, "the dataset", (dataset / "graphs",)), Input(lake, "the lake"), *config_inputs(args)]
    check_output_dir(out, "graphs", overwrite=args.overwrite, read=read)  # before the work: OutputError is exit 2
    if (out / "graphs.json").exists():
        try:
            check_graphs(dataset, out)
        except StaleGraphsError:
            note("graph", f"replacing the stale graphs at {out} (made from an earlier build of {dataset})")
    with claimed(out):  # one writer per graphs folder, for the whole command
        b = backend.init(settings)
        try:
            with open_runner(args.cluster, settings, b, show_progress(args), getattr(args, "shared", None)) as runner:
                result = graph_dataset(b, cfg, dataset, lake, out, progress=show_progress(args),
                                       overwrite=args.overwrite, runner=runner, read=read)
        except (GraphInputError, ClusterError, ManifestError) as err:
            raise CommandError(str(err)) from None
    if args.json:
        print(json.dumps({"dataset": str(dataset), "out": str(result.out), "lake": str(lake), "backend": b.name,
                          "graph_days": result.graph_days, "codes": result.codes, "edges": result.edges,
                          "batch_days": result.batch_days, "features": list(result.features), "rows": result.rows,
                          "timings_s": result.timings, "peak_device_bytes": result.peak_device_bytes,
                          "peak_host_bytes": result.peak_host_bytes}, indent=2))
        return 0
    console = Console()
    console.print(timings_table(f"graphs of {dataset} -> {result.out} on {b.name}", result.timings, "step"))
    peak = peak_memory_text(result.peak_device_bytes, result.peak_host_bytes)
    console.print(f"{result.graph_days:,} graph days, {result.codes:,} codes, {result.edges:,} edges, "
                  f"{result.batch_days} days per batch, {len(result.features)} features on {result.rows:,} rows{peak}")
    return 0
