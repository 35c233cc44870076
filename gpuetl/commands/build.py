"""`gpuetl build`: the dataset build from the raw lake, with per-stage timings (stdout; JSON with --json)."""

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
    config_inputs,
    dataset_url,
    is_demo_lake,
    lake_dir,
    lake_url,
    note,
    show_progress,
)
from gpuetl.config import Settings
from gpuetl.stages import peak_memory_text, timings_table

DEFAULT_CONFIG = "configs/dataset/default.yaml"


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("build", parents=[common], help="build the dataset (features, targets) from the raw lake")
    add_config_options(p, DEFAULT_CONFIG, "dataset", "start=2020-01-01")
    p.add_argument("--lake", help="raw lake directory (default: paths.lake, or the demo lake after `make demo`)")
    p.add_argument("--out", help="output directory (default: <paths.datasets>/<dataset name>; "
                                 "<paths.datasets>/demo from the demo lake)")
    add_output_options(p, "build summary", overwrite=True, cluster=True)
    p.set_defaults(run=run, remote=lambda a: {"lake": "input", "out": "output:dataset"},  # URLs: gpuetl.remote
                   url_defaults=_url_defaults)


def _url_defaults(args: argparse.Namespace, settings: Settings) -> dict[str, str | None]:
    """Flags left to a paths.lake / paths.datasets default that is a URL (gpuetl.commands.common.staged)."""
    from gpuetl.dataset.config import load_dataset_config

    out = None if args.out else dataset_url(settings, command_config(load_dataset_config, args).name)
    return {"lake": lake_url(args, settings), "out": out}


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl import backend
    from gpuetl.cluster import ClusterError, open_runner
    from gpuetl.dataset.build import BuildError, build_dataset
    from gpuetl.dataset.config import load_dataset_config
    from gpuetl.graphs.io import StaleGraphsError, check_graphs
    from gpuetl.lake.manifest import ManifestError
    from gpuetl.lake.outputs import Input, check_output_dir, claimed

    cfg = command_config(load_dataset_config, args)
    lake = lake_dir(args.lake, settings, "build")
    name = DEMO_DATASET if is_demo_lake(lake, settings) else cfg.name
    out = Path(args.out) if args.out else Path(settings.paths.datasets) / name
    read = [Input(lake, "the lake"), *config_inputs(args)]
    check_output_dir(out, "dataset", overwrite=args.overwrite, read=read)  # before the work: OutputError is exit 2
    with claimed(out):  # one writer per dataset, for the whole command
        b = backend.init(settings)
        had_graphs = (out / "graphs" / "graphs.json").exists()
        try:
            with open_runner(args.cluster, settings, b, show_progress(args), getattr(args, "shared", None)) as runner:
                result = build_dataset(b, cfg, lake, out, progress=show_progress(args), overwrite=args.overwrite,
                                       runner=runner, read=read,
                                       partition_rows=settings.build.partition_rows if args.cluster is None
                                       else settings.cluster.partition_rows, day_rows=settings.build.day_rows)
        except (BuildError, ClusterError, ManifestError) as err:  # nothing was written: swapped in at the end
            raise CommandError(str(err)) from None
    if had_graphs:
        try:
            check_graphs(out)
        except StaleGraphsError:
            note("build", f"{out}/graphs were kept but made from the previous build (stale): rerun "
                          f"`gpuetl graph --dataset {out} --overwrite`")
    if args.json:
        print(json.dumps({"out": str(out), "lake": str(lake), "backend": b.name, "rows": result.rows,
                          "codes": result.codes, "dates": result.dates, "features": len(result.features),
                          "targets": len(result.targets), "warmup_days": result.warmup_days,
                          "invalid_price_rows": result.invalid_prices, "parts": result.parts,
                          "runner": result.runner, "timings_s": result.timings,
                          "peak_device_bytes": result.peak_device_bytes,
                          "peak_host_bytes": result.peak_host_bytes}, indent=2))
        return 0
    console = Console()
    console.print(timings_table(f"built {out} on {b.name}", result.timings, "stage"))
    peak = peak_memory_text(result.peak_device_bytes, result.peak_host_bytes)
    console.print(f"{result.rows:,} rows, {result.codes:,} codes, {result.dates:,} dates, "
                  f"{len(result.features)} features, {len(result.targets)} targets, {result.warmup_days} business "
                  f"days of warm-up, {result.invalid_prices:,} bars with non-positive prices read as missing{peak}")
    return 0
