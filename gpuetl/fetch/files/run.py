"""`import_files`: files a user already holds -> the raw lake, unit for unit as `gpuetl fetch` writes it.

Order of work, so that a bad input changes nothing: the dataset and the paths are checked, the lake folder is
checked against them (an input is never written: the lake may not be one, hold one or lie inside one), every
file's header is mapped to the dataset's fields, every file is read and converted, duplicates are checked and the
units planned against the lake as it is. Only then is the lake's writer lock taken, the plan made again under it
(another writer may have finished meanwhile) and the units written, each atomically (`Lake.write`), the manifest
flushed every few seconds and at the end: a killed import leaves no half unit, and a rerun writes nothing new.
"""

from __future__ import annotations

import collections
import datetime as dt
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.progress import Progress

from gpuetl.fetch.files import IMPORTABLE, columns, combine, read, rows
from gpuetl.fetch.files.plan import ImportPlan, Planned, plan_import, window
from gpuetl.fetch.files.provenance import log_import, note_derived
from gpuetl.fetch.files.report import SHOWN_DAYS, DerivedCalendar, ImportSummary
from gpuetl.jquants import spec
from gpuetl.lake import Lake
from gpuetl.lake.canonical import canonical, content_hash, lake_schema
from gpuetl.lake.outputs import Input, LakeSource, check_lake_dir, mark_lake
from gpuetl.lake.units import today_jst

FLUSH_EVERY_S = 2.0
WRITERS = 4  # units written at once
SOURCE: LakeSource = "jquants"  # what an import holds is J-Quants' data, whoever downloaded it


def dataset(name: str) -> spec.DatasetSpec:
    """The catalogue's dataset `name`, if it can be imported; an InputError naming those that can."""
    if name not in spec.datasets():
        raise read.InputError(f"unknown dataset {name!r}; importable: {', '.join(IMPORTABLE)}")
    if name not in IMPORTABLE:
        raise read.InputError(f"{name} cannot be imported (yet); importable: {', '.join(IMPORTABLE)}")
    return spec.get(name)


def import_files(name: str, paths: Sequence[str], lake: str | Path, *, mappings: Sequence[str] = (),
                 start: dt.date | None = None, end: dt.date | None = None, encoding: str = "utf-8",
                 chunk_days: int = 366, today: dt.date | None = None, progress: bool = False,
                 console: Console | None = None, also_read: Sequence[Input] = ()) -> ImportSummary:
    """Import the files `paths` name into the lake at `lake` as dataset `name`.

    Raises, before anything is written: read.InputError / columns.ColumnError / plan.CalendarError for bad input
    (exit 2), OutputError for a lake folder that may not be written (exit 2), rows.RowError for rows that cannot be
    placed or conflict (exit 1). `also_read`: further inputs of the command (its settings file)."""
    t0 = time.perf_counter()
    ds = dataset(name)
    if start and end and start > end:
        raise read.InputError(f"--start {start} is after --end {end}")
    files = read.expand(paths)
    given = [Input(Path(p), "the import input") for p in paths if Path(p).exists()]
    root = check_lake_dir(lake, "--lake", SOURCE,
                          read=[*given, *(Input(f, "the import input") for f in files), *also_read])
    explicit = columns.parse_mappings(ds, mappings)
    summary = ImportSummary(ds.name, str(root), list(paths), files=len(files))
    layouts = _layouts(ds, files, explicit, encoding, summary)
    counts = rows.Counts()
    parts = []
    with Progress(console=console or Console(stderr=True), disable=not progress, transient=True) as bar:
        task = bar.add_task(f"read {ds.name}", total=len(files))
        for i, (path, (mapping, code)) in enumerate(zip(files, layouts, strict=True)):
            table, n = rows.convert(ds, path, read.read(path, list(mapping), encoding), mapping, code)
            parts.append(table.append_column(combine.FILE, pa.array([i] * table.num_rows, pa.int32())))
            counts.add(n)
            bar.advance(task)
    table = combine.concat(parts)
    del parts
    span, inside = window(ds, table, start, end)
    counts.kinds["outside_window"] += table.num_rows - inside.num_rows
    table = inside
    counts.kinds["duplicate"] += combine.duplicates(ds, table, files)
    today = today or today_jst()
    plan_import(ds, table, files, Lake(root), span, today, chunk_days)  # every refusal, before any write
    with Lake(root).exclusive():
        mark_lake(root, SOURCE)
        store = Lake(root)  # the manifest as it is now that this process writes alone
        store.vacuum()
        plan = plan_import(ds, table, files, store, span, today, chunk_days)
        _fill(summary, plan, counts)
        _write(store, plan, summary, progress, console)
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


def _layouts(ds: spec.DatasetSpec, files: list[Path], explicit: dict[str, str], encoding: str,
             summary: ImportSummary) -> list[tuple[dict[str, str], str | None]]:
    """Per file, its columns' fields and the code its name gives (a per-code file without a code column)."""
    out = []
    seen: set[str] = set()
    unknown: collections.Counter[str] = collections.Counter()
    date_names = " or ".join(dict.fromkeys(n for n in (ds.date_field, ds.field(ds.date_field or "").v1) if n))
    for path in files:
        names = read.header(path, encoding)
        seen.update(names)
        mapping, extra = columns.resolve(ds, names, explicit)
        unknown.update(extra)
        fields = set(mapping.values())
        if ds.date_field not in fields:
            raise read.InputError(f"{path}: no date column ({date_names}); name yours with --columns "
                                  f"{ds.date_field}=COLUMN")
        code = None
        if "Code" in ds.columns and "Code" not in fields:
            code = rows.code_from_name(read.stem(path))
            if code is None:
                raise read.InputError(f"{path}: no code column (Code, LocalCode, SecuritiesCode) and the file name is "
                                      "not a code (7203.csv): name it with --columns Code=COLUMN")
        out.append((mapping, code))
    never = sorted(set(explicit) - seen)
    if never:
        raise read.InputError(f"--columns names {', '.join(repr(c) for c in never)}, which no input file has")
    summary.unknown_columns = dict(sorted(unknown.items()))
    return out


def _fill(summary: ImportSummary, plan: ImportPlan, counts: rows.Counts) -> None:
    if plan.window:
        summary.start, summary.end = (d.isoformat() for d in plan.window)
    kinds = collections.Counter(counts.kinds)
    kinds["closed_day"] += plan.closed_day
    summary.bad_rows = {k: kinds[k] for k in ("unparseable", "zero_price", "duplicate", "closed_day", "outside_window")
                        if kinds[k]}
    summary.unparseable = dict(sorted(counts.unparseable.items()))
    summary.rows_read = counts.rows
    summary.rows = counts.rows - kinds["duplicate"] - kinds["outside_window"]
    summary.missing_days = len(plan.missing_days)
    summary.first_missing = [d.isoformat() for d in plan.missing_days[:SHOWN_DAYS]]
    derived = plan.derived.units
    if derived:
        summary.derived_calendar = DerivedCalendar(
            len(derived), derived[0][0].start.isoformat(), derived[-1][0].end.isoformat(), plan.derived.open_days,
            plan.derived.closed_weekdays)


def _write(lake: Lake, plan: ImportPlan, summary: ImportSummary, progress: bool, console: Console | None) -> None:
    """The derived calendar's units, then the dataset's, each unless the lake holds it with the same rows; a few
    threads at a time (`Lake.write` is thread-safe, and a unit's time goes to fsync)."""
    cal = spec.get("calendar")
    derived = [Planned(unit, table, False, False) for unit, table in plan.derived.units]
    # noted before they are written: a unit noted but never written is harmless, one written but not noted is not
    note_derived(lake.root, {u.unit.id: _hash(cal, u.rows) for u in derived}, plan.ds.name)
    last = time.monotonic()
    with Progress(console=console or Console(stderr=True), disable=not progress, transient=True) as bar, \
            ThreadPoolExecutor(WRITERS) as pool:
        task = bar.add_task(f"write {plan.ds.name}", total=len(derived) + len(plan.units))
        try:
            for ds, todo in ((cal, derived), (plan.ds, plan.units)):
                for done in as_completed([pool.submit(_unit, lake, ds, item) for item in todo]):
                    outcome, uid, n = done.result()
                    if ds is plan.ds:
                        _tally(summary, outcome, uid, n)
                    bar.advance(task)
                    if time.monotonic() - last > FLUSH_EVERY_S:
                        lake.flush()
                        last = time.monotonic()
        finally:
            pool.shutdown(cancel_futures=True)
            lake.flush()
    if summary.units_written:
        log_import(lake.root, {"dataset": plan.ds.name, "inputs": summary.inputs, "files": summary.files,
                               "rows": summary.rows, "units_written": summary.units_written, "start": summary.start,
                               "end": summary.end})


def _tally(summary: ImportSummary, outcome: str, uid: str, rows_written: int) -> None:
    if outcome == "written":
        summary.units_written += 1
        summary.rows_written += rows_written
    elif outcome == "already":
        summary.units_already += 1
    else:
        summary.units_differ.append(uid)
        summary.units_differ.sort()


def _unit(lake: Lake, ds: spec.DatasetSpec, item: Planned) -> tuple[str, str, int]:
    """Write one unit unless the lake holds it already: ("written" | "already" | "differ", unit id, rows written)."""
    table = _complete(ds, item.rows)
    old = lake.manifest.get(ds.name, item.unit.id)
    if old is not None:
        same = _hash(ds, table) == old.hash
        if item.held or (same and (old.final or not item.final)):
            return ("already" if same else "differ"), item.unit.id, 0
    return "written", item.unit.id, lake.write(ds, item.unit, table, final=item.final).rows


def _complete(ds: spec.DatasetSpec, table: pa.Table) -> pa.Table:
    """The rows with every field of the lake schema (those the files lack as nulls), without the FILE column."""
    schema = lake_schema(ds)
    n = table.num_rows
    return pa.table({f.name: table.column(f.name) if f.name in table.column_names else pa.nulls(n, f.type)
                     for f in schema}, schema=schema)


def _hash(ds: spec.DatasetSpec, table: pa.Table) -> str:
    return content_hash(canonical(ds, _complete(ds, table)))
