"""A year of the dataset build: every code's rows of one year, from the spill store to the dataset's year file.

The rows of the year, and the `plan.overlap` business days before it that the per-day ops read, become one
(Code, Date) panel: the ops whose axis is `day` run on it in config order (per-day ranks, sector-relative
returns), then the written rows get their normalised view (each column as its op declares: the day's
z-score across codes, the fitted time-series z-score, or the raw value; of the float32 value the dataset
stores, so it can be recomputed) and go to `data/year=YYYY/part-0.parquet`, float32 as soon as final.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from gpuetl import ops
from gpuetl.backend import Backend
from gpuetl.dataset.codes import SELECTED, sector_ids, spill_file
from gpuetl.dataset.plan import BuildPlan
from gpuetl.dataset.registry import REGISTRY
from gpuetl.dates import day_of
from gpuetl.features.normalize import ts_z_name
from gpuetl.features.panel import Panel
from gpuetl.lake.manifest import Manifest
from gpuetl.lake.reader import read_raw
from gpuetl.stages import StageTimer, peak_host_bytes


@dataclasses.dataclass
class YearResult:
    year: int
    rows: int
    codes: list[str]  # the codes written this year
    dates: int
    valid: dict[str, int]  # rows with a value, per feature
    first: dict[str, int | None]  # the first day with a value, per feature
    timings: dict[str, float]
    peak_device_bytes: int | None
    peak_host_bytes: int


def year_part(backend: Backend, plan: BuildPlan, year: int, spill: Path, series_z: dict[str, np.ndarray],
              folder: Path) -> YearResult:
    """Run the year `year` of `plan` from `spill` into `folder` (see the module docstring); `series_z` holds the
    fitted z-score of each time_series column on `plan.dates`."""
    xp = backend.xp
    timer = StageTimer(backend)
    start, _first, _last = plan.year_window(year)
    parts = range(len(plan.parts))
    with timer("gather"):
        files = [str(p) for p in (spill_file(spill, i, year) for i in parts) if p.exists()]
        rows = backend.read_parquet(files)  # sorted by (Code, Date): parts are contiguous code ranges in order
    day_cols: dict[str, Any] = {}
    day_steps = plan.day_steps
    if day_steps:
        with timer("days"):
            day_cols = _day_ops(backend, plan, year, start, rows, spill, day_steps, timer)
    with timer("write"):
        keep = xp.flatnonzero(backend.to_array(rows[SELECTED].astype("float64")) == 1.0)
        keys = rows[["Code", "Date"]].iloc[keep].reset_index(drop=True)
        codes, _ = keys["Code"].factorize()
        part = Panel(backend, xp.asarray(codes), backend.days(keys["Date"]), {})
        for col in plan.kinds:  # as float32, the value the dataset stores (and its z-scores are computed from)
            values = day_cols.pop(col) if col in day_cols else backend.to_array(rows[col])
            part.columns[col] = values[keep].astype(xp.float32)
        made = {col: backend.to_array(rows[col])[keep].astype(xp.float32) for col in plan.targets}
        del rows, day_cols  # a year's spilled rows are the largest thing here: gone before the normalised view
        data: dict[str, Any] = {"Code": keys["Code"], "Date": keys["Date"]}
    normed: dict[str, Any] = {}
    norm = plan.cfg.normalize
    if norm.method != "none":
        with timer("normalize"):
            dates = xp.asarray(plan.dates)
            for col, z in series_z.items():  # the fitted time-series z-scores, per date
                part.date_columns[ts_z_name(col)] = part.align_dates(dates, xp.asarray(z))
            params = {"columns": plan.kinds, "method": norm.method, "clip": norm.clip, "suffix": norm.suffix}
            normed = ops.run(REGISTRY.get("normalize", "normalize"), part, params, [*part.columns, *part.date_columns])
    valid: dict[str, int] = {}
    first_day: dict[str, int | None] = {}
    for col in plan.kinds:
        x32 = part.columns.pop(col)
        has = ~xp.isnan(x32)
        valid[col] = int(has.sum())  # host-ok: one count per column and year, for the coverage report
        first_day[col] = int(part.dates[has].min()) if valid[col] else None  # host-ok: the first day with a value
        data[col] = x32
    with timer("write"):
        data |= made
        (folder / f"year={year}").mkdir(parents=True)
        backend.write_parquet(data | normed, folder / f"year={year}" / "part-0.parquet",
                              dictionary=["Code", *(c for c in normed if c.endswith("_missing"))])
    stats_ = backend.memory_stats()
    written = backend.to_host(keys["Code"].unique())  # host-ok: the year's few thousand codes, for the code count
    return YearResult(year, int(part.n), [str(c) for c in written], len(part.unique_dates), valid,
                      first_day, timer.timings, stats_["peak_bytes"] if stats_ else None, peak_host_bytes())


def _day_ops(backend: Backend, plan: BuildPlan, year: int, start: int, rows: Any, spill: Path,
             steps: list[tuple[str, dict[str, Any]]], timer: StageTimer) -> dict[str, Any]:
    """The day ops on the year's rows and the overlap before it; their outputs at the year's rows."""
    xdf, xp = backend.xdf, backend.xp
    inputs = ["Code", "Date", *(["S33"] if "sector" in plan.day_inputs else []),
              *(c for c in plan.day_inputs if c not in ("sector", "mkt_close"))]
    frames = [rows[inputs]]
    if start < day_of(f"{year}-01-01"):  # the overlap: the last days of the year before
        files = [str(p) for p in (spill_file(spill, i, year - 1) for i in range(len(plan.parts))) if p.exists()]
        if files:
            before = backend.read_parquet(files, inputs)
            frames.insert(0, before.iloc[(backend.days(before["Date"]) >= start).nonzero()[0]])
    both = xdf.concat(frames, ignore_index=True).sort_values(["Code", "Date"], kind="stable").reset_index(drop=True)
    codes, _ = both["Code"].factorize()
    cols = {c: backend.to_array(both[c]) for c in inputs[2:] if c != "S33"}
    if "sector" in plan.day_inputs:
        cols["sector"] = sector_ids(backend, both["S33"])
    panel = Panel(backend, xp.asarray(codes), backend.days(both["Date"]), cols)
    if "mkt_close" in plan.day_inputs:

        topix = read_raw(backend, Manifest.load(plan.lake), "topix", ["Date", "C"]).sort_values("Date")
        panel.add_date_series("mkt_close", backend.days(topix["Date"]), backend.to_array(topix["C"]))
    made: list[str] = []
    for op, params in steps:
        with timer.op(f"feature:{op}"):
            out = ops.run(REGISTRY.get(op), panel, params, panel.columns)
            panel.columns.update(out)
            made += list(out)
    # the rows of the year's own files (every one dated in the year), in the same (Code, Date) order as `rows`
    at_year = xp.flatnonzero(panel.dates >= day_of(f"{year}-01-01"))
    return {c: panel.columns[c][at_year] for c in made}

