"""Raw lake -> model-ready dataset, on whichever backend is active (same code on GPU and CPU).

Stages: load (Parquet straight into the frame library: cuDF on the GPU; non-positive prices become missing;
history from `warm-up` business days before the first date written, the warm-up being the longest lookback
the ops declare), panel (sort by Code/Date, split adjustment, sector and market columns, the lake's trading
calendar), enrich (statements, flows, margin, short selling, listing and event data as of each day's close:
gpuetl.enrich), features (the config's ops, in order; each op may read the columns of the ops before it; a
column no later op reads is stored as float32 at once, as the dataset stores it; a `time_series`-normalised
column gets its trailing z-score here, over the whole history), targets, selection (dates and universe; the
selected columns move out of the panel), then normalisation (each column as its op declares, of the stored
float32 values: gpuetl.features.normalize) and write one year at a time (Parquet in year=YYYY folders, written
to a temporary folder that is renamed, with metadata.json, once complete).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from rich.progress import Progress

from gpuetl import ops
from gpuetl.backend import Backend
from gpuetl.config import to_dict
from gpuetl.dataset.config import DatasetConfig
from gpuetl.dataset.raw import read_raw
from gpuetl.dates import EPOCH, BusinessCalendar, civil_from_days, day_of
from gpuetl.enrich import enrich, plan
from gpuetl.enrich.context import has_data
from gpuetl.features.adjust import add_adjusted
from gpuetl.features.normalize import cross_section_stats, normalized, time_series_zscore
from gpuetl.features.panel import Panel
from gpuetl.features.targets import DESCRIPTIONS as TARGET_DESCRIPTIONS
from gpuetl.features.targets import targets
from gpuetl.lake.atomic import check_output_dir, replaced_dir
from gpuetl.lake.manifest import Manifest
from gpuetl.ops import NORMALIZATIONS, Normalization
from gpuetl.stages import StageTimer, peak_host_bytes, provenance

BAR_COLUMNS = ["Code", "Date", "O", "H", "L", "C", "Vo", "Va", "AdjFactor", "UL", "LL"]
PRICE_COLUMNS = ["O", "H", "L", "C"]
UNIVERSES = {"prime": ("0111", "0101"), "prime_standard": ("0111", "0112", "0101", "0102")}
RAW_DATASETS = ("bars_daily", "topix", "master")

log = logging.getLogger(__name__)


class BuildError(RuntimeError):
    """The lake cannot make this dataset (missing datasets, empty range); says what to fetch."""


@dataclasses.dataclass
class BuildResult:
    out: Path
    rows: int
    codes: int
    dates: int
    features: list[str]
    targets: list[str]
    timings: dict[str, float]
    peak_device_bytes: int | None
    peak_host_bytes: int
    warmup_days: int = 0  # business days of history read before the first date written
    invalid_prices: int = 0  # bar rows whose non-positive prices or negative volume were read as missing


def build_dataset(backend: Backend, cfg: DatasetConfig, lake: str | Path, out: str | Path,
                  progress: bool = True, overwrite: bool = False) -> BuildResult:
    lake, out = Path(lake), check_output_dir(out, "dataset", overwrite=overwrite)  # before the work
    stage = StageTimer(backend)
    steps = cfg.feature_params()
    manifest = Manifest.load(lake)  # once: every reader below and the metadata hash use this one
    enrich_groups, enrich_status = plan(cfg.enrich.switches(), manifest)
    warmup = warmup_days(cfg)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("build", total=len(steps) + 6)
        with stage("load"):
            bars, topix, master, calendar, first_day, invalid = _load(backend, manifest, cfg, warmup)
        bar.advance(task)
        with stage("panel"):
            frame, panel = _panel(backend, bars, topix, master)
            panel.calendar = calendar
            del bars, master  # the merged, sorted frame replaces them
        bar.advance(task)
        groups: dict[str, list[str]] = {}
        kinds: dict[str, Normalization] = {}  # each feature column's normalisation, in config order
        later = _later_reads(steps)
        bar.update(task, description="enrich")
        for name, cols in enrich(backend, manifest, panel, frame, enrich_groups, stage).items():
            _add(panel, cols, ops.get(name).normalization({}), kinds, cfg, stage)
            groups[name] = list(cols)
        waiting = _finalize_unread(panel, list(kinds), later[0])
        bar.advance(task)
        for i, (op, params) in enumerate(steps):
            bar.update(task, description=f"feature {op}")
            spec = ops.get(op, "feature")
            with stage(f"feature:{op}"):
                cols = ops.run(op, panel, params, panel.columns)
                _add(panel, cols, spec.normalization(params), kinds, cfg, stage)
                waiting = _finalize_unread(panel, waiting + list(cols), later[i + 1])
            groups.setdefault(spec.group, []).extend(cols)
            bar.advance(task)
        feature_cols = list(kinds)
        with stage("targets"):
            target_cols = targets(panel, cfg.targets.horizons, panel.unique_dates, panel.date_columns["mkt_close"])
            panel.columns.update(target_cols)
            panel.finalize(target_cols)
        bar.advance(task)
        with stage("select"):
            keep = _selection(backend, panel, frame, cfg, first_day)
            rows = backend.xp.flatnonzero(keep)
            keys = _keys(frame, rows)
            series_z = [_series_z_name(c, cfg) for c, k in kinds.items() if k == "time_series"]
            sub = panel.extract(rows, feature_cols + series_z + list(target_cols))
        del panel, frame  # all the dataset needs is in `keys` and `sub`: free the inputs before writing
        if int(sub.n) == 0:
            raise BuildError(f"no rows between {cfg.start} and {cfg.end} in universe {cfg.universe!r}")
        bar.advance(task)
        bar.update(task, description="normalize + write")
        with replaced_dir(out, "dataset", overwrite=overwrite) as tmp:  # data and metadata.json together, or none
            coverage = _write_years(backend, stage, keys, sub, kinds, list(target_cols), cfg, tmp / "data")
            stats = backend.memory_stats()
            result = BuildResult(out, int(sub.n), int(len(sub.offsets) - 1), len(sub.unique_dates), feature_cols,
                                 list(target_cols), stage.timings, stats["peak_bytes"] if stats else None,
                                 peak_host_bytes(), warmup, invalid)
            _write_metadata(backend, cfg, manifest, result, groups, kinds, coverage, enrich_status, tmp)
        bar.advance(task)
    return result


def warmup_days(cfg: DatasetConfig) -> int:
    """Business days of history the build reads before its first date: the longest lookback the config's ops
    declare, and for `time_series`-normalised columns their op's lookback plus the z-score's `min_periods`."""
    norm = cfg.normalize
    need = 0
    for op, params in cfg.feature_params():
        spec = ops.get(op, "feature")
        lookback = int(spec.lookback(params))
        need = max(need, lookback)
        if norm.method != "none" and "time_series" in spec.normalization(params).values():
            need = max(need, lookback + norm.ts_min_periods - 1)
    if norm.method != "none" and any("time_series" in ops.get(g).normalization({}).values()
                                     for g, switch in cfg.enrich.switches().items() if switch is not False):
        need = max(need, norm.ts_min_periods - 1)
    return need


def _add(panel: Panel, cols: dict[str, Any], declared: dict[str, Normalization], kinds: dict[str, Normalization],
         cfg: DatasetConfig, stage: StageTimer) -> None:
    """Put an op's columns on the panel; a `time_series` column also gets its trailing z-score, computed here
    over the whole history (warm-up included) from the float32 value the dataset stores."""
    panel.columns.update(cols)
    norm = cfg.normalize
    for col in cols:
        kinds[col] = declared[col]
        if declared[col] == "time_series" and norm.method != "none":
            with stage("normalize"):
                x = cols[col].astype(panel.xp.float32).astype(panel.xp.float64)
                z = time_series_zscore(panel, x, col, norm.ts_window, norm.ts_min_periods, norm.clip)
                panel.columns[_series_z_name(col, cfg)] = z
                panel.finalize([_series_z_name(col, cfg)])


def _series_z_name(col: str, cfg: DatasetConfig) -> str:
    return f"{col}{cfg.normalize.suffix}"


# ----------------------------------------------------------------------------- stages


def _load(backend: Backend, manifest: Manifest, cfg: DatasetConfig,
          warmup: int) -> tuple[Any, Any, Any, BusinessCalendar | None, int, int]:
    """Bars from `warmup` business days (dates with bars) before the first date written, TOPIX, the master,
    the trading calendar (None when the lake has none), the first date written, and the number of bar rows
    whose prices were not positive (or volume negative): those values are read as missing.

    Without `start`, the first date written is the first one with a full warm-up before it."""
    xp = backend.xp
    bars = read_raw(backend, manifest, "bars_daily", BAR_COLUMNS, BuildError)
    topix = read_raw(backend, manifest, "topix", ["Date", "C"], BuildError)
    master = read_raw(backend, manifest, "master", ["Date", "Code", "S33", "Mkt"], BuildError)
    calendar = None
    if has_data(manifest, "calendar"):
        calendar = BusinessCalendar.from_frame(backend, read_raw(backend, manifest, "calendar", ["Date", "HolDiv"]))
    else:
        log.info("the lake at %s has no trading calendar: calendar features that need one are missing",
                 manifest.root)
    days = backend.days(bars["Date"])
    if cfg.end:
        bars, days = _rows(bars, days, days <= day_of(cfg.end))
    dates = xp.unique(days)
    if len(dates) == 0:
        raise BuildError(f"no daily bars in the lake up to {cfg.end}")
    if cfg.start:
        first_day = day_of(cfg.start)
        at = int(xp.searchsorted(dates, first_day))  # host-ok: one index sets the read window
        if at < warmup:
            log.info("only %d of the %d warm-up business days before %s are in the lake: the first rows' "
                     "long-window features are missing", at, warmup, cfg.start)
    else:
        if len(dates) <= warmup:
            raise BuildError(f"the lake holds {len(dates)} business days of bars, not more than the {warmup}-day "
                             f"warm-up the features need: fetch more history, or set start (--config-set start=...)")
        at = warmup
        first_day = int(dates[at])  # host-ok: the first date written
    bars, days = _rows(bars, days, days >= dates[max(at - warmup, 0)])
    if len(bars) == 0:
        raise BuildError(f"no daily bars in the lake between {cfg.start} and {cfg.end}")
    bars, invalid = _invalid_prices_missing(backend, bars)
    return bars, topix.sort_values("Date"), master, calendar, first_day, invalid


def _rows(frame: Any, days: Any, keep: Any) -> tuple[Any, Any]:
    idx = keep.nonzero()[0]  # NumPy and CuPy alike
    return frame.iloc[idx], days[idx]


def _invalid_prices_missing(backend: Backend, bars: Any) -> tuple[Any, int]:
    """Prices <= 0 and negative volumes (errors in outside data) -> missing, so no return is infinite."""
    bad_any = None
    for col in [*PRICE_COLUMNS, "Vo", "Va"]:
        bad = bars[col] <= 0 if col in PRICE_COLUMNS else bars[col] < 0
        bad = bad.fillna(False)
        bars[col] = bars[col].mask(bad)
        bad_any = bad if bad_any is None else bad_any | bad
    invalid = int(bad_any.sum()) if bad_any is not None else 0  # host-ok: one count for the summary
    if invalid:
        log.info("%d daily bars had non-positive prices or negative volumes: read as missing", invalid)
    return bars, invalid


def _panel(backend: Backend, bars: Any, topix: Any, master: Any) -> tuple[Any, Panel]:
    """Sort by (Code, Date), attach each day's sector and market segment, build the Panel."""
    frame = bars.merge(master, on=["Code", "Date"], how="left")
    frame = frame.sort_values(["Code", "Date"]).reset_index(drop=True)
    # a day whose master row is missing keeps the code's last known attributes (past only: no leakage)
    frame[["S33", "Mkt"]] = frame.groupby("Code", sort=True)[["S33", "Mkt"]].ffill()
    code_id, _ = frame["Code"].factorize()
    sector_id, _ = frame["S33"].factorize()
    xp = backend.xp
    sector = xp.asarray(sector_id).astype(xp.float64)
    cols = {c: backend.to_array(frame[c].astype("float64")) for c in ("O", "H", "L", "C", "Vo", "Va", "AdjFactor")}
    cols |= {c: backend.to_array(frame[c].astype("float64")) for c in ("UL", "LL")}
    cols["sector"] = xp.where(sector < 0, xp.nan, sector)
    panel = Panel(backend, xp.asarray(code_id), backend.days(frame["Date"]), cols)
    add_adjusted(panel)
    panel.add_date_series("mkt_close", backend.days(topix["Date"]), backend.to_array(topix["C"]))
    return frame, panel


def _selection(backend: Backend, panel: Panel, frame: Any, cfg: DatasetConfig, first_day: int) -> Any:
    """The rows written: from the first date written (after the warm-up) to `end`, in the universe."""
    keep = panel.dates >= first_day  # the load already dropped rows after `end`
    if cfg.universe != "all":
        member = frame["Mkt"].isin(list(UNIVERSES[cfg.universe]))
        keep &= backend.to_array(member.astype("float64")) == 1.0
    return keep


def _later_reads(steps: list[tuple[str, dict[str, Any]]]) -> list[set[str]]:
    """later[i]: the panel columns that steps[i:] read (their inputs and the `columns` they are given)."""
    later: list[set[str]] = [set()]
    for op, params in reversed(steps):
        later.append(later[-1] | ops.get(op).reads(params))
    return later[::-1]


def _finalize_unread(panel: Panel, waiting: list[str], later: set[str]) -> list[str]:
    """Store the finished columns that no later op reads as float32; return those still to be read."""
    panel.finalize(c for c in waiting if c not in later)
    return [c for c in waiting if c in later]


def _keys(frame: Any, rows: Any) -> Any:
    """Code and Date (datetime64[ms]) of the selected rows, as a frame of the backend."""
    keys = frame[["Code", "Date"]].iloc[rows].reset_index(drop=True)
    keys["Date"] = keys["Date"].astype("datetime64[ms]")
    return keys


def _write_years(backend: Backend, stage: StageTimer, keys: Any, sub: Panel, kinds: dict[str, Normalization],
                 target_cols: list[str], cfg: DatasetConfig, folder: Path) -> dict[str, dict[str, Any]]:
    """Normalise and write one year at a time, into `folder/year=YYYY/part-0.parquet` (hive layout); return
    each feature's coverage (rows with a value, first date with one).

    A day never spans two years, so normalising a year's rows per day is normalising the whole, while only
    one year's output columns exist at once; each value is cast to float32 as soon as it is final.
    """
    xp = backend.xp
    norm = cfg.normalize
    year, _, _ = civil_from_days(xp, sub.dates)
    valid = dict.fromkeys(kinds, 0)
    first: dict[str, int | None] = dict.fromkeys(kinds)
    for y in sorted(int(v) for v in xp.unique(year)):  # host-ok: the few year numbers, for the loop
        with stage("write"):
            idx = xp.flatnonzero(year == y)
            part = sub.subset(idx)
            data: dict[str, Any] = {"Code": keys["Code"].iloc[idx].reset_index(drop=True),
                                    "Date": keys["Date"].iloc[idx].reset_index(drop=True)}
        normed: dict[str, Any] = {}
        with stage("normalize"):  # the per-day statistics of every cross_section column: one kernel pass
            day = cross_section_stats(part, kinds, norm.method) if norm.method != "none" else {}
        for col, kind in kinds.items():
            x = part.columns.pop(col)
            has = ~xp.isnan(x)
            n = int(has.sum())  # host-ok: one count per column and year, for the coverage report
            valid[col] += n
            if n and first[col] is None:
                first[col] = int(part.dates[has].min())  # host-ok: the first day with a value
            if norm.method != "none":  # of the float32 value the dataset stores, so it can be recomputed
                with stage("normalize"):
                    series_z = part.columns.pop(_series_z_name(col, cfg), None)
                    value, missing = normalized(part, x.astype(xp.float64), kind, norm.method, norm.clip,
                                                series_z, day.pop(col, None))
                    normed[f"{col}{norm.suffix}"] = value.astype(xp.float32)
                    normed[f"{col}_missing"] = missing.astype(xp.float32)
            data[col] = x.astype(xp.float32, copy=False)
        with stage("write"):
            for col in target_cols:
                data[col] = part.columns.pop(col).astype(xp.float32, copy=False)
            (folder / f"year={y}").mkdir(parents=True)
            backend.write_parquet(data | normed, folder / f"year={y}" / "part-0.parquet",
                                  dictionary=["Code", *(c for c in normed if c.endswith("_missing"))])
    rows = int(sub.n)
    return {col: {"share": round(valid[col] / rows, 6) if rows else 0.0, "first_date": _iso(first[col])}
            for col in kinds}


def _iso(day: int | None) -> str | None:
    return None if day is None else str(EPOCH + dt.timedelta(days=day))


def _write_metadata(backend: Backend, cfg: DatasetConfig, manifest: Manifest, result: BuildResult,
                    groups: dict[str, list[str]], kinds: dict[str, Normalization], coverage: dict[str, dict[str, Any]],
                    enrich_status: dict[str, str], folder: Path) -> None:
    enriched = [d for g, status in enrich_status.items() if status == "on" for d in ops.get(g).inputs]
    norm = cfg.normalize
    meta = {
        **provenance(backend, cfg.name),
        "rows": result.rows, "codes": result.codes, "dates": result.dates,
        "warmup_days": result.warmup_days,
        "invalid_price_rows": result.invalid_prices,
        "feature_count": len(result.features),
        "features_by_group": groups,
        "normalized": [] if norm.method == "none" else
        [name for col in result.features for name in (f"{col}{norm.suffix}", f"{col}_missing")],
        "normalization": {
            "kinds": NORMALIZATIONS,
            "by_feature": kinds,
            "missing_flag": "<feature>_missing is 1 exactly where the raw value is NaN; <feature>" + norm.suffix +
                            " is 0 where it is missing or cannot be computed (one value or no spread that day, "
                            "a trailing window not yet filled)",
        },
        "coverage": coverage,  # per feature: share of rows with a value, first date with one
        "targets": result.targets,
        "target_descriptions": TARGET_DESCRIPTIONS,  # k: the horizon in business days (rows of the code)
        "default_label": f"target_next_ret_{cfg.targets.horizons[0]}d",
        "enrich": enrich_status,
        "raw_manifest_hash": manifest.digest(sorted(set(RAW_DATASETS) | set(enriched))),
        "timings_s": result.timings,
        "peak_device_bytes": result.peak_device_bytes,
        "peak_host_bytes": result.peak_host_bytes,
        "config": to_dict(cfg),
    }
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2, default=str))
