"""A day chunk of the dataset build: every code's rows of a run of days within a year, from the spill store to
the year's folder.

The chunk's rows, and the `plan.overlap` business days before it that the per-day ops read (from the same year's
spill or the year before's), become one (Code, Date) panel: the ops whose axis is `day` run on it in config order
(per-day ranks, sector-relative returns), then the written rows get their normalised view (each column as its op
declares: the day's z-score across codes, the fitted time-series z-score, or the raw value; of the float32 value
the dataset stores, so it can be recomputed) and go to `data/year=YYYY/part-<k>.parquet` (the year's k-th chunk),
float32 as soon as final. Nothing here spans more than the chunk and its overlap, which bounds a task's memory
(`build.day_rows`).
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


def chunk_part(backend: Backend, plan: BuildPlan, year: int, index: int, spill: Path,
               series_z: dict[str, np.ndarray], folder: Path) -> YearResult:
    """Run day chunk `index` of `year` in `plan` from `spill` into `folder` (see the module docstring); `series_z`
    holds the fitted z-score of each time_series column on `plan.dates`. The result counts the chunk's rows
    (`merge_years` adds a year's chunks up)."""
    xp = backend.xp
    timer = StageTimer(backend)
    chunks = plan.year_chunks(year)
    first, last = chunks[index]
    with timer("gather"):  # sorted by (Code, Date): parts are contiguous code ranges in order
        rows = _spilled(backend, plan, spill, year, None, (first, last))
    day_cols: dict[str, Any] = {}
    day_steps = plan.day_steps
    if day_steps:
        with timer("days"):
            day_cols = _day_ops(backend, plan, year, first, plan.reads_from(first), rows, spill, day_steps, timer)
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
        (folder / f"year={year}").mkdir(parents=True, exist_ok=True)
        backend.write_parquet(data | normed, folder / f"year={year}" / f"part-{index}.parquet",
                              dictionary=["Code", *(c for c in normed if c.endswith("_missing"))])
    stats_ = backend.memory_stats()
    written = backend.to_host(keys["Code"].unique())  # host-ok: the year's few thousand codes, for the code count
    return YearResult(year, int(part.n), [str(c) for c in written], len(part.unique_dates), valid,
                      first_day, timer.timings, stats_["peak_bytes"] if stats_ else None, peak_host_bytes())


def merge_years(chunks: list[YearResult]) -> list[YearResult]:
    """One YearResult per year from its chunks' (in chunk order): rows, dates and values added up, the first day
    with a value the earliest, the codes in order of first appearance, seconds added, peaks the largest."""
    out: dict[int, YearResult] = {}
    for c in chunks:
        y = out.get(c.year)
        if y is None:
            out[c.year] = dataclasses.replace(c, codes=list(c.codes), valid=dict(c.valid), first=dict(c.first),
                                              timings=dict(c.timings))
            continue
        y.rows += c.rows
        y.dates += c.dates
        seen = set(y.codes)
        y.codes += [code for code in c.codes if code not in seen]
        for col, n in c.valid.items():
            y.valid[col] += n
            a, b = y.first[col], c.first[col]
            y.first[col] = b if a is None else a if b is None else min(a, b)
        for name, secs in c.timings.items():
            y.timings[name] = y.timings.get(name, 0.0) + secs
        peaks = [p for p in (y.peak_device_bytes, c.peak_device_bytes) if p is not None]
        y.peak_device_bytes = max(peaks) if peaks else None
        y.peak_host_bytes = max(y.peak_host_bytes, c.peak_host_bytes)
    return [out[k] for k in sorted(out)]


def _spilled(backend: Backend, plan: BuildPlan, spill: Path, year: int, columns: list[str] | None,
             days: tuple[int, int]) -> Any:
    """The spilled rows of `year` (every code part, in order) dated in `days` [first, last] (None: no file)."""
    files = [str(p) for p in (spill_file(spill, i, year) for i in range(len(plan.parts))) if p.exists()]
    if not files:
        return None
    lo, hi = (np.datetime64(d, "D").astype("datetime64[ms]") for d in days)  # the reader compares any unit
    return backend.read_parquet(files, columns, [("Date", ">=", lo), ("Date", "<=", hi)])


def _day_ops(backend: Backend, plan: BuildPlan, year: int, first: int, start: int, rows: Any, spill: Path,
             steps: list[tuple[str, dict[str, Any]]], timer: StageTimer) -> dict[str, Any]:
    """The day ops on the chunk's rows (from `first`) and the overlap before it (from `start`); their outputs at
    the chunk's rows."""
    xdf, xp = backend.xdf, backend.xp
    inputs = ["Code", "Date", *(["S33"] if "sector" in plan.day_inputs else []),
              *(c for c in plan.day_inputs if c not in ("sector", "mkt_close"))]
    frames = [rows[inputs]]
    new_year = day_of(f"{year}-01-01")
    if start < first:  # the overlap: days before the chunk, from this year's spill and the year before's
        for y, lo, hi in ((year - 1, start, new_year - 1), (year, max(start, new_year), first - 1)):
            if lo <= hi:
                before = _spilled(backend, plan, spill, y, inputs, (lo, hi))
                if before is not None and len(before):
                    frames.insert(len(frames) - 1, before)
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
    # the chunk's own rows (every one dated from `first` on), in the same (Code, Date) order as `rows`
    at_chunk = xp.flatnonzero(panel.dates >= first)
    return {c: panel.columns[c][at_chunk] for c in made}

