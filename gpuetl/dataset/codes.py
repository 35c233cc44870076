"""A code part of the dataset build: a range of codes with their whole history, from the lake to the spill.

Read (bars and master of these codes only, TOPIX, the calendar), split adjustment, the enrichment ops, the
feature ops whose axis is `code` or `market` (in config order, each reading the columns of those before it;
a column no later op reads is stored as float32 at once, as the dataset stores it), and the targets. The rows
a year needs (from `plan.spill_from`) go to the spill store, one Parquet file per year; the per-date extremes
of each `time_series` column go back to the build, which fits their z-scores over every date.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from gpuetl import ops
from gpuetl.backend import Backend
from gpuetl.dataset.plan import BASE_COLUMNS, BuildError, BuildPlan
from gpuetl.dataset.registry import REGISTRY
from gpuetl.dates import BusinessCalendar, civil_from_days
from gpuetl.enrich import enrich
from gpuetl.enrich.context import has_data
from gpuetl.features.adjust import add_adjusted
from gpuetl.features.cross_section import day_stats
from gpuetl.features.panel import Panel
from gpuetl.lake.manifest import Manifest
from gpuetl.lake.reader import read_raw
from gpuetl.stages import StageTimer, peak_host_bytes

log = logging.getLogger(__name__)

BAR_COLUMNS = ["Code", "Date", "O", "H", "L", "C", "Vo", "Va", "AdjFactor", "UL", "LL"]
PRICE_COLUMNS = ["O", "H", "L", "C"]
UNIVERSES = {"prime": ("0111", "0101"), "prime_standard": ("0111", "0112", "0101", "0102")}
SELECTED = "_selected"  # spill column: 1 where the row is written (after the warm-up, in the universe)


@dataclasses.dataclass
class CodePartResult:
    index: int
    rows: int  # rows read (warm-up included)
    invalid_prices: int
    extremes: dict[str, tuple[np.ndarray, np.ndarray]]  # time_series column -> per-date (max, min) over its codes
    timings: dict[str, float]
    peak_device_bytes: int | None
    peak_host_bytes: int


def spill_file(spill: Path, index: int, year: int) -> Path:
    return spill / f"year={year}" / f"part-{index:05d}.parquet"


def code_part(backend: Backend, plan: BuildPlan, index: int, spill: Path) -> CodePartResult:
    """Run code part `index` of `plan` and write its rows to `spill` (see the module docstring)."""
    xp = backend.xp
    timer = StageTimer(backend)
    manifest = Manifest.load(plan.lake)
    codes = list(plan.parts[index])
    with timer("load"):
        bars, invalid = load_bars(backend, manifest, plan, codes)
        topix = read_raw(backend, manifest, "topix", ["Date", "C"], BuildError).sort_values("Date")
        master = load_master(backend, manifest, bars, codes)
        calendar = None
        if has_data(manifest, "calendar"):  # the plan says once when the lake has none
            cal = read_raw(backend, manifest, "calendar", ["Date", "HolDiv"], BuildError)
            calendar = BusinessCalendar.from_frame(backend, cal)
    with timer("panel"):
        frame, panel = build_panel(backend, bars, topix, master, xp.asarray(plan.dates))
        panel.calendar = calendar
        del bars, master
    keep_f64 = set(plan.day_inputs)  # the day ops read these later, as the one-step build read them: float64
    waiting: list[str] = []
    with timer("enrich"):
        for cols in enrich(backend, manifest, panel, frame, list(plan.enrich), timer).values():
            panel.columns.update(cols)
            waiting += list(cols)
        waiting = _finalize_unread(panel, waiting, plan.later[0] | keep_f64)
    with timer("features"):
        for i, (name, params) in enumerate(plan.steps):
            op = REGISTRY.get(name)
            if op.axis != "day":
                with timer.op(f"feature:{name}"):
                    cols = ops.run(op, panel, params, panel.columns)
                    panel.columns.update(cols)
                    waiting += list(cols)
            waiting = _finalize_unread(panel, waiting, plan.later[i + 1] | keep_f64)
    with timer("normalize"):  # the per-date extremes of time_series columns, of the values the dataset stores
        ts = [c for c in plan.time_series if c in panel.columns]
        stats = day_stats(panel, [panel.columns[c].astype(xp.float32).astype(xp.float64) for c in ts])
        extremes = {c: (backend.to_host(s.max), backend.to_host(s.min))  # host-ok: per-date summaries between tasks
                    for c, s in zip(ts, stats, strict=True)}
    with timer("targets"):
        made = ops.run(REGISTRY.get("targets", "target"), panel, {"horizons": plan.cfg.targets.horizons},
                       panel.columns)
        panel.columns.update(made)
        panel.finalize(made)
    with timer("spill"):
        _spill(backend, plan, panel, frame, index, spill)
    stats_ = backend.memory_stats()
    return CodePartResult(index, int(panel.n), invalid, extremes, timer.timings,
                          stats_["peak_bytes"] if stats_ else None, peak_host_bytes())


def load_bars(backend: Backend, manifest: Manifest, plan: BuildPlan, codes: list[str]) -> tuple[Any, int]:
    """The daily bars of `codes` from `plan.read_from` to the last date, with non-positive prices and
    negative volumes (errors in outside data) read as missing, and how many bars had them."""
    bars = read_raw(backend, manifest, "bars_daily", BAR_COLUMNS, BuildError, filters=[("Code", "in", codes)])
    days = backend.days(bars["Date"])
    keep = ((days >= plan.read_from) & (days <= int(plan.dates[-1]))).nonzero()[0]
    bars = bars.iloc[keep]
    bad_any = None
    for col in [*PRICE_COLUMNS, "Vo", "Va"]:
        bad = (bars[col] <= 0 if col in PRICE_COLUMNS else bars[col] < 0).fillna(False)
        bars[col] = bars[col].mask(bad)
        bad_any = bad if bad_any is None else bad_any | bad
    invalid = int(bad_any.sum()) if bad_any is not None else 0  # host-ok: one count for the summary
    if invalid:
        log.info("%d daily bars had non-positive prices or negative volumes: read as missing", invalid)
    return bars, invalid


def load_master(backend: Backend, manifest: Manifest, bars: Any, codes: list[str]) -> Any:
    """Each (Code, Date)'s 33-sector and market segment from the lake's master, of `codes`. A lake without a master
    (prices imported from files) gives no row: sectors and segments are unknown, so the features that need them are
    missing (the plan says so once), as for a master without S33."""
    if not has_data(manifest, "master"):
        master = bars[["Date", "Code"]].iloc[:0].reset_index(drop=True)
        master["S33"] = master["Code"]
        master["Mkt"] = master["Code"]
        return master
    return read_raw(backend, manifest, "master", ["Date", "Code", "S33", "Mkt"], BuildError,
                    filters=[("Code", "in", codes)])


def build_panel(backend: Backend, bars: Any, topix: Any, master: Any, date_index: Any = None) -> tuple[Any, Panel]:
    """Sort by (Code, Date), attach each day's sector and market segment, build the Panel (on `date_index`)."""
    frame = bars.merge(master, on=["Code", "Date"], how="left")
    frame = frame.sort_values(["Code", "Date"]).reset_index(drop=True)
    # a day whose master row is missing keeps the code's last known attributes (past only: no leakage)
    frame[["S33", "Mkt"]] = frame.groupby("Code", sort=True)[["S33", "Mkt"]].ffill()
    code_id, _ = frame["Code"].factorize()
    xp = backend.xp
    cols = {c: backend.to_array(frame[c].astype("float64")) for c in ("O", "H", "L", "C", "Vo", "Va", "AdjFactor")}
    cols |= {c: backend.to_array(frame[c].astype("float64")) for c in ("UL", "LL")}
    cols["sector"] = sector_ids(backend, frame["S33"])
    panel = Panel(backend, xp.asarray(code_id), backend.days(frame["Date"]), cols, date_index)
    add_adjusted(panel)
    panel.add_date_series("mkt_close", backend.days(topix["Date"]), backend.to_array(topix["C"]))
    return frame, panel


def sector_ids(backend: Backend, s33: Any) -> Any:
    """33-sector codes -> float ids (only equality matters: they key per-day sector groups), NaN if unknown."""
    xp = backend.xp
    ids, _ = s33.factorize()
    ids = xp.asarray(ids).astype(xp.float64)
    return xp.where(ids < 0, xp.nan, ids)


def _finalize_unread(panel: Panel, waiting: list[str], later: set[str] | frozenset[str]) -> list[str]:
    """Store the finished columns that no later op reads as float32; return those still to be read."""
    panel.finalize(c for c in waiting if c not in later)
    return [c for c in waiting if c in later]


def _spill(backend: Backend, plan: BuildPlan, panel: Panel, frame: Any, index: int, spill: Path) -> None:
    """The rows from `plan.spill_from`, one file per year: keys, the written flag, the columns the years need."""
    xp = backend.xp
    cfg = plan.cfg
    selected = panel.dates >= plan.first_day
    if cfg.universe != "all":
        member = frame["Mkt"].isin(list(UNIVERSES[cfg.universe]))
        selected &= backend.to_array(member.astype("float64")) == 1.0
    made_here = [c for c in plan.kinds if c in panel.columns]
    base = [c for c in plan.day_inputs if c in BASE_COLUMNS and c not in ("sector", "mkt_close")]
    rows = xp.flatnonzero(panel.dates >= plan.spill_from)
    year, _, _ = civil_from_days(xp, panel.dates[rows])
    for y in sorted(int(v) for v in xp.unique(year)):  # host-ok: the few year numbers, for the loop
        if not plan.spills(y):  # `gpuetl update`: a year kept from the dataset as it was
            continue
        idx = rows[year == y]
        data: dict[str, Any] = {"Code": frame["Code"].iloc[idx].reset_index(drop=True),
                                "Date": frame["Date"].iloc[idx].reset_index(drop=True).astype("datetime64[ms]"),
                                SELECTED: selected[idx]}
        if "sector" in plan.day_inputs:
            data["S33"] = frame["S33"].iloc[idx].reset_index(drop=True)
        for c in [*made_here, *base, *plan.targets]:
            data[c] = panel.columns[c][idx]
        path = spill_file(spill, index, y)
        path.parent.mkdir(parents=True, exist_ok=True)
        backend.write_parquet(data, path, dictionary=[])  # plain strings: they read back as the keys were
