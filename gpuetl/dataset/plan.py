"""The plan of a dataset build: which dates and codes, which ops run where, and how the work is split.

The build runs in two kinds of task, whichever runs them (this process, or a Dask cluster):

- **code parts** (`gpuetl.dataset.codes`): a contiguous range of codes with their whole history from the
  warm-up on: lake read, split adjustment, enrichment, every op whose axis is `code` or `market` (ops.AXES),
  targets; the rows from `spill_from` on are written to the spill store, one file per year;
- **day chunks** (`gpuetl.dataset.days`): every code's rows of a run of days within a year (and the `overlap`
  business days before it that the per-day ops read): the ops whose axis is `day` (per-day ranks,
  sector-relative returns), the normalised view, and the chunk's file of the year.

A value depends only on its code's history (code ops), on the per-date market series over every date (market
ops: each code part holds the global date list), or on its day's cross-section (day ops), so the result is
the same whatever the split, bit for bit (tests/test_dataset_parts.py). The split bounds memory: a code part
holds at most `build.partition_rows` rows; a year is written by day chunks (contiguous runs of its dates, each
about `build.day_rows` rows, with the overlap before it), one file each (`data/year=YYYY/part-<k>.parquet`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from gpuetl.backend import Backend
from gpuetl.config import ConfigError
from gpuetl.dataset.config import DatasetConfig
from gpuetl.dataset.registry import REGISTRY
from gpuetl.dates import EPOCH, civil_from_days, day_of
from gpuetl.enrich import select as select_enrichment
from gpuetl.enrich.context import has_data
from gpuetl.lake.manifest import Manifest
from gpuetl.lake.reader import read_raw
from gpuetl.ops import Normalization

log = logging.getLogger(__name__)

BASE_COLUMNS = frozenset({"O", "H", "L", "C", "Vo", "Va", "AdjFactor", "UL", "LL", "open", "high", "low", "close",
                          "volume", "turnover", "cum_factor", "sector", "mkt_close"})  # what the panel starts with


class BuildError(RuntimeError):
    """The lake cannot make this dataset (missing datasets, empty range); says what to fetch."""


@dataclasses.dataclass(frozen=True)
class BuildPlan:
    cfg: DatasetConfig
    lake: Path
    dates: np.ndarray  # int64 days (host): every date with bars from `read_from` to the end, sorted
    first_day: int  # the first date written
    read_from: int  # the first date read (the warm-up before first_day)
    spill_from: int  # the first date a year reads (the day ops' overlap before first_day)
    warmup: int  # business days of history before first_day
    overlap: int  # business days before a year that its day ops read
    parts: tuple[tuple[str, ...], ...]  # codes of each code part, sorted, contiguous
    enrich: tuple[str, ...]  # the enrichment ops that run
    enrich_status: dict[str, str]
    steps: tuple[tuple[str, dict[str, Any]], ...]  # the feature ops, in config order
    kinds: dict[str, Normalization]  # every feature column, in dataset order, with its normalisation
    groups: dict[str, list[str]]  # feature columns by group
    targets: tuple[str, ...]
    day_inputs: tuple[str, ...]  # columns the day ops read that a code part must hand over (float64)
    later: tuple[frozenset[str], ...]  # later[i]: the columns that steps[i:] read
    years_from: int = 0  # the first year written (0: every year); `gpuetl update` rewrites only the years from there
    chunks: tuple[tuple[int, int], ...] = ()  # (first, last) date written by each day chunk, in order; within a year

    @property
    def features(self) -> list[str]:
        return list(self.kinds)

    @property
    def day_steps(self) -> list[tuple[str, dict[str, Any]]]:
        """The feature ops whose axis is `day` (they run per year), in config order."""
        return _day_steps(self.steps)

    def years(self) -> list[int]:
        """The years with dates written, in order (from `years_from` on)."""
        written = self.dates[self.dates >= self.first_day]
        year, _, _ = civil_from_days(np, written)
        return sorted({int(y) for y in year if y >= self.years_from})

    def spills(self, year: int) -> bool:
        """Whether code parts spill `year`: a year written, or the one before it (its day ops' overlap)."""
        return year >= self.years_from - 1

    def year_chunks(self, year: int) -> list[tuple[int, int]]:
        """The day chunks of `year`: (first, last) date written by each of its tasks, in order."""
        years = civil_from_days(np, np.array([first for first, _ in self.chunks], dtype=np.int64))[0]
        return [c for c, y in zip(self.chunks, years, strict=True) if y == year]

    def reads_from(self, first: int) -> int:
        """The first date the day ops of a chunk that writes from `first` read (`overlap` business days before)."""
        at = int(np.searchsorted(self.dates, first))
        return int(self.dates[max(at - self.overlap, 0)])

    @property
    def time_series(self) -> list[str]:
        return [c for c, kind in self.kinds.items() if kind == "time_series"]


def warmup_days(cfg: DatasetConfig) -> int:
    """Business days of history the build reads before its first date: the longest lookback the config's ops
    declare, and for `time_series`-normalised columns their op's lookback plus the z-score's `min_periods`."""
    norm = cfg.normalize
    need = 0
    for op, params in cfg.feature_params():
        spec = REGISTRY.get(op, "feature")
        lookback = int(spec.lookback(params))
        need = max(need, lookback)
        if norm.method != "none" and "time_series" in spec.normalization(params).values():
            need = max(need, lookback + norm.ts_min_periods - 1)
    if norm.method != "none" and any("time_series" in REGISTRY.get(g).normalization({}).values()
                                     for g, switch in cfg.enrich.switches().items() if switch is not False):
        need = max(need, norm.ts_min_periods - 1)
    return need


def make_plan(backend: Backend, cfg: DatasetConfig, lake: Path, manifest: Manifest, partition_rows: int,
              target_names: list[str], day_rows: int, min_parts: int = 1) -> BuildPlan:
    """Dates, warm-up and code parts from the lake's bars (two columns read), and the ops' declarations; parts
    of at most `partition_rows` rows, and at least `min_parts` of them where there are codes enough (so every
    worker of a cluster has work); each year split into day chunks of about `day_rows` rows written."""
    steps = tuple(cfg.feature_params())
    enrich_ops, status = select_enrichment(cfg.enrich.switches(), manifest)
    kinds: dict[str, Normalization] = {}
    groups: dict[str, list[str]] = {}
    for name in enrich_ops:
        kinds |= REGISTRY.get(name).normalization({})
        groups[name] = list(REGISTRY.get(name).outputs({}))
    for op, params in steps:
        spec = REGISTRY.get(op, "feature")
        kinds |= spec.normalization(params)
        groups.setdefault(spec.group, []).extend(spec.outputs(params))
    later = _later_reads(steps)
    _check_axes(steps, cfg)
    day_steps = _day_steps(steps)
    day_reads = set().union(*(REGISTRY.get(op).reads(p) for op, p in day_steps))
    day_outputs = {c for op, p in day_steps for c in REGISTRY.get(op).outputs(p)}
    day_inputs = tuple(sorted(day_reads - day_outputs))
    overlap = max([int(REGISTRY.get(op).lookback(p)) for op, p in day_steps], default=0)
    warmup = warmup_days(cfg)

    keys = read_raw(backend, manifest, "bars_daily", ["Code", "Date"], BuildError)
    days = backend.days(keys["Date"])
    lake_dates = backend.to_host(backend.xp.unique(days))  # host-ok: the plan's few thousand dates
    if len(lake_dates) == 0:
        raise BuildError(f"no daily bars in the lake at {lake}: fetch bars_daily first")
    check_lake_span(cfg, lake_dates)
    if cfg.universe != "all" and not has_data(manifest, "master"):
        raise BuildError(f"universe {cfg.universe!r} selects codes by their market segment, and the lake at "
                         f"{manifest.root} has no master: fetch or import it, or set universe: all")
    _say_what_the_lake_lacks(backend, manifest, steps)
    all_dates = lake_dates
    if cfg.end:
        keys, days = _rows(keys, days, days <= day_of(cfg.end))
        all_dates = lake_dates[lake_dates <= day_of(cfg.end)]
    if cfg.start:
        first_day = day_of(cfg.start)
        at = int(np.searchsorted(all_dates, first_day))
        if at < warmup:
            log.info("only %d of the %d warm-up business days before %s are in the lake: the first rows' "
                     "long-window features are missing", at, warmup, cfg.start)
    else:
        if len(all_dates) <= warmup:
            raise BuildError(f"the lake holds {len(all_dates)} business days of bars, not more than the {warmup}-day "
                             f"warm-up the features need: fetch more history, or set start (--config-set start=...)")
        at = warmup
        first_day = int(all_dates[at])
    if at >= len(all_dates):  # check_lake_span rules this out
        raise BuildError(f"no daily bars in the lake from start {cfg.start} to end {cfg.end or 'its last day'}")
    read_from = int(all_dates[max(at - warmup, 0)])
    spill_from = int(all_dates[max(at - overlap, 0)])
    keys, days = _rows(keys, days, days >= read_from)
    counts = keys["Code"].value_counts().sort_index()
    codes = [str(c) for c in backend.to_host(counts.index)]  # host-ok: the plan's few thousand codes
    rows = backend.to_host(counts.values)  # host-ok: their row counts
    parts = _split(codes, rows, min(partition_rows, -(-int(rows.sum()) // max(min_parts, 1))))
    dated, per_date = backend.xp.unique(days[days >= first_day], return_counts=True)
    chunks = day_chunks(backend.to_host(dated), backend.to_host(per_date), day_rows)  # host-ok: rows per date
    return BuildPlan(cfg, lake, all_dates[all_dates >= read_from], first_day, read_from, spill_from, warmup,
                     overlap, parts, tuple(enrich_ops), status, steps, kinds, groups, tuple(target_names),
                     day_inputs, later, chunks=chunks)


def day_chunks(dates: np.ndarray, rows: np.ndarray, limit: int) -> tuple[tuple[int, int], ...]:
    """Each year's dates (sorted, with the rows bars give each) split into the fewest contiguous runs of about
    equal rows that keep a run at `limit` rows or under where one date allows it: (first, last) per run. The
    split depends on the dates and their rows only, so every runner writes the same files."""
    out: list[tuple[int, int]] = []
    years = civil_from_days(np, dates)[0]
    for year in np.unique(years):
        d, r = dates[years == year], rows[years == year].astype(np.int64)
        n = max(1, -(-int(r.sum()) // max(limit, 1)))
        cum = np.cumsum(r)
        cuts = np.unique(np.searchsorted(cum, cum[-1] * np.arange(1, n) / n, side="left") + 1)
        bounds = [0, *(int(c) for c in cuts if 0 < c < len(d)), len(d)]
        out += [(int(d[a]), int(d[b - 1])) for a, b in itertools.pairwise(bounds) if b > a]
    return tuple(out)


def _say_what_the_lake_lacks(backend: Backend, manifest: Manifest,
                             steps: tuple[tuple[str, dict[str, Any]], ...]) -> None:
    """One INFO line per build for an input the lake lacks, which leaves some features missing (the ops that read
    it run per code part or per year, and say nothing themselves)."""
    chosen = [REGISTRY.get(op) for op, _ in steps]
    if not has_data(manifest, "calendar") and any(o.name == "calendar" for o in chosen):
        log.info("the lake at %s has no trading calendar, so cal_bday_of_month, cal_bdays_to_month_end and "
                 "cal_month_end are missing (gpuetl fetch --datasets calendar ...)", manifest.root)
    sector = [o.name for o, (_, p) in zip(chosen, steps, strict=True) if "sector" in o.reads(p)]
    if sector and not has_data(manifest, "master"):
        log.info("the lake at %s has no master, so the features of %s are missing (gpuetl fetch --datasets master "
                 "..., or gpuetl import --dataset master FILE)", manifest.root, ", ".join(sector))
    elif sector and not bool(read_raw(backend, manifest, "master", ["S33"], BuildError)["S33"]
                             .notna().any()):  # host-ok: one flag per build plan
        log.info("no code has a 33-sector (S33) in the lake's master at %s, so the features of %s are missing",
                 manifest.root, ", ".join(sector))


def check_lake_span(cfg: DatasetConfig, lake_dates: np.ndarray) -> None:
    """`start` and `end` against the lake's trading days (sorted int64 days): a span outside them is a wrong date,
    a config error (exit 2) that says which date to move and where to, not an empty build."""
    first, last = int(lake_dates[0]), int(lake_dates[-1])
    if cfg.start and day_of(cfg.start) > last:
        raise ConfigError(f"start: {cfg.start} is after the lake's last trading day {_iso(last)}; choose a start on or "
                          "before it, or fetch later data", "start")
    if cfg.end and day_of(cfg.end) < first:
        raise ConfigError(f"end: {cfg.end} is before the lake's first trading day {_iso(first)}; choose an end on or "
                          "after it, or fetch earlier data", "end")
    if cfg.start and cfg.end:
        inside = (lake_dates >= day_of(cfg.start)) & (lake_dates <= day_of(cfg.end))
        if not inside.any():
            raise ConfigError(f"start, end: the lake has no trading day from {cfg.start} to {cfg.end}; widen the span",
                              "start", "end")


def _iso(day: int) -> str:
    return (EPOCH + dt.timedelta(days=day)).isoformat()


def _check_axes(steps: tuple[tuple[str, dict[str, Any]], ...], cfg: DatasetConfig) -> None:
    """What the two-step build needs: no code or market op reads a day op's output (they run before the day
    ops), and no day op's output is normalised as a time series (that needs every year at once)."""

    made_by_day: dict[str, str] = {}
    for i, (op, params) in enumerate(steps):
        spec = REGISTRY.get(op)
        if spec.axis != "day":
            used = sorted(spec.reads(params) & set(made_by_day))
            if used:
                raise ConfigError(f"features[{i}] ({op}, per code) reads {', '.join(used)}, made per day by "
                                  f"{made_by_day[used[0]]}: per-day ops run after the per-code ones; move it "
                                  "before that op or drop the column")
            continue
        if "time_series" in spec.normalization(params).values() and cfg.normalize.method != "none":
            raise ConfigError(f"features[{i}] ({op}) is a per-day op with a time_series output")
        made_by_day |= dict.fromkeys(spec.outputs(params), op)


def _later_reads(steps: tuple[tuple[str, dict[str, Any]], ...]) -> tuple[frozenset[str], ...]:
    later: list[frozenset[str]] = [frozenset()]
    for op, params in reversed(steps):
        later.append(later[-1] | REGISTRY.get(op).reads(params))
    return tuple(later[::-1])


def _split(codes: list[str], rows: np.ndarray, limit: int) -> tuple[tuple[str, ...], ...]:
    """Contiguous runs of sorted codes with at most `limit` rows each (a code is never split)."""
    parts: list[tuple[str, ...]] = []
    current: list[str] = []
    total = 0
    for code, n in zip(codes, rows, strict=True):
        if current and total + int(n) > limit:
            parts.append(tuple(current))
            current, total = [], 0
        current.append(code)
        total += int(n)
    if current:
        parts.append(tuple(current))
    return tuple(parts)


def _day_steps(steps: tuple[tuple[str, dict[str, Any]], ...]) -> list[tuple[str, dict[str, Any]]]:
    return [(op, p) for op, p in steps if REGISTRY.get(op).axis == "day"]


def _rows(frame: Any, days: Any, keep: Any) -> tuple[Any, Any]:
    idx = keep.nonzero()[0]  # NumPy and CuPy alike
    return frame.iloc[idx], days[idx]
