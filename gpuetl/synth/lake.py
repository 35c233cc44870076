"""Write a synthetic market straight into a raw lake, unit for unit as `gpuetl fetch` would record it.

The units come from the fetch planner itself (one per business day, from/to chunks, snapshots) and each
unit holds the rows the fake J-Quants server answers for it (rows whose date field falls in the unit),
so a lake written here equals one fetched from the demo server, and a later fetch over the same range
requests nothing. For benchmarks at sizes where going through HTTP would only measure the loopback.
Snapshot-only datasets (the earnings calendar) also get the daily history a daily fetch accumulates
(`write_snapshot_history`; `fetch --demo` records the same).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
from rich.progress import Progress

from gpuetl.fetch.plan import plan_dataset
from gpuetl.jquants import schema, spec
from gpuetl.lake import Lake, Unit
from gpuetl.lake.units import business_days
from gpuetl.synth.market import SNAPSHOTS, SyntheticMarket


@dataclasses.dataclass(frozen=True)
class SynthSummary:
    rows: dict[str, int]
    units: dict[str, int]
    today: dt.date


def market_today(market: SyntheticMarket) -> dt.date:
    """The equity business day after the market's last date (what the demo server calls today)."""
    days = market.business_days("equity")
    end = np.datetime64(market.config.end)
    after = days[days > end]
    return after[0].date() if len(after) else (days[-1] + np.timedelta64(1, "D")).date()


def write_lake(market: SyntheticMarket, root: str | Path, datasets: Sequence[str], *, chunk_days: int,
               today: dt.date | None = None, progress: bool = True) -> SynthSummary:
    lake = Lake(root)
    start, end = dt.date.fromisoformat(market.config.start), dt.date.fromisoformat(market.config.end)
    today = today or market_today(market)
    calendar = schema.to_table(spec.get("calendar"), market.calendar)
    days = {kind: business_days(calendar, kind, start, end) for kind in ("equity", "derivatives")}
    rows: dict[str, int] = {}
    units: dict[str, int] = {}
    chosen = [spec.get(name) for name in datasets]
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("synth", total=len(chosen))
        for ds in chosen:
            bar.update(task, description=f"synth {ds.name}")
            plan = plan_dataset(ds, lake, start, end, days, today, chunk_days)
            table = schema.to_table(ds, market.table(ds.name))
            rows[ds.name], units[ds.name] = 0, len(plan.units)
            for unit, part in _by_unit(ds, table, plan.units):
                lake.write(ds, unit, part, final=plan.is_final(unit))
                rows[ds.name] += part.num_rows
            lake.flush()
            market.tables.release(ds.name)  # keep peak memory to one dataset at a time
            bar.advance(task)
    for name, n in write_snapshot_history(market, root, datasets, start, end).items():
        units[name] += n
    return SynthSummary(rows, units, today)


def write_snapshot_history(market: SyntheticMarket, root: str | Path, datasets: Sequence[str], first: dt.date,
                           last: dt.date) -> dict[str, int]:
    """Record, for each snapshot-only dataset among `datasets`, one snapshot per business day in [first, last]
    stamped with that day, as a daily `gpuetl fetch` would have accumulated (J-Quants serves only the current
    schedule, so no fetch can recover the past ones). Returns the units written per dataset."""
    lake = Lake(root)
    written: dict[str, int] = {}
    days = [d.date() for d in market.business_days("equity") if first <= d.date() <= last]
    for name in (n for n in datasets if n in SNAPSHOTS):
        ds = spec.get(name)
        todo = [d for d in days if not lake.complete(ds, Unit.snapshot(d))]
        for day in todo:
            lake.write(ds, Unit.snapshot(day), schema.to_table(ds, market.snapshot(name, day)), final=True)
        lake.flush()
        written[name] = len(todo)
    return written


def _by_unit(ds: spec.DatasetSpec, table: pa.Table, units: Sequence[Unit]) -> list[tuple[Unit, pa.Table]]:
    """Slices of `table` per unit: rows whose date field lies in the unit (all rows for a snapshot)."""
    if ds.fetch == "latest" or ds.date_field is None:
        return [(u, table) for u in units]
    dates = table.column(ds.date_field).cast(pa.int32()).to_numpy(zero_copy_only=False)
    order = np.argsort(dates, kind="stable")
    table, dates = table.take(pa.array(order)), dates[order]
    epoch = dt.date(1970, 1, 1)
    out = []
    for u in units:
        lo = np.searchsorted(dates, (u.start - epoch).days, "left")
        hi = np.searchsorted(dates, (u.end - epoch).days, "right")
        out.append((u, table.slice(lo, hi - lo)))
    return out
