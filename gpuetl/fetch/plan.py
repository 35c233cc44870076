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
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Literal

from gpuetl.jquants import spec
from gpuetl.jquants.errors import PlanError, plans_with
from gpuetl.lake import Lake, Unit
from gpuetl.lake.units import chunks

log = logging.getLogger(__name__)


class FetchInputError(ValueError):
    """Bad arguments to a fetch (dates, dataset names); nothing was requested."""


@dataclasses.dataclass(frozen=True)
class DatasetPlan:
    dataset: spec.DatasetSpec
    units: tuple[Unit, ...]  # still to fetch, in date order
    complete: int  # units in the window that the lake already holds
    final_before: dt.date  # units ending before this day are final; later ones are fetched again next run

    def is_final(self, unit: Unit) -> bool:
        return unit.end < self.final_before


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
) -> tuple[list[spec.DatasetSpec], dict[str, str]]:
    """The datasets to fetch (catalogue order) and the skipped ones with why.

    Explicitly requested datasets the plan or API version cannot serve are errors; defaults are skipped.
    """
    catalogue = spec.datasets()
    explicit = names is not None
    wanted = list(dict.fromkeys(names if names is not None else default))
    unknown = [n for n in wanted if n not in catalogue]
    if unknown:
        raise FetchInputError(f"unknown dataset(s) {', '.join(unknown)}; valid: {', '.join(catalogue)}")
    chosen: list[spec.DatasetSpec] = []
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


def weekdays(start: dt.date, end: dt.date) -> list[dt.date]:
    """Mon-Fri in [start, end]: the fallback when no calendar can be fetched (holidays answer empty)."""
    n = (end - start).days + 1
    return [d for d in (start + dt.timedelta(days=i) for i in range(n)) if d.weekday() < 5]


def plan_dataset(
    ds: spec.DatasetSpec,
    lake: Lake,
    start: dt.date,
    end: dt.date,
    days: Mapping[str, Sequence[dt.date]],
    today: dt.date,
    chunk_days: int,
    redo: Collection[str] = (),
) -> DatasetPlan:
    """The units of `ds` in [start, end] the lake lacks (or holds only provisionally), and the recorded units
    `redo` names (ids of units whose files are bad: fetched again while the manifest still holds them, so a
    failed repair leaves the lake as it was; a snapshot only when it is today's, a past one cannot be fetched)."""
    first = max(start, dt.date.fromisoformat(ds.since))
    again = sorted(u for u in map(Unit.parse, redo) if u.overlaps(first, end))
    if ds.fetch == "latest":
        units: Iterable[Unit] = [Unit.snapshot(today)]
    elif first > end:
        units = []
    elif ds.fetch == "date":
        units = sorted({Unit.day(d) for d in days[ds.calendar] if first <= d <= end}
                       | {u for u in again if u.kind == "date"})
    elif ds.fetch == "range":
        units = [Unit.span(a, b) for gap in lake.missing_ranges(ds, first, end) for a, b in chunks(*gap, chunk_days)]
        covered = sum(1 for a, b in lake.manifest.covered(ds.name) if a <= end and b >= first)
        redone = [u for u in again if u.kind == "range" and lake.complete(ds, u)]
        todo = tuple(sorted([*units, *redone]))
        return DatasetPlan(ds, todo, covered - len(redone), today)
    else:
        raise FetchInputError(f"{ds.name}: fetch kind {ds.fetch!r} is not supported")
    all_units = list(units)
    ids = set(redo)
    todo = tuple(u for u in all_units if u.id in ids or not lake.complete(ds, u))
    # snapshots are final on the day they are taken: a second run that day requests nothing
    final_before = today + dt.timedelta(days=1) if ds.fetch == "latest" else today
    return DatasetPlan(ds, todo, len(all_units) - len(todo), final_before)
