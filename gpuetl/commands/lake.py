"""`gpuetl lake verify [--repair]`: hash every unit of the raw lake against its manifest, report the bad ones,
and with --repair forget them and fetch them again (from the built-in demo server for the demo lake, else from
the J-Quants API). The report goes to stdout (a table, or JSON with --json); exit 1 while bad units remain."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from gpuetl.commands.common import (
    MANIFEST,
    CommandError,
    add_output_options,
    dataset_names,
    demo_lake,
    is_demo_lake,
    lake_dir,
)
from gpuetl.config import Settings
from gpuetl.jquants import spec

if TYPE_CHECKING:
    from gpuetl.lake.verify import VerifyReport


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("lake", help="check the raw lake against its manifest and repair it")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    what = "hash every unit against the manifest, report the bad ones (and fetch them again with --repair)"
    v = actions.add_parser("verify", parents=[common], help=what, description=what)
    v.add_argument("--lake", help="lake directory (default: paths.lake, or the demo lake after `make demo`)")
    v.add_argument("--demo", action="store_true", help="the demo lake (<paths.data>/demo/raw), repaired from the "
                                                       "built-in fake server")
    v.add_argument("--datasets", help="comma-separated names (default: every dataset in the lake)")
    v.add_argument("--repair", action="store_true",
                   help="forget the bad units and fetch them again (the demo lake from the built-in fake server, "
                        "any other from the J-Quants API)")
    add_output_options(v, "report")
    v.set_defaults(run=run_verify)


def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl.lake import Lake
    from gpuetl.lake.verify import verify

    lake = demo_lake(settings) if args.demo and not args.lake else lake_dir(args.lake, settings, "lake verify")
    if not (lake / MANIFEST).is_file():
        raise CommandError(f"no lake at {lake} (no {MANIFEST}): fetch one first (gpuetl fetch, or gpuetl fetch "
                           "--demo), or pass --lake DIR", 1)
    report = verify(lake, dataset_names(args.datasets))
    result: dict[str, Any] = {"lake": str(lake), "units": report.units,
                              "bad": [vars(b) for b in report.bad], "repaired": [], "remaining": len(report.bad)}
    if args.repair and report.bad:
        lk = Lake(lake)
        with lk.exclusive():
            for b in report.bad:
                lk.forget(b.dataset, b.unit)
            lk.flush()
        result["repaired"], result["remaining"] = _refetch(args, settings, lake, report)
    _print(result, args.json, tried=bool(args.repair and report.bad))
    return 1 if result["remaining"] else 0


def _refetch(args: argparse.Namespace, settings: Settings, lake: Path, report: VerifyReport) -> tuple[list[str], int]:
    """Fetch the forgotten units again (one fetch over their span); returns what came back and what is still bad."""
    from gpuetl.commands.fetch import fetch_lake
    from gpuetl.jquants.errors import JQuantsError
    from gpuetl.lake import Manifest
    from gpuetl.lake.verify import verify
    from gpuetl.pipelines.fetch import FetchError, FetchInputError

    spans = {n: s for n, s in report.spans().items() if spec.get(n).fetch != "latest"}
    if not spans:
        return [], len(report.bad)  # only past snapshots: they cannot be fetched again (the next fetch takes a new one)
    start, end = min(s[0] for s in spans.values()), max(s[1] for s in spans.values())
    demo = args.demo or is_demo_lake(lake, settings)
    console = Console(stderr=True)
    console.print(f"lake verify: fetching {len(report.bad)} bad unit(s) again ({start} .. {end}) from "
                  f"{'the demo server' if demo else 'the J-Quants API'}")
    try:
        asyncio.run(fetch_lake(settings, start, end, sorted(spans), lake, demo=demo,
                               progress=not args.no_progress, console=console))
    except (FetchError, FetchInputError, JQuantsError) as err:
        raise CommandError(f"repair fetch failed: {err}", 1) from None
    again = verify(lake, sorted(spans), start, end)
    still = {(b.dataset, b.unit) for b in again.bad}
    manifest = Manifest.load(lake)
    back = [f"{b.dataset}/{b.unit}" for b in report.bad
            if (b.dataset, b.unit) not in still and manifest.get(b.dataset, b.unit) is not None]
    return back, len(report.bad) - len(back)


def _print(result: dict[str, Any], as_json: bool, tried: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
    console = Console(quiet=as_json)
    repaired = set(result["repaired"])
    if result["bad"]:
        table = Table("dataset", "unit", "problem", "repaired", title=f"bad units in {result['lake']}")
        for b in result["bad"]:
            table.add_row(b["dataset"], b["unit"], b["problem"],
                          "yes" if f"{b['dataset']}/{b['unit']}" in repaired else "no")
        console.print(table)
    console.print(f"{result['units']:,} units checked, {len(result['bad'])} bad, {len(repaired)} repaired, "
                  f"{result['remaining']} remaining", highlight=False)
    if result["remaining"] and not tried:
        print(f"gpuetl lake verify: to fetch the bad units again: gpuetl lake verify --repair --lake {result['lake']}",
              file=sys.stderr)
    elif result["remaining"]:
        print(f"gpuetl lake verify: {result['remaining']} unit(s) not repaired (a past snapshot cannot be fetched "
              "again; the next fetch takes a new one)", file=sys.stderr)
