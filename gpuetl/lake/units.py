"""Fetch units: the pieces of a dataset's history that are fetched, written and recorded as one.

A unit is one business day (`date`), one from/to chunk (`range`) or one snapshot of a dataset that has
no history (`snapshot`, stamped with the fetch date). Its id names its files
(`part-<id>.parquet`), so writing a unit again replaces its rows instead of adding to them: a crash
between writing the files and recording them in the manifest cannot duplicate rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import pyarrow as pa

UnitKind = Literal["date", "range", "snapshot"]
JST = dt.timezone(dt.timedelta(hours=9), "JST")
# HolDiv values that are trading days (API-NOTES §5.1): "3" is an OSE-only holiday-trading day.
TRADING_DAYS: Mapping[str, frozenset[str]] = {"equity": frozenset({"1", "2"}),
                                             "derivatives": frozenset({"1", "2", "3"})}
_PREFIX: dict[UnitKind, str] = {"date": "d", "range": "r", "snapshot": "s"}
_KIND = {v: k for k, v in _PREFIX.items()}


@dataclasses.dataclass(frozen=True, order=True)
class Unit:
    start: dt.date
    end: dt.date
    kind: UnitKind

    @property
    def id(self) -> str:
        if self.kind == "range":
            return f"r{self.start:%Y%m%d}-{self.end:%Y%m%d}"
        return f"{_PREFIX[self.kind]}{self.start:%Y%m%d}"

    @classmethod
    def day(cls, day: dt.date) -> Unit:
        return cls(day, day, "date")

    @classmethod
    def span(cls, start: dt.date, end: dt.date) -> Unit:
        if end < start:
            raise ValueError(f"range unit ends ({end}) before it starts ({start})")
        return cls(start, end, "range")

    @classmethod
    def snapshot(cls, day: dt.date) -> Unit:
        return cls(day, day, "snapshot")

    @classmethod
    def parse(cls, unit_id: str) -> Unit:
        kind = _KIND.get(unit_id[:1])
        if kind is None:
            raise ValueError(f"not a unit id: {unit_id!r}")
        a, _, b = unit_id[1:].partition("-")
        start = dt.datetime.strptime(a, "%Y%m%d").date()
        end = dt.datetime.strptime(b, "%Y%m%d").date() if b else start
        return cls(start, end, kind)

    def overlaps(self, start: dt.date, end: dt.date) -> bool:
        return self.start <= end and start <= self.end

    def __str__(self) -> str:
        return self.id


def gaps(
    start: dt.date, end: dt.date, covered: list[tuple[dt.date, dt.date]]
) -> list[tuple[dt.date, dt.date]]:
    """The sub-ranges of [start, end] (inclusive days) that no (a, b) in `covered` includes."""
    out: list[tuple[dt.date, dt.date]] = []
    cursor = start
    one = dt.timedelta(days=1)
    for a, b in sorted(covered):
        if b < cursor:
            continue
        if a > end:
            break
        if a > cursor:
            out.append((cursor, min(end, a - one)))
        cursor = max(cursor, b + one)
        if cursor > end:
            return out
    if cursor <= end:
        out.append((cursor, end))
    return out


def chunks(start: dt.date, end: dt.date, days: int) -> list[tuple[dt.date, dt.date]]:
    """[start, end] cut into consecutive pieces of at most `days` days."""
    if days < 1:
        raise ValueError(f"chunk size must be at least one day, got {days}")
    out = []
    step = dt.timedelta(days=days)
    a = start
    while a <= end:
        b = min(end, a + step - dt.timedelta(days=1))
        out.append((a, b))
        a = b + dt.timedelta(days=1)
    return out


def today_jst() -> dt.date:
    """The J-Quants day: data for a day is published that evening Tokyo time."""
    return dt.datetime.now(JST).date()


def business_days(calendar: pa.Table, kind: str, start: dt.date | None = None,
                  end: dt.date | None = None) -> list[dt.date]:
    """Trading days of `kind` ("equity" / "derivatives") in [start, end] (default: all) from calendar rows: the
    days a `date` dataset has one unit each."""
    ok = TRADING_DAYS[kind]
    days = {d for d, h in zip(calendar.column("Date").to_pylist(), calendar.column("HolDiv").to_pylist(),
                              strict=True)
            if h in ok and d is not None and (start is None or d >= start) and (end is None or d <= end)}
    return sorted(days)


def has_unit_files(root: str | Path) -> bool:
    """Whether a folder holds lake unit files (`<dataset>/year=*/month=*/part-<unit>.parquet`): without a manifest,
    a lake whose manifest was lost, which nothing may take for a killed writer's leftovers."""
    return next(Path(root).glob("*/year=*/month=*/part-*.parquet"), None) is not None
