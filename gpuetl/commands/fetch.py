"""`gpuetl fetch`: pull J-Quants data into the raw Parquet lake (resumable; a re-run requests nothing new).

`--demo` serves the built-in fake J-Quants API over a synthetic market in this process and fetches from
it, so everything works without a subscription. The summary goes to stdout (a table, or JSON with
`--json`); progress and logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from gpuetl.commands.common import add_output_options, dataset_names, demo_lake, lake_url
from gpuetl.config import Settings
from gpuetl.fetch.pipeline import FetchError, FetchInputError, FetchSummary, fetch
from gpuetl.fetch.plan import parse_day
from gpuetl.fetch.report import render_summary
from gpuetl.jquants import spec
from gpuetl.jquants.env import Credentials
from gpuetl.jquants.errors import JQuantsError
from gpuetl.lake import Lake
from gpuetl.lake.manifest import ManifestError
from gpuetl.lake.outputs import OutputError, check_lake_dir
from gpuetl.lake.units import today_jst


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("fetch", parents=[common], help="pull J-Quants datasets into the raw Parquet lake")
    p.add_argument("--start", help="first date, YYYY-MM-DD (with --demo: demo.start)")
    p.add_argument("--end", help="last date, YYYY-MM-DD (default: today in Tokyo; with --demo: demo.end)")
    p.add_argument("--datasets", help=f"comma-separated names (default: fetch.datasets); any of: "
                                      f"{', '.join(spec.datasets())}")
    p.add_argument("--lake", help="lake directory (default: paths.lake; with --demo: <paths.data>/demo/raw)")
    p.add_argument("--plan", choices=spec.PLANS, help="subscription plan: pacing and datasets (jquants.plan)")
    p.add_argument("--api-url", help="API base URL without /v1 or /v2 (jquants.api_url)")
    p.add_argument("--api-version", choices=("v2", "v1"), help="v2 (x-api-key) or legacy v1 (mail/password)")
    p.add_argument("--demo", action="store_true",
                   help="fetch from the built-in fake J-Quants server over a synthetic market (no key needed)")
    p.add_argument("--verify", action="store_true",
                   help="first hash the lake's units in the window against the manifest; fetch bad ones again")
    p.add_argument("--warmup-for", metavar="YAML",
                   help="also fetch the history this dataset config's warm-up needs before --start (the longest "
                        "lookback its ops declare, in business days), e.g. configs/dataset/default.yaml")
    add_output_options(p, "summary")
    p.set_defaults(run=run, remote=lambda a: {"lake": "output:lake"},  # an s3:// lake: gpuetl.remote
                   url_defaults=lambda a, s: {"lake": lake_url(a, s)})  # paths.lake as a URL


def warmup_start(start: str, config: str) -> dt.date:
    """`start` moved back by the dataset config's warm-up: its business days as weekdays, plus a tenth for the
    TSE's ~20 holidays a year (fetching a few days too many costs a few requests; too few leaves NaN)."""
    from gpuetl.dataset.build import warmup_days
    from gpuetl.dataset.config import load_dataset_config

    days = warmup_days(load_dataset_config(config))
    first = np.busday_offset(np.datetime64(parse_day(start, "--start"), "D"), -days, roll="backward")
    return (first - np.timedelta64((days // 10) * 7 // 5, "D")).astype(dt.date)


def run(args: argparse.Namespace, settings: Settings) -> int:
    console = Console(stderr=True)
    datasets = dataset_names(args.datasets)
    start = args.start
    if args.warmup_for and start:
        start = warmup_start(start, args.warmup_for)
        print(f"gpuetl fetch: from {start}: the {args.warmup_for} warm-up before {args.start}", file=sys.stderr)
    try:
        summary = asyncio.run(fetch_lake(
            settings, start, args.end, datasets, args.lake, demo=args.demo, api_url=args.api_url,
            plan=args.plan, api_version=args.api_version, progress=not args.no_progress, console=console,
            verify=args.verify))
    except FetchError as err:
        print_summary(err.summary, args.json)
        print(f"gpuetl fetch: {err}", file=sys.stderr)
        return 1
    except ManifestError as err:  # a data error: the message names the repair
        print(f"gpuetl fetch: {err}", file=sys.stderr)
        return 1
    except (FetchInputError, JQuantsError, OutputError) as err:
        print(f"gpuetl fetch: {err}", file=sys.stderr)
        return 2
    print_summary(summary, args.json)
    return 0


def print_summary(summary: FetchSummary, as_json: bool) -> None:
    """The result on stdout: the summary table, or its JSON."""
    if as_json:
        print(summary.to_json())
    else:
        render_summary(summary, Console())


async def fetch_lake(settings: Settings, start: str | dt.date | None, end: str | dt.date | None,
                     datasets: Sequence[str] | None, lake: str | Path | None, *, demo: bool,
                     api_url: str | None = None, plan: spec.Plan | None = None, api_version: Any = None,
                     progress: bool = True, console: Console | None = None, verify: bool = False,
                     redo: Collection[tuple[str, str]] = ()) -> FetchSummary:
    """One fetch as the command runs it: from the API (`--start` required), or from the demo server. `redo`: units
    (dataset, unit id) to fetch again although the manifest records them (a repair)."""
    if demo:
        return await _demo(settings, start, end, datasets, lake, plan, api_version, progress, console, verify, redo)
    if not start:
        raise FetchInputError("--start is required (or use --demo)")
    return await fetch(settings, start, end or today_jst(), datasets, lake, api_url, plan, progress,
                       api_version=api_version, console=console, verify=verify, redo=redo)


async def _demo(settings: Settings, start: str | dt.date | None, end: str | dt.date | None,
                datasets: Sequence[str] | None, lake: str | Path | None, plan: spec.Plan | None,
                api_version: Any, progress: bool, console: Console | None, verify: bool,
                redo: Collection[tuple[str, str]]) -> FetchSummary:
    """Serve the fake API in-process over a synthetic market and fetch from it."""
    from gpuetl.fake.options import FakeOptions
    from gpuetl.fake.server import FakeServer
    from gpuetl.synth import MarketConfig, build_market
    from gpuetl.synth.lake import write_snapshot_history

    demo = settings.demo
    first, last = parse_day(start or demo.start, "start"), parse_day(end or demo.end, "end")
    lo, hi = parse_day(demo.start, "demo.start"), parse_day(demo.end, "demo.end")
    if first < lo or last > hi:
        raise FetchInputError(f"{first} .. {last} is not inside the demo market ({lo} .. {hi}): ask for dates "
                              "inside it, or widen the market with --set demo.start=... / --set demo.end=...")
    lake = check_lake_dir(lake or demo_lake(settings), "--lake", "synthetic")  # before building the market
    console = console or Console(stderr=True)
    console.print(f"demo: building a synthetic market ({demo.codes} codes, {demo.start} .. {demo.end}, "
                  f"seed {demo.seed})")
    market = await asyncio.to_thread(
        build_market, MarketConfig(codes=demo.codes, start=demo.start, end=demo.end, seed=demo.seed))
    options = FakeOptions.from_demo(demo, plan=plan or demo.plan)
    async with FakeServer(market, options, host=demo.host, port=demo.port) as server:
        console.print(f"demo: fake J-Quants API on {server.url} ({options.plan} plan); lake {lake}")
        creds = Credentials(api_key=options.api_key, mail=options.mail, password=options.password)
        # pace to the demo server's own limit (demo.requests_per_minute), not the plan's published one
        settings = dataclasses.replace(settings, jquants=dataclasses.replace(
            settings.jquants, requests_per_minute=options.requests_per_minute))
        # the fake market's "today" (the day after its last date) stamps snapshots and marks units final
        summary = await fetch(settings, first, last, datasets, lake, server.url, options.plan, progress,
                              api_version=api_version, credentials=creds, today=server.state.today,
                              console=console, verify=verify, redo=redo, source="synthetic")
    # J-Quants serves only today's earnings calendar: the demo also records the snapshots a daily fetch
    # would have accumulated over the range, so its dataset has the history a real lake builds up
    with Lake(lake).exclusive():
        history = write_snapshot_history(market, lake, datasets or settings.fetch.datasets, first, last)
    if any(history.values()):
        console.print("demo: recorded the daily snapshot history of " + ", ".join(
            f"{name} ({n} days)" for name, n in history.items() if n) + " (J-Quants serves only the current one)")
    return summary
