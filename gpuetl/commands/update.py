"""`gpuetl update`: the evening job. Fetch what is new into the lake (as `gpuetl fetch` does: the days after the
dataset's last date, to today or --end; the demo lake from the built-in server), then bring the dataset and its
graphs to what the lake holds, rewriting only the years that changed (gpuetl/dataset/update.py). One line on
stderr says what is recomputed and why; the summary goes to stdout (a table, or JSON with --json)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from gpuetl.commands.common import (
    CommandError,
    add_output_options,
    config_inputs,
    dataset_url,
    demo_lake,
    is_demo_lake,
    lake_dir,
    lake_url,
    note,
    show_progress,
)
from gpuetl.config import Settings
from gpuetl.stages import timings_table

if TYPE_CHECKING:
    from gpuetl.dataset.config import DatasetConfig

DEFAULT_DATASET = "default"


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("update", parents=[common],
                       help="the evening job: fetch the new days, extend the dataset and its graphs by them")
    p.add_argument("--dataset", metavar="DIR_OR_NAME",
                   help=f"the dataset to update: a folder, or a name under paths.datasets (default: {DEFAULT_DATASET},"
                        " or the demo dataset after `make demo`)")
    p.add_argument("--lake", help="raw lake directory (default: paths.lake, or the demo lake after `make demo`)")
    p.add_argument("--end", help="last date, YYYY-MM-DD (default: today in Tokyo, or the demo market's last day; "
                                 "the dataset goes to the lake's last day)")
    p.add_argument("--no-fetch", action="store_true", help="fetch nothing: extend from what the lake holds")
    p.add_argument("--demo", action="store_true",
                   help="fetch from the built-in fake J-Quants server (the demo lake, <paths.data>/demo/raw)")
    p.add_argument("--config", metavar="YAML",
                   help="dataset config (default: the config the dataset was built with); a config that differs "
                        "rebuilds the dataset whole")
    p.add_argument("--config-set", dest="config_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a dataset-config key (repeatable); a change rebuilds the dataset whole")
    add_output_options(p, "update summary", cluster=True)
    p.set_defaults(url_defaults=lambda a, s: {"lake": lake_url(a, s),  # paths.* URLs
                                              "dataset": dataset_url(s, a.dataset or DEFAULT_DATASET)})
    p.set_defaults(run=run, remote=lambda a: {"lake": "input" if a.no_fetch else "output:lake",
                                              "dataset": "output:dataset"})  # s3:// URLs: gpuetl.remote


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl import backend
    from gpuetl.cluster import ClusterError, open_runner
    from gpuetl.dataset.plan import BuildError
    from gpuetl.dataset.update import UpdateError, old_metadata, update_dataset
    from gpuetl.lake.manifest import ManifestError
    from gpuetl.lake.outputs import Input, check_output_dir, claimed

    end = _day(args.end, "--end") if args.end else None
    lake = demo_lake(settings) if args.demo and not args.lake else lake_dir(args.lake, settings, "update")
    dataset = _dataset(args.dataset, settings)
    read = [Input(lake, "the lake"), *config_inputs(args)]
    check_output_dir(dataset, "dataset", overwrite=True, flag="--dataset", read=read)  # before the work: exit 2
    with claimed(dataset, "--dataset"):
        try:
            old = old_metadata(dataset)
        except UpdateError as err:
            raise CommandError(str(err)) from None
        cfg = _config(args, old, end)
        if not args.no_fetch:
            _fetch(args, settings, lake, old, end)
        b = backend.init(settings)
        try:
            with open_runner(args.cluster, settings, b, show_progress(args)) as runner:
                result = update_dataset(b, cfg, lake, dataset, runner=runner, progress=show_progress(args), read=read,
                                        say=lambda line: note("update", line),
                                        partition_rows=settings.build.partition_rows if args.cluster is None
                                        else settings.cluster.partition_rows, day_rows=settings.build.day_rows)
        except (BuildError, UpdateError, ClusterError, ManifestError) as err:
            raise CommandError(str(err)) from None
    summary: dict[str, Any] = {
        "dataset": str(dataset), "lake": str(lake), "backend": b.name, "action": result.action,
        "reason": result.reason, "since": result.since, "last_date": result.last_date, "new_dates": result.new_dates,
        "years_written": result.years_written, "years_kept": result.years_kept, "graphs": result.graphs,
        "seconds": result.seconds, "rows": result.build.rows if result.build else old.get("rows"),
        "peak_host_bytes": result.build.peak_host_bytes if result.build else None,
        "timings_s": result.build.timings if result.build else {},
        "graph_timings_s": result.graph.timings if result.graph else {}}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    console = Console()
    if result.build:
        timings = result.build.timings | {f"graph {k}": v for k, v in summary["graph_timings_s"].items()}
        console.print(timings_table(f"updated {dataset} on {b.name}", timings, "stage"))
    console.print(f"{dataset}: {result.action} to {result.last_date} in {result.seconds:.1f} s"
                  + (f": rows from {result.since} rewritten (years {_years(result.years_written)}; kept "
                     f"{_years(result.years_kept)}), graphs {result.graphs}" if result.build else ""),
                  highlight=False, soft_wrap=True)
    return 0


def _years(years: list[int]) -> str:
    return ", ".join(map(str, years)) or "none"


def _day(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{flag} {text!r} is not a date: use YYYY-MM-DD", 2) from None


def _dataset(arg: str | None, settings: Settings) -> Path:
    """--dataset as a folder or a name under paths.datasets; without it the default dataset, or the demo one when
    only that exists (after `make demo`, said on stderr)."""
    from gpuetl.commands.common import DEMO_DATASET

    root = Path(settings.paths.datasets)
    name = arg or DEFAULT_DATASET
    dataset = Path(name) if Path(name).is_dir() or Path(name).is_absolute() else root / name
    if not arg and not dataset.is_dir() and (root / DEMO_DATASET).is_dir():
        note("update", f"no dataset at {dataset}; using the demo dataset {root / DEMO_DATASET} "
                       "(pass --dataset to choose another)")
        dataset = root / DEMO_DATASET
    return dataset


def _config(args: argparse.Namespace, old: dict[str, Any], end: dt.date | None) -> DatasetConfig:
    """The dataset config: --config, else the one the dataset was built with; --config-set on top; `end` from
    --end (else none: to the lake's last day)."""
    from gpuetl.config import ConfigError, apply_overrides, from_dict, read_yaml
    from gpuetl.dataset.config import DatasetConfig, check_dataset
    from gpuetl.resources import config_path

    try:
        data = read_yaml(config_path(args.config)) if args.config else dict(old["config"])
        data["end"] = end.isoformat() if end else None
        cfg = from_dict(DatasetConfig, apply_overrides(data, args.config_overrides, "--config-set"))
        check_dataset(cfg)
    except (ConfigError, FileNotFoundError, KeyError) as err:
        raise CommandError(f"config error: {err}", 2) from None
    return cfg


def _fetch(args: argparse.Namespace, settings: Settings, lake: Path, old: dict[str, Any], end: dt.date | None) -> None:
    """`gpuetl fetch` from the dataset's last date (its provisional units again) to --end or today, of every dataset
    the lake holds."""
    from gpuetl.commands.fetch import fetch_lake
    from gpuetl.fetch.pipeline import FetchError, FetchInputError
    from gpuetl.jquants import spec
    from gpuetl.jquants.errors import JQuantsError
    from gpuetl.lake.manifest import Manifest, ManifestError
    from gpuetl.lake.outputs import OutputError
    from gpuetl.lake.units import today_jst

    last = (old.get("inputs") or {}).get("last_date")
    if last is None:
        note("update", "the dataset has no record of its last date: fetching nothing (pass --no-fetch to say so)")
        return
    start = dt.date.fromisoformat(last)  # its units may be provisional (fetched the evening of that day): again
    demo = args.demo or is_demo_lake(lake, settings)
    stop = end or (dt.date.fromisoformat(settings.demo.end) if demo else today_jst())
    if demo:
        stop = min(stop, dt.date.fromisoformat(settings.demo.end))
    if start >= stop and demo:
        note("update", f"nothing to fetch: the dataset reaches {last}, the demo market's last day")
        return
    if start > stop:
        return
    try:
        held = [d for d in Manifest.load(lake).datasets() if d in spec.datasets()]
        summary = asyncio.run(fetch_lake(settings, start, stop, held or None, lake, demo=demo,
                                         progress=not args.no_progress,
                                         console=Console(stderr=True, quiet=args.no_progress)))
    except FetchError as err:
        raise CommandError(f"the fetch stopped: {err}; what it fetched is in the lake: run `gpuetl update` again",
                           1) from None
    except ManifestError as err:
        raise CommandError(str(err), 1) from None
    except (FetchInputError, JQuantsError, OutputError) as err:
        raise CommandError(str(err), 2) from None
    units = sum(d.done for d in summary.datasets.values())
    note("update", f"fetched {start} .. {stop}: {units} unit(s), {sum(d.rows for d in summary.datasets.values()):,} "
                   f"rows, {summary.data_requests} request(s) in {summary.seconds:.0f} s")
