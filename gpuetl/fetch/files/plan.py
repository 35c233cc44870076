"""Which units an import writes: the units `gpuetl fetch` would make for the same rows, from its own planner.

The window is `--start` .. `--end`, by default the first to the last date of the imported rows (never before the
dataset's first J-Quants date). Rows outside it are left out and counted (`outside_window`).
- `date` datasets (daily bars, the master, statements): one unit per open day of the lake's trading calendar
  (`fetch.plan.plan_dataset` with those days). A dataset with rows every open day (`spec.DatasetSpec.dense`: bars,
  the master) gets a unit for each open day it has rows on; an open day without rows gets none (the summary lists
  it, `lake verify` reports it as a hole). Statements get a unit for every open day of the window, empty where
  none was disclosed, as a fetch records them. The calendar must cover the rows (bars derive it when it does not:
  `calendar.derive`).
- `range` datasets (TOPIX, the calendar): from/to chunks over the part of the window no final unit covers, cut
  as a fetch cuts them (`fetch.range_chunk_days`).
- A unit the lake already holds as final is not written: its rows are compared by content hash (same: already
  there; different: the lake's is kept and the unit listed).
- Rows dated on a day the calendar says is closed: refused for a dataset with rows every open day (the calendar or
  the file is wrong: `RowError`); kept for statements, in a day unit of their own, and counted (`closed_day`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuetl.fetch.files.calendar import Calendar, Derived, derive, lake_calendar
from gpuetl.fetch.files.combine import FILE
from gpuetl.fetch.files.provenance import derived_units
from gpuetl.fetch.files.rows import RowError
from gpuetl.fetch.plan import plan_dataset
from gpuetl.jquants.spec import DatasetSpec
from gpuetl.lake import Lake, Unit, read

EPOCH = dt.date(1970, 1, 1)


class CalendarError(ValueError):
    """The lake has no trading calendar over the rows of a dataset that needs one (a usage error: exit 2)."""


@dataclasses.dataclass(frozen=True)
class Planned:
    unit: Unit
    rows: pa.Table  # the unit's rows, lake-typed (the fields the files had, and FILE)
    final: bool
    held: bool  # the lake already holds the unit as final: compared, never written


@dataclasses.dataclass
class ImportPlan:
    ds: DatasetSpec
    window: tuple[dt.date, dt.date] | None
    units: list[Planned]
    derived: Derived
    closed_day: int = 0
    missing_days: list[dt.date] = dataclasses.field(default_factory=list)


def window(ds: DatasetSpec, table: pa.Table, start: dt.date | None,
           end: dt.date | None) -> tuple[tuple[dt.date, dt.date] | None, pa.Table]:
    """The window (`start` .. `end`, by default the rows' first .. last date, never before the dataset's first
    J-Quants date; None for no rows and no window) and the rows inside it, sorted by date."""
    date_col = ds.date_field
    assert date_col is not None
    dates = table.column(date_col)
    if not table.num_rows and (start is None or end is None):
        return None, table
    lo = max(start or pc.min(dates).as_py(), dt.date.fromisoformat(ds.since))
    hi = end or pc.max(dates).as_py()
    inside = pc.and_(pc.greater_equal(dates, pa.scalar(lo, pa.date32())),
                     pc.less_equal(dates, pa.scalar(hi, pa.date32())))
    table = table.filter(inside)
    return (lo, hi), table.take(pc.sort_indices(table, [(date_col, "ascending")]))


def plan_import(ds: DatasetSpec, table: pa.Table, files: Sequence[Path], lake: Lake,
                span: tuple[dt.date, dt.date] | None, today: dt.date, chunk_days: int) -> ImportPlan:
    """The units of `ds` that `table`'s rows (inside the window `span`, sorted by date: `window`) fill in `lake`
    (read only: nothing is written)."""
    out = ImportPlan(ds, span, [], Derived([]))
    if span is None or span[0] > span[1]:
        return out
    lo, hi = span
    days = _days(table.column(ds.date_field or ""))
    row_days = sorted({EPOCH + dt.timedelta(days=int(d)) for d in np.unique(days)})
    calendar = _calendar(ds, lake, row_days, chunk_days, out)
    if ds.fetch == "date":
        _date_units(ds, table, days, row_days, files, lake, lo, hi, today, chunk_days, calendar, out)
    else:
        _range_units(ds, table, days, row_days, files, lake, lo, hi, today, chunk_days, calendar, out)
    return out


def _calendar(ds: DatasetSpec, lake: Lake, row_days: list[dt.date], chunk_days: int, out: ImportPlan) -> Calendar:
    """The calendar the rows are placed against; for daily bars, derived where the lake has none."""
    if ds.name == "calendar":
        return Calendar({})
    if ds.name != "bars_daily":
        return Calendar.of(lake_calendar(lake))
    before = derived_units(lake.root, lake.manifest).get("calendar", [])
    held = set(row_days)
    if lake.manifest.units(ds.name):
        held.update(d for d in read(lake.root, ds.name, columns=["Date"]).column("Date").to_pylist() if d)
    out.derived = derive(lake, held, before, chunk_days)
    tables = [lake_calendar(lake, leave_out=before)] + [t for _, t in out.derived.units]
    return Calendar.of(pa.concat_tables(tables))


def _date_units(ds: DatasetSpec, table: pa.Table, days: np.ndarray, row_days: list[dt.date], files: Sequence[Path],
                lake: Lake, lo: dt.date, hi: dt.date, today: dt.date, chunk_days: int, calendar: Calendar,
                out: ImportPlan) -> None:
    need = (row_days[0], row_days[-1]) if ds.dense and row_days else (lo, hi)
    if not calendar.covers(*need):
        span = calendar.span
        has = f"covers {span[0]} .. {span[1]}" if span else "has none"
        raise CalendarError(
            f"{ds.name} needs the lake's trading calendar over {need[0]} .. {need[1]} (one unit per open day), and the "
            f"lake {has}: import the calendar first (gpuetl import --dataset calendar FILE) or the daily bars (which "
            "derive it), or fetch it (gpuetl fetch --datasets calendar)")
    closed = [d for d in row_days if calendar.closed(d)]
    if closed and ds.dense:
        _refuse_closed(ds, table, files, closed)
    out.closed_day = sum(b - a for a, b in (_slice(days, d, d) for d in closed))
    opened = calendar.open_days(lo, hi)
    with_rows = set(row_days)
    no_trading = {d for d in opened if not ds.has_rows_on(d.isoformat())}  # a unit with no rows, as a fetch writes
    candidates = sorted((with_rows | no_trading) & set(opened)) if ds.dense else sorted(set(opened) | set(closed))
    if ds.dense:
        out.missing_days = [d for d in opened if d not in with_rows and d not in no_trading]
    plan = plan_dataset(ds, lake, lo, hi, {ds.calendar: candidates}, today, chunk_days)
    todo = {u.id for u in plan.units}
    for day in candidates:
        unit = Unit.day(day)
        a, b = _slice(days, day, day)
        out.units.append(Planned(unit, table.slice(a, b - a), plan.is_final(unit), unit.id not in todo))


def _range_units(ds: DatasetSpec, table: pa.Table, days: np.ndarray, row_days: list[dt.date], files: Sequence[Path],
                 lake: Lake, lo: dt.date, hi: dt.date, today: dt.date, chunk_days: int, calendar: Calendar,
                 out: ImportPlan) -> None:
    if ds.name != "calendar":
        closed = [d for d in row_days if calendar.closed(d)]
        if closed:
            _refuse_closed(ds, table, files, closed)
        with_rows = set(row_days)
        out.missing_days = [d for d in calendar.open_days(lo, hi) if d not in with_rows]
    else:
        with_rows = set(row_days)
        out.missing_days = [d for d in (lo + dt.timedelta(days=i) for i in range((hi - lo).days + 1))
                            if d not in with_rows]
    plan = plan_dataset(ds, lake, lo, hi, {}, today, chunk_days)
    for unit in plan.units:
        a, b = _slice(days, unit.start, unit.end)
        if b > a or not ds.dense:
            out.units.append(Planned(unit, table.slice(a, b - a), plan.is_final(unit), False))
    for uid, rec in sorted(lake.manifest.units(ds.name).items()):
        unit = Unit.parse(uid)
        a, b = _slice(days, unit.start, unit.end)
        if rec.final and unit.kind == "range" and lo <= unit.start and unit.end <= hi and (b > a or not ds.dense):
            out.units.append(Planned(unit, table.slice(a, b - a), True, True))


def _refuse_closed(ds: DatasetSpec, table: pa.Table, files: Sequence[Path], closed: list[dt.date]) -> None:
    day = closed[0]
    date_col = ds.date_field
    assert date_col is not None
    rows = table.filter(pc.equal(table.column(date_col), pa.scalar(day, pa.date32())))
    where = sorted({str(files[i]) for i in rows.column(FILE).to_pylist()})
    more = f" and {len(closed) - 1} more day(s)" if len(closed) > 1 else ""
    raise RowError(f"{ds.name}: {where[0]} has rows on {day}{more}, a day the trading calendar says is closed; a "
                   f"{ds.name} row on a closed day means the file or the calendar is wrong: remove those rows, or "
                   "import the right calendar first")


def _days(dates: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Dates as days since 1970 (int32), for slicing the sorted rows."""
    days = pc.cast(dates, pa.int32()).to_numpy(zero_copy_only=False)  # host-ok: files read on the host (Arrow)
    return np.asarray(days, dtype=np.int64)


def _slice(days: np.ndarray, a: dt.date, b: dt.date) -> tuple[int, int]:
    """The row range [i, j) of the sorted `days` dated in [a, b]."""
    lo, hi = (a - EPOCH).days, (b - EPOCH).days
    return int(np.searchsorted(days, lo, "left")), int(np.searchsorted(days, hi, "right"))
