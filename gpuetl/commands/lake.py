"""`gpuetl lake verify [--repair]`: hash every unit of the raw lake against its manifest and look for open trading
days its `date` datasets lack, report the bad ones, and with --repair fetch them again (from the built-in demo server
for the demo lake, else from the J-Quants API) while the manifest still records them: a repair that fails changes
nothing. A manifest that cannot be read is reported; --repair rebuilds it from the unit files first. The report goes
to stdout (a table, or JSON with --json); exit 1 while bad units remain."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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
    what = ("hash every unit against the manifest and look for open trading days a dataset lacks, report the bad "
            "ones (and fetch them again with --repair)")
    v = actions.add_parser("verify", parents=[common], help=what, description=what)
    v.add_argument("--lake", help="lake directory (default: paths.lake, or the demo lake after `make demo`)")
    v.add_argument("--demo", action="store_true", help="the demo lake (<paths.data>/demo/raw), repaired from the "
                                                       "built-in fake server")
    v.add_argument("--datasets", help="comma-separated names (default: every dataset in the lake)")
    v.add_argument("--repair", action="store_true",
                   help="fetch the bad units and missing days again, replacing each only once its new files are "
                        "written (the demo lake from the built-in fake server, any other from the J-Quants API); "
                        "first rebuild an unreadable manifest from the unit files")
    add_output_options(v, "report")
    v.set_defaults(run=run_verify)


def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl.lake import Manifest
    from gpuetl.lake.manifest import ManifestError
    from gpuetl.lake.units import has_unit_files
    from gpuetl.lake.verify import verify

    lake = demo_lake(settings) if args.demo and not args.lake else lake_dir(args.lake, settings, "lake verify")
    lost = not (lake / MANIFEST).is_file() and has_unit_files(lake)
    if not (lake / MANIFEST).is_file() and not lost:
        raise CommandError(f"no lake at {lake} (no {MANIFEST}): fetch one first (gpuetl fetch, or gpuetl fetch "
                           "--demo), or pass --lake DIR", 1)
    result: dict[str, Any] = {"lake": str(lake)}
    try:
        if lost:
            raise ManifestError(lake / MANIFEST, "is missing, though the lake holds unit files")
        manifest = Manifest.load(lake)
    except ManifestError as err:
        if not args.repair:
            raise CommandError(str(err), 1) from None
        result["rebuilt"] = _rebuild(lake)
        manifest = Manifest.load(lake)
    report = verify(lake, dataset_names(args.datasets), manifest=manifest)
    result |= {"units": report.units, "bad": [vars(b) for b in report.bad], "notes": report.notes,
               "repaired": [], "remaining": len(report.bad)}
    if args.repair and report.bad:
        result |= _refetch(args, settings, lake, report)
    _print(result, args.json, tried=bool(args.repair and report.bad))
    return 1 if result["remaining"] else 0


def _rebuild(lake: Path) -> dict[str, Any]:
    """Rebuild the unreadable manifest from the unit files; what was done, for the report (`message`: one line)."""
    from gpuetl.lake.units import today_jst
    from gpuetl.lake.verify import rebuild_manifest

    done = rebuild_manifest(lake, today_jst())
    if done is None:
        return {"message": "the manifest reads now (another process rebuilt it meanwhile)"}
    kept = f"; the unreadable one is kept as {done.kept}" if done.kept else ""
    left = (f"; {len(done.left_out)} unreadable file(s) left out (fetched again): " + "; ".join(done.left_out[:3])
            + (" ..." if len(done.left_out) > 3 else "")) if done.left_out else ""
    message = (f"rebuilt the manifest from {done.files} unit files ({done.units} units){kept}{left}; units recorded "
               "with no rows have no files and are fetched again (now with --repair, or by the next fetch)")
    return {**dataclasses.asdict(done), "message": message}


def _refetch(args: argparse.Namespace, settings: Settings, lake: Path, report: VerifyReport) -> dict[str, Any]:
    """Fetch the bad units again over their span: one fetch, which re-requests the bad ones while the manifest still
    records them (and the missing days), so one that does not come back stays as it was. Returns the
    report's `repaired` (what came back), `remaining` (still bad) and, when the fetch failed, `error` (why)."""
    from gpuetl.commands.fetch import fetch_lake
    from gpuetl.fetch.pipeline import FetchError, FetchInputError
    from gpuetl.jquants.errors import JQuantsError
    from gpuetl.lake.verify import recheck

    spans = {n: s for n, s in report.spans().items() if spec.get(n).fetch != "latest"}
    if not spans:  # only past snapshots: they cannot be fetched again (the next fetch takes a new one)
        return {"repaired": [], "remaining": len(report.bad)}
    start, end = min(s[0] for s in spans.values()), max(s[1] for s in spans.values())
    demo = args.demo or is_demo_lake(lake, settings)
    console = Console(stderr=True)
    console.print(f"lake verify: fetching {len(report.bad)} bad unit(s) again ({start} .. {end}) from "
                  f"{'the demo server' if demo else 'the J-Quants API'}")
    out: dict[str, Any] = {}
    try:
        asyncio.run(fetch_lake(settings, start, end, sorted(spans), lake, demo=demo, progress=not args.no_progress,
                               console=console, redo=[(b.dataset, b.unit) for b in report.bad]))
    except FetchError as err:
        out["error"] = err.summary.stopped or "; ".join(f"{n}: {e}" for n, e in err.summary.errors.items())
    except (FetchInputError, JQuantsError) as err:
        out["error"] = str(err)
    still = {(b.dataset, b.unit) for b in recheck(lake, report.bad)}
    out["repaired"] = [f"{b.dataset}/{b.unit}" for b in report.bad if (b.dataset, b.unit) not in still]
    out["remaining"] = len(still)
    return out


def _print(result: dict[str, Any], as_json: bool, tried: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
    console = Console(quiet=as_json)
    if "rebuilt" in result:
        console.print(result["rebuilt"]["message"], highlight=False, soft_wrap=True)
    repaired = set(result["repaired"])
    if result["bad"]:
        table = Table("dataset", "unit", "problem", "repaired", title=f"bad units in {result['lake']}")
        for b in result["bad"]:
            table.add_row(b["dataset"], b["unit"], b["problem"],
                          "yes" if f"{b['dataset']}/{b['unit']}" in repaired else "no")
        console.print(table)
    console.print(f"{result['units']:,} units checked, {len(result['bad'])} bad, {len(repaired)} repaired, "
                  f"{result['remaining']} remaining", highlight=False)
    for text in result["notes"]:
        print(f"gpuetl lake verify: {text}", file=sys.stderr)
    command = f"gpuetl lake verify --repair --lake {result['lake']}"
    if result["remaining"] and not tried:
        print(f"gpuetl lake verify: to fetch the bad units again: {command}", file=sys.stderr)
    elif result.get("error"):
        print(f"gpuetl lake verify: the repair fetch failed ({result['error']}); the {result['remaining']} unit(s) "
              f"it did not bring back are as they were: fix the cause and run `{command}` again",
              file=sys.stderr)
    elif result["remaining"]:
        print(f"gpuetl lake verify: {result['remaining']} unit(s) not repaired: a past snapshot cannot be fetched "
              "again (the next fetch takes a new one), and a day the server still has no rows for is asked again "
              "by the next fetch", file=sys.stderr)
