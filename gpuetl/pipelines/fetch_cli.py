"""`gpuetl fetch`: pull J-Quants data into the raw Parquet lake (resumable; a re-run requests nothing new).

`--demo` serves the built-in fake J-Quants API over a synthetic market in this process and fetches from
it, so everything works without a subscription.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from gpuetl.config import Settings
from gpuetl.jquants import spec
from gpuetl.jquants.env import Credentials
from gpuetl.jquants.errors import JQuantsError
from gpuetl.lake.manifest import ManifestError
from gpuetl.pipelines.fetch import FetchError, FetchInputError, FetchSummary, fetch
from gpuetl.pipelines.fetch_plan import today_jst
from gpuetl.pipelines.fetch_report import render_summary

DEMO_LAKE = "demo/raw"  # under settings.paths.data: synthetic rows never mix with a real lake


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
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    console = Console(stderr=True)
    try:
        summary = asyncio.run(_run(args, settings, console))
    except FetchError as err:
        render_summary(err.summary, console)
        if args.json:
            print(err.summary.to_json())
        print(f"gpuetl fetch: {err}", file=sys.stderr)
        return 1
    except (FetchInputError, JQuantsError, ManifestError) as err:
        print(f"gpuetl fetch: {err}", file=sys.stderr)
        return 2
    render_summary(summary, console)
    if args.json:
        print(summary.to_json())
    return 0


async def _run(args: argparse.Namespace, settings: Settings, console: Console) -> FetchSummary:
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    progress = not args.no_progress and console.is_terminal
    if not args.demo:
        if not args.start:
            raise FetchInputError("--start is required (or use --demo)")
        # the fake market's "today" (the day after its last date) stamps snapshots and marks units final
        return await fetch(settings, args.start, args.end or today_jst(), datasets, args.lake, args.api_url,
                           args.plan, progress, api_version=args.api_version, console=console)
    return await _demo(args, settings, datasets, progress, console)


async def _demo(args: argparse.Namespace, settings: Settings, datasets: list[str] | None, progress: bool,
                console: Console) -> FetchSummary:
    """Serve the fake API in-process over a synthetic market and fetch from it."""
    from gpuetl.jquants.fake.options import FakeOptions
    from gpuetl.jquants.fake.server import FakeServer
    from gpuetl.synth import MarketConfig, build_market

    demo = settings.demo
    start, end = args.start or demo.start, args.end or demo.end
    console.print(f"demo: building a synthetic market ({demo.codes} codes, {demo.start} .. {demo.end}, "
                  f"seed {demo.seed})")
    market = await asyncio.to_thread(
        build_market, MarketConfig(codes=demo.codes, start=demo.start, end=demo.end, seed=demo.seed))
    options = FakeOptions.from_demo(demo, plan=args.plan or demo.plan)
    lake = args.lake or str(Path(settings.paths.data) / DEMO_LAKE)
    async with FakeServer(market, options, host=demo.host, port=demo.port) as server:
        console.print(f"demo: fake J-Quants API on {server.url} ({options.plan} plan); lake {lake}")
        creds = Credentials(api_key=options.api_key, mail=options.mail, password=options.password)
        # pace to the demo server's own limit (demo.requests_per_minute), not the plan's published one
        settings = dataclasses.replace(settings, jquants=dataclasses.replace(
            settings.jquants, requests_per_minute=options.requests_per_minute))
        # the fake market's "today" (the day after its last date) stamps snapshots and marks units final
        return await fetch(settings, start, end, datasets, lake, server.url, options.plan, progress,
                           api_version=args.api_version, credentials=creds, today=server.state.today,
                           console=console)
