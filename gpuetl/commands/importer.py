"""`gpuetl import`: files a user already holds (CSV, CSV.gz, Parquet) into the raw lake, unit for unit as `fetch`
writes them. The summary goes to stdout (a table, or JSON with --json); progress to stderr."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from gpuetl.commands.common import CommandError, add_output_options, config_inputs, local_only, show_progress
from gpuetl.config import Settings
from gpuetl.fetch.files import IMPORTABLE, SUFFIXES


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("import", parents=[common],
                       help="import J-Quants data you already hold (CSV, CSV.gz, Parquet) into the raw lake")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help=f"files, folders (searched for {', '.join(SUFFIXES)}) or globs: one file per code (7203.csv) "
                        "or long files with a code column")
    p.add_argument("--dataset", required=True, metavar="NAME",
                   help=f"what the files hold: {', '.join(IMPORTABLE)}")
    p.add_argument("--lake", help="lake directory (default: paths.lake)")
    p.add_argument("--columns", action="append", default=[], metavar="NEW=OLD",
                   help="take the lake field NEW (V2 or V1 name) from the file column OLD, beyond the names found by "
                        "themselves (V2, V1, common variants), e.g. --columns C=close_price (repeatable)")
    p.add_argument("--start", help="first date to import, YYYY-MM-DD (default: the files' first)")
    p.add_argument("--end", help="last date to import, YYYY-MM-DD (default: the files' last)")
    p.add_argument("--encoding", default="utf-8", help="CSV text encoding, e.g. cp932 (default: %(default)s)")
    add_output_options(p, "summary")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl.fetch.files.columns import ColumnError
    from gpuetl.fetch.files.plan import CalendarError
    from gpuetl.fetch.files.read import InputError
    from gpuetl.fetch.files.report import render
    from gpuetl.fetch.files.rows import RowError
    from gpuetl.fetch.files.run import import_files
    from gpuetl.fetch.plan import FetchInputError, parse_day
    from gpuetl.lake.manifest import ManifestError

    local_only(args.lake or settings.paths.lake, "--lake" if args.lake else "paths.lake", "import")
    try:
        start = parse_day(args.start, "--start") if args.start else None
        end = parse_day(args.end, "--end") if args.end else None
        summary = import_files(
            args.dataset, args.paths, args.lake or settings.paths.lake, mappings=args.columns, start=start, end=end,
            encoding=args.encoding, chunk_days=settings.fetch.range_chunk_days, progress=show_progress(args),
            console=Console(stderr=True), also_read=config_inputs(args))
    except (FetchInputError, InputError, ColumnError, CalendarError) as err:
        raise CommandError(str(err), 2) from err
    except (RowError, ManifestError) as err:
        raise CommandError(str(err), 1) from err
    if args.json:
        print(summary.to_json())
    else:
        render(summary, Console())
    return 0
