"""`gpuetl graph`: the daily correlation graphs of an existing dataset (edges + per-(Code, Date) features),
with per-step timings (stdout; JSON with --json)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from gpuetl.commands.common import (
    DEMO_DATASET,
    CommandError,
    add_config_options,
    add_output_options,
    command_config,
    lake_dir,
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
    p.set_defaults(run=run)


def dataset_dir(arg: str | None, settings: Settings) -> Path:
    """--dataset as a folder or a name under paths.datasets; without it the default dataset, or the demo one
    when only that exists (after `make demo`, said on stderr). A missing dataset is a CommandError that says
    which datasets exist and which flag to pass."""
    root = Path(settings.paths.datasets)
    if arg and Path(arg).is_dir():
        return Path(arg)
    dataset = root / (arg or DEFAULT_DATASET)
    if not arg and not dataset.is_dir() and (root / DEMO_DATASET).is_dir():
        note("graph", f"no dataset at {dataset}; using the demo dataset {root / DEMO_DATASET} "
                      "(pass --dataset to choose another)")
        return root / DEMO_DATASET
    if not dataset.is_dir():
        found = sorted(d.name for d in root.iterdir() if (d / "metadata.json").exists()) if root.is_dir() else []
        have = f"; datasets in {root}: {', '.join(found)} (pass --dataset NAME)" if found else ""
        raise CommandError(f"no dataset at {dataset}: build it first with `gpuetl build`{have}", 1)
    return dataset


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl import backend
    from gpuetl.cluster import ClusterError, open_runner
    from gpuetl.graphs.config import load_graph_config
    from gpuetl.graphs.dataset import GraphInputError, graph_dataset
    from gpuetl.graphs.io import StaleGraphsError, check_graphs
    from gpuetl.lake.atomic import check_output_dir

    cfg = command_config(load_graph_config, args)
    dataset = dataset_dir(args.dataset, settings)
    lake = lake_dir(args.lake, settings, "graph")
    out = Path(args.out) if args.out else dataset / "graphs"
    check_output_dir(out, "graphs", overwrite=args.overwrite)  # before the work: OutputError is exit 2
    if (out / "graphs.json").exists():
        try:
            check_graphs(dataset, out)
        except StaleGraphsError:
            note("graph", f"replacing the stale graphs at {out} (made from an earlier build of {dataset})")
    b = backend.init(settings)
    try:
        with open_runner(args.cluster, settings, b, show_progress(args)) as runner:
            result = graph_dataset(b, cfg, dataset, lake, out, progress=show_progress(args), overwrite=args.overwrite,
                                   runner=runner)
    except (GraphInputError, ClusterError) as err:
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
