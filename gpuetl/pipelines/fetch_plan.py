"""What a fetch must request: which datasets, and which of their units the lake still lacks.

Planning is pure (no I/O beyond reading the manifest) so it can be tested without a server: datasets
are checked against the catalogue, the plan and the API version; `date` datasets get one unit per
business day of their calendar kind (never per calendar day, never per code); `range` datasets get
from/to chunks over the gaps the manifest leaves; `latest` datasets one snapshot per fetch day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import pyarrow as pa

from gpuetl.jquants import spec
from gpuetl.jquants.errors import PlanError, plans_with
from gpuetl.lake import Lake, Unit
from gpuetl.lake.units import chunks

log = logging.getLogger(__name__)

JST = dt.timezone(dt.timedelta(hours=9), "JST")
# HolDiv values that are trading days (API-NOTES §5.1): "3" is an OSE-only holiday-trading day.
TRADING_DAYS: Mapping[str, frozenset[str]] = {"equity": frozenset({"1", "2"}),
                                             "derivatives": frozenset({"1", "2", "3"})}


class FetchInputError(ValueError):
    """Bad arguments to a fetch (dates, dataset names); nothing was requested."""


@dataclasses.dataclass(frozen=True)
class DatasetPlan:
    dataset: spec.Dataset
    units: tuple[Unit, ...]  # still to fetch, in date order
    complete: int  # units in the window that the lake already holds
    final_before: dt.date  # units ending before this day are final; later ones are fetched again next run

    def is_final(self, unit: Unit) -> bool:
        return unit.end < self.final_before


def today_jst() -> dt.date:
    """The J-Quants day: data for a day is published that evening Tokyo time."""
    return dt.datetime.now(JST).date()


def parse_day(value: dt.date | str, what: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise FetchInputError(f"{what} {value!r} is not a date (YYYY-MM-DD)") from None


def select(
    names: Sequence[str] | None,
    default: Sequence[str],
    plan: spec.Plan,
    api_version: Literal["v2", "v1"],
) -> tuple[list[spec.Dataset], dict[str, str]]:
    """The datasets to fetch (catalogue order) and the skipped ones with why.

    Explicitly requested datasets the plan or API version cannot serve are errors; defaults are skipped.
    """
    catalogue = spec.datasets()
    explicit = names is not None
    wanted = list(dict.fromkeys(names if names is not None else default))
    unknown = [n for n in wanted if n not in catalogue]
    if unknown:
        raise FetchInputError(f"unknown dataset(s) {', '.join(unknown)}; valid: {', '.join(catalogue)}")
    chosen: list[spec.Dataset] = []
    skipped: dict[str, str] = {}
    for name in catalogue:
        if name not in wanted:
            continue
        ds = catalogue[name]
        why = None
        if not ds.available_on(plan):
            why = f"not available on the {plan} plan (needs {plans_with(ds)})"
        elif api_version == "v1" and ds.v1_path is None:
            why = "has no V1 endpoint"
        elif ds.fetch == "code":
            why = "can only be fetched per code"
        if why is None:
            chosen.append(ds)
        elif explicit:
            raise PlanError(f"{name} is {why}; drop it from --datasets or change --plan")
        else:
            log.warning("skipping %s: %s", name, why)
            skipped[name] = why
    return chosen, skipped


def business_days(calendar: pa.Table, kind: str, start: dt.date, end: dt.date) -> list[dt.date]:
    """Trading days of `kind` ("equity" / "derivatives") in [start, end] from calendar rows."""
    ok = TRADING_DAYS[kind]
    days = {d for d, h in zip(calendar.column("Date").to_pylist(), calendar.column("HolDiv").to_pylist(),
                              strict=True) if h in ok and d is not None and start <= d <= end}
    return sorted(days)


def weekdays(start: dt.date, end: dt.date) -> list[dt.date]:
    """Mon-Fri in [start, end]: the fallback when no calendar can be fetched (holidays answer empty)."""
    n = (end - start).days + 1
    return [d for d in (start + dt.timedelta(days=i) for i in range(n)) if d.weekday() < 5]


def plan_dataset(
    ds: spec.Dataset,
    lake: Lake,
    start: dt.date,
    end: dt.date,
    days: Mapping[str, Sequence[dt.date]],
    today: dt.date,
    chunk_days: int,
) -> DatasetPlan:
    """The units of `ds` in [start, end] the lake lacks (or holds only provisionally)."""
    first = max(start, dt.date.fromisoformat(ds.since))
    if ds.fetch == "latest":
        units: Iterable[Unit] = [Unit.snapshot(today)]
    elif first > end:
        units = []
    elif ds.fetch == "date":
        units = [Unit.day(d) for d in days[ds.calendar] if first <= d <= end]
    elif ds.fetch == "range":
        units = [Unit.span(a, b) for gap in lake.missing_ranges(ds, first, end) for a, b in chunks(*gap, chunk_days)]
        covered = sum(1 for a, b in lake.manifest.covered(ds.name) if a <= end and b >= first)
        todo = tuple(units)
        return DatasetPlan(ds, todo, covered, today)
    else:
        raise FetchInputError(f"{ds.name}: fetch kind {ds.fetch!r} is not supported")
    all_units = list(units)
    todo = tuple(u for u in all_units if not lake.complete(ds, u))
    # snapshots are final on the day they are taken: a second run that day requests nothing
    final_before = today + dt.timedelta(days=1) if ds.fetch == "latest" else today
    return DatasetPlan(ds, todo, len(all_units) - len(todo), final_before)
