"""What an import reports: the summary (dataclass, JSON, rich table). Tests read the dataclass; people the table."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from rich.console import Console
from rich.table import Table

# How each kind of row that was not taken as it is was handled (the table's notes; docs/data.md has the same).
BAD_KINDS = {
    "unparseable": "a value that is not a number, date or flag: stored as null",
    "zero_price": "a price of 0 (a day without trades): stored as null",
    "duplicate": "the same row more than once: one kept",
    "closed_day": "a statement dated on a closed day: kept, in a unit of its own",
    "outside_window": "dated outside --start .. --end or before the dataset's first date: left out",
}
SHOWN_DAYS = 5


@dataclasses.dataclass
class DerivedCalendar:
    """The calendar units an import derived from the daily bars' dates."""

    units: int  # units derived (written, or already there with the same days)
    start: str
    end: str
    open_days: int
    closed_weekdays: int  # weekdays without bars: holidays, or days the files lack


@dataclasses.dataclass
class ImportSummary:
    dataset: str
    lake: str
    inputs: list[str]
    files: int = 0
    start: str | None = None  # the window
    end: str | None = None
    rows_read: int = 0  # data rows in the files
    rows: int = 0  # rows the window's units hold (after duplicates and rows outside the window)
    rows_written: int = 0
    units_written: int = 0
    units_already: int = 0  # units the lake held with the same rows
    units_differ: list[str] = dataclasses.field(default_factory=list)  # the lake holds other rows: kept, listed
    bad_rows: dict[str, int] = dataclasses.field(default_factory=dict)  # kind -> rows (see BAD_KINDS)
    unparseable: dict[str, int] = dataclasses.field(default_factory=dict)  # field -> values stored as null
    unknown_columns: dict[str, int] = dataclasses.field(default_factory=dict)  # column -> files it is in
    missing_days: int = 0  # open days in the window without rows (dense datasets): holes `lake verify` reports
    first_missing: list[str] = dataclasses.field(default_factory=list)
    derived_calendar: DerivedCalendar | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)


def render(summary: ImportSummary, console: Console) -> None:
    window = f"{summary.start} .. {summary.end}" if summary.start else "no rows"
    table = Table(title=f"import {summary.dataset} {window} -> {summary.lake}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_column("note")
    table.add_row("files", f"{summary.files:,}", "")
    table.add_row("rows read", f"{summary.rows_read:,}", "")
    table.add_row("rows in the window", f"{summary.rows:,}", "after duplicates")
    table.add_row("units written", f"{summary.units_written:,}", f"{summary.rows_written:,} rows")
    table.add_row("units already there", f"{summary.units_already:,}", "same rows in the lake")
    if summary.units_differ:
        table.add_row("[yellow]units that differ[/yellow]", f"{len(summary.units_differ):,}",
                      "the lake's kept: " + ", ".join(summary.units_differ[:3]))
    for kind, n in summary.bad_rows.items():
        note = BAD_KINDS.get(kind, "")
        if kind == "unparseable":
            note += " (" + ", ".join(f"{f} {c:,}" for f, c in sorted(summary.unparseable.items())) + ")"
        table.add_row(f"[yellow]{kind}[/yellow]", f"{n:,}", note)
    if summary.unknown_columns:
        table.add_row("[yellow]unknown columns[/yellow]", f"{len(summary.unknown_columns)}",
                      "not imported: " + ", ".join(sorted(summary.unknown_columns)))
    if summary.missing_days:
        table.add_row("[yellow]open days without rows[/yellow]", f"{summary.missing_days:,}",
                      ", ".join(summary.first_missing) + (" ..." if summary.missing_days > SHOWN_DAYS else ""))
    d = summary.derived_calendar
    if d is not None:
        table.add_row("derived calendar", f"{d.units} unit(s)",
                      f"{d.start} .. {d.end}: {d.open_days:,} open days, {d.closed_weekdays:,} weekdays without bars "
                      "closed (not final: a fetch replaces it)")
    table.add_row("seconds", f"{summary.seconds:.1f}", "")
    console.print(table)
