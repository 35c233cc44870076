"""The trading calendar an import places rows against: the lake's, or one derived from the daily bars.

Date datasets have one unit per open day of the calendar (as `fetch` makes them), so an import needs one. Where
the lake has none over the bars' days, it is **derived from the bars' dates: every weekday with bars open
(HolDiv "1"), every other day closed ("0")**, over the span the bars (already in the lake and imported) cover, in
range units as a fetch of the calendar makes them. A derived unit is recorded not final, so a later `gpuetl fetch`
(with a key) asks for the real calendar over it and replaces it; the import's note file (`provenance`) says
which units were derived, and a later import of more bars derives them again. A calendar that was fetched or
imported from a file is never replaced by a derived one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from gpuetl.jquants import spec
from gpuetl.lake import Lake, Unit, read
from gpuetl.lake.units import TRADING_DAYS, chunks, gaps

OPEN, CLOSED = "1", "0"


@dataclasses.dataclass(frozen=True)
class Calendar:
    """The days a calendar covers and which of them are open (equity trading days)."""

    days: dict[dt.date, bool]  # day -> open

    @property
    def span(self) -> tuple[dt.date, dt.date] | None:
        return (min(self.days), max(self.days)) if self.days else None

    def covers(self, lo: dt.date, hi: dt.date) -> bool:
        span = self.span
        return span is not None and span[0] <= lo and hi <= span[1]

    def open_days(self, lo: dt.date, hi: dt.date) -> list[dt.date]:
        return sorted(d for d, is_open in self.days.items() if is_open and lo <= d <= hi)

    def closed(self, day: dt.date) -> bool:
        """Whether the calendar says `day` is closed (a day it does not cover is not known to be closed)."""
        return self.days.get(day, True) is False

    @classmethod
    def of(cls, table: pa.Table) -> Calendar:
        ok = TRADING_DAYS["equity"]
        return cls({d: h in ok for d, h in zip(table.column("Date").to_pylist(), table.column("HolDiv").to_pylist(),
                                                 strict=True) if d is not None})


@dataclasses.dataclass(frozen=True)
class Derived:
    """Calendar units derived from the bars: each unit's rows."""

    units: list[tuple[Unit, pa.Table]]

    @property
    def open_days(self) -> int:
        return sum(pc.sum(pc.equal(t.column("HolDiv"), OPEN)).as_py() or 0 for _, t in self.units)

    @property
    def closed_weekdays(self) -> int:
        """Weekdays marked closed (no bars): holidays, or days the bars lack."""
        return sum(1 for _, t in self.units
                   for d, h in zip(t.column("Date").to_pylist(), t.column("HolDiv").to_pylist(), strict=True)
                   if h == CLOSED and d.weekday() < 5)


def lake_calendar(lake: Lake, leave_out: Collection[str] = ()) -> pa.Table:
    """The lake's calendar rows (Date, HolDiv), without those of the units `leave_out` names."""
    cal = spec.get("calendar")
    units = lake.manifest.units(cal.name)
    if not units:
        return pa.table({"Date": pa.array([], pa.date32()), "HolDiv": pa.array([], pa.string())})
    table = read(lake.root, cal.name, columns=["Date", "HolDiv"])
    for uid in leave_out:
        if uid in units:
            u = Unit.parse(uid)
            dates = table.column("Date")
            inside = pc.and_(pc.greater_equal(dates, pa.scalar(u.start, pa.date32())),
                             pc.less_equal(dates, pa.scalar(u.end, pa.date32())))
            table = table.filter(pc.invert(inside))
    return table


def derive(lake: Lake, bar_days: Iterable[dt.date], derived_before: Collection[str], chunk_days: int) -> Derived:
    """Calendar units over the span of `bar_days` that no calendar unit covers but those derived before (they are
    derived again, from every bar day now known): weekdays with bars open, other days closed."""
    days = sorted(set(bar_days))
    if not days:
        return Derived([])
    cal = spec.get("calendar")
    kept = [Unit.parse(uid) for uid in lake.manifest.units(cal.name) if uid not in derived_before]
    covered = [(u.start, u.end) for u in kept]
    have = set(days)
    units = []
    for a, b in gaps(days[0], days[-1], covered):
        for lo, hi in chunks(a, b, chunk_days):
            dates = [lo + dt.timedelta(days=i) for i in range((hi - lo).days + 1)]
            hol = [OPEN if d.weekday() < 5 and d in have else CLOSED for d in dates]
            units.append((Unit.span(lo, hi), pa.table({"Date": pa.array(dates, pa.date32()),
                                                       "HolDiv": pa.array(hol, pa.string())})))
    return Derived(units)
