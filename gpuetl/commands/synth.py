"""`gpuetl synth`: write a synthetic market straight into a raw lake (large benchmarks, offline demos).
The summary goes to stdout (a table, or JSON with --json); progress to stderr."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gpuetl.commands.common import (
    add_output_options,
    config_inputs,
    dataset_names,
    demo_lake,
    note,
    show_progress,
)
from gpuetl.config import Settings
from gpuetl.jquants import spec


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("synth", parents=[common], help="write a synthetic market into a raw lake (as fetch would)")
    p.add_argument("--codes", type=int, help="number of issues (default: demo.codes)")
    p.add_argument("--start", help="first date, YYYY-MM-DD (default: demo.start)")
    p.add_argument("--end", help="last date, YYYY-MM-DD (default: demo.end)")
    p.add_argument("--seed", type=int, help="random seed (default: demo.seed)")
    p.add_argument("--datasets",
                   help=f"comma-separated (default: fetch.datasets); any of: {', '.join(spec.datasets())}")
    p.add_argument("--out", help="lake directory (default: <paths.data>/demo/raw, as fetch --demo)")
    p.add_argument("--no-signal", action="store_true",
                   help="the null market: nothing planted to predict (no lead-lag, no reaction to earnings "
                        "surprises), the same marginals, correlations and volatility clustering")
    add_output_options(p, "summary", overwrite=True)
    p.set_defaults(run=run, remote=lambda a: {"out": "output:lake"})  # an s3:// lake: gpuetl.remote


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl.config import check_date
    from gpuetl.lake import Lake
    from gpuetl.lake.outputs import check_synthetic_lake, replaced_dir
    from gpuetl.synth import MarketConfig, build_market
    from gpuetl.synth.config import without_signal
    from gpuetl.synth.lake import write_lake

    demo = settings.demo
    names = dataset_names(args.datasets) or list(settings.fetch.datasets)
    config = MarketConfig(codes=args.codes or demo.codes, start=args.start or demo.start, end=args.end or demo.end,
                          seed=demo.seed if args.seed is None else args.seed)
    if args.no_signal:
        config = without_signal(config)
    check_date(config.start, "--start")  # a ConfigError: exit 2
    check_date(config.end, "--end")
    read = config_inputs(args)
    out = check_synthetic_lake(args.out or demo_lake(settings), "--out", args.overwrite, read)  # before the work
    note("synth", f"{config.codes} codes, {config.start} .. {config.end}, seed {config.seed}"
                  f"{', no signal (the null market)' if args.no_signal else ''} -> {out}")
    t0 = time.perf_counter()
    marked = {"source": "synthetic", "signal": not args.no_signal}
    with replaced_dir(out, "lake", overwrite=args.overwrite, read=read, marked=marked) as tmp, \
            Lake(tmp).exclusive():  # a whole new lake, swapped in when complete
        summary = write_lake(build_market(config), tmp, names, chunk_days=settings.fetch.range_chunk_days,
                             progress=show_progress(args))
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"lake": str(out), "seconds": round(seconds, 3), "signal": not args.no_signal,
                          "datasets": {n: {"units": summary.units[n], "rows": summary.rows[n]} for n in names}},
                         indent=2))
        return 0
    table = Table("dataset", "units", "rows", title=f"synthetic lake {Path(out)} ({seconds:.1f} s)")
    for name in names:
        table.add_row(name, f"{summary.units[name]:,}", f"{summary.rows[name]:,}")
    Console().print(table)
    return 0
