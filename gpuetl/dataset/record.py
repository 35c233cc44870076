"""What a build read and wrote, recorded in metadata.json so that `gpuetl update` can tell what changed since.

- `inputs`: the span (first date written, last date, first date read) and, per raw dataset the build reads, a
  short hash per month of its units (id, rows, content hash), the month being that of the unit's earliest date
  (its first day, or an earlier row date). Only units dated up to the dataset's last date count, since a value
  never depends on data published after its date (tests/test_leakage.py); the trading calendar is the
  exception: it is published ahead and read ahead (the calendar features of a day look to its month's end), so
  every calendar unit counts. J-Quants rewrites history (corrections, adjustment factors added later): a month
  whose hash differs says that data from its first day on may have changed.
- `years`: per year written, its rows, dates, and per feature the rows with a value and the first day with one
  (what the coverage report sums), so a year kept as it was needs no reading.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from gpuetl.dataset.days import YearResult
from gpuetl.dataset.plan import BuildPlan
from gpuetl.dates import EPOCH
from gpuetl.lake.manifest import Manifest, UnitRecord

AHEAD = frozenset({"calendar"})  # datasets read before their dates: every unit counts


def iso(day: int) -> str:
    return (EPOCH + dt.timedelta(days=day)).isoformat()


def day(text: str) -> int:
    return (dt.date.fromisoformat(text) - EPOCH).days


def inputs_record(manifest: Manifest, plan: BuildPlan, datasets: Iterable[str]) -> dict[str, Any]:
    """The span of `plan` and the month hashes of the raw datasets it reads (and the calendar)."""
    last = int(plan.dates[-1])
    return {"first_date": iso(plan.first_day), "last_date": iso(last), "read_from": iso(plan.read_from),
            "raw": raw_months(manifest, recorded_datasets(manifest, datasets), last)}


def recorded_datasets(manifest: Manifest, datasets: Iterable[str]) -> list[str]:
    """The datasets whose units the record hashes: those read, and the calendar where the lake has one."""
    return sorted(set(datasets) | (AHEAD & set(manifest.datasets())))


def earliest(unit_id: str, rec: UnitRecord) -> dt.date:
    """The first day a unit's data can reach: its own first day, or an earlier row date it holds."""
    start = dt.date(int(unit_id[1:5]), int(unit_id[5:7]), int(unit_id[7:9]))  # Unit.id: d20240105, r20240101-...
    return min(start, dt.date.fromisoformat(rec.first)) if rec.first else start


def raw_months(manifest: Manifest, datasets: Iterable[str], last_day: int) -> dict[str, dict[str, str]]:
    """Per dataset, per month ("YYYY-MM") of the units' earliest dates: a 16-hex hash of the units' (id, rows,
    content hash), over the units dated up to `last_day` (every unit of a dataset read ahead)."""
    last = EPOCH + dt.timedelta(days=last_day)
    out: dict[str, dict[str, str]] = {}
    for name in datasets:
        months: dict[str, list[tuple[str, int, str]]] = {}
        for uid, rec in manifest.units(name).items():
            first = earliest(uid, rec)
            if first <= last or name in AHEAD:
                months.setdefault(f"{first:%Y-%m}", []).append((uid, rec.rows, rec.hash))
        out[name] = {m: hashlib.sha256(json.dumps(sorted(units)).encode()).hexdigest()[:16]
                     for m, units in sorted(months.items())}
    return out


def first_change(recorded: dict[str, Any], manifest: Manifest, datasets: Iterable[str]) -> tuple[int, str] | None:
    """The first day of the earliest month whose raw units differ from `recorded` (an `inputs` record), with what
    differs ("bars_daily 2024-03"), or None when the lake holds the same data up to the recorded last date."""
    now = raw_months(manifest, recorded_datasets(manifest, datasets), day(recorded["last_date"]))
    was: dict[str, dict[str, str]] = recorded["raw"]
    changed = sorted((month, name) for name in sorted(set(now) | set(was))
                     for month in set(now.get(name, {})) | set(was.get(name, {}))
                     if now.get(name, {}).get(month) != was.get(name, {}).get(month))
    if not changed:
        return None
    month, name = changed[0]
    return day(f"{month}-01"), f"{name} {month}"


def year_record(plan: BuildPlan, year: YearResult) -> dict[str, Any]:
    """A year's counts for metadata.json: rows, dates, and per feature (in dataset order) the rows with a value
    and the first day with one (days since 1970-01-01)."""
    return {"rows": year.rows, "dates": year.dates, "valid": [year.valid[c] for c in plan.kinds],
            "first": [year.first[c] for c in plan.kinds]}


def kept_year(plan: BuildPlan, year: int, record: dict[str, Any], codes: list[str]) -> YearResult:
    """The YearResult of a year kept as it was, from its record and the codes its file holds."""
    return YearResult(year, record["rows"], codes, record["dates"], dict(zip(plan.kinds, record["valid"], strict=True)),
                      dict(zip(plan.kinds, record["first"], strict=True)), {}, None, 0)
