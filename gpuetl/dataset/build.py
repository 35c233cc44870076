"""Raw lake -> model-ready dataset, on whichever backend is active (same code on GPU and CPU).

Stages: load (Parquet straight into the frame library: cuDF on the GPU), panel (sort by Code/Date, split
adjustment, sector and market columns), enrich (statements, flows, margin, short selling, listing and
event data as of each day's close: gpuetl.enrich), features (the config's ops, in order; each op may read the
columns of the ops before it; a column no later op reads is stored as float32 at once, as the dataset stores
it), targets, selection (dates and universe; the selected columns move out of the panel), then
normalisation (per day, of the stored float32 values) and write one year at a time (Parquet in year=YYYY
folders, written to a temporary folder that is renamed, with metadata.json, once complete).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from rich.progress import Progress

from gpuetl.backend import Backend
from gpuetl.config import to_dict
from gpuetl.dataset.config import DatasetConfig
from gpuetl.dataset.raw import read_raw
from gpuetl.enrich import GROUPS, enrich, plan
from gpuetl.features import registry
from gpuetl.features.adjust import add_adjusted
from gpuetl.features.calendar import civil_from_days
from gpuetl.features.cross_section import normalize
from gpuetl.features.panel import Panel
from gpuetl.features.targets import DESCRIPTIONS as TARGET_DESCRIPTIONS
from gpuetl.features.targets import targets
from gpuetl.lake.atomic import check_output_dir, replaced_dir
from gpuetl.lake.manifest import Manifest
from gpuetl.stages import StageTimer, peak_host_bytes, provenance

BAR_COLUMNS = ["Code", "Date", "O", "H", "L", "C", "Vo", "Va", "AdjFactor", "UL", "LL"]
UNIVERSES = {"prime": ("0111", "0101"), "prime_standard": ("0111", "0112", "0101", "0102")}
RAW_DATASETS = ("bars_daily", "topix", "master")


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


def build_dataset(backend: Backend, cfg: DatasetConfig, lake: str | Path, out: str | Path,
                  progress: bool = True, overwrite: bool = False) -> BuildResult:
    lake, out = Path(lake), check_output_dir(out, "dataset", overwrite=overwrite)  # before the work
    stage = StageTimer(backend)
    ops = cfg.feature_params()
    manifest = Manifest.load(lake)  # once: every reader below and the metadata hash use this one
    enrich_groups, enrich_status = plan(cfg.enrich.switches(), manifest)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("build", total=len(ops) + 6)
        with stage("load"):
            bars, topix, master = _load(backend, manifest, cfg)
        bar.advance(task)
        with stage("panel"):
            frame, panel = _panel(backend, bars, topix, master)
            del bars, master  # the merged, sorted frame replaces them
        bar.advance(task)
        groups: dict[str, list[str]] = {}
        feature_cols: list[str] = []  # in config order
        later = _later_reads(ops)
        bar.update(task, description="enrich")
        for name, cols in enrich(backend, manifest, panel, frame, enrich_groups, stage).items():
            panel.columns.update(cols)
            groups[name] = list(cols)
            feature_cols.extend(cols)
        waiting = _finalize_unread(panel, feature_cols, later[0])
        bar.advance(task)
        for i, (op, params) in enumerate(ops):
            bar.update(task, description=f"feature {op}")
            with stage(f"feature:{op}"):
                cols = registry.compute(panel, op, params)
                panel.columns.update(cols)
                waiting = _finalize_unread(panel, waiting + list(cols), later[i + 1])
            groups.setdefault(registry.get(op).group, []).extend(cols)
            feature_cols.extend(cols)
            bar.advance(task)
        with stage("targets"):
            target_cols = targets(panel, cfg.targets.horizons, panel.unique_dates, panel.date_columns["mkt_close"])
            panel.columns.update(target_cols)
            panel.finalize(target_cols)
        bar.advance(task)
        with stage("select"):
            keep = _selection(backend, panel, frame, cfg)
            rows = backend.xp.flatnonzero(keep)
            keys = _keys(frame, rows)
            sub = panel.extract(rows, feature_cols + list(target_cols))
        del panel, frame  # all the dataset needs is in `keys` and `sub`: free the inputs before writing
        if int(sub.n) == 0:
            raise BuildError(f"no rows between {cfg.start} and {cfg.end} in universe {cfg.universe!r}")
        bar.advance(task)
        bar.update(task, description="normalize + write")
        with replaced_dir(out, "dataset", overwrite=overwrite) as tmp:  # data and metadata.json together, or none
            _write_years(backend, stage, keys, sub, feature_cols, list(target_cols), cfg, tmp / "data")
            stats = backend.memory_stats()
            result = BuildResult(out, int(sub.n), int(len(sub.offsets) - 1), len(sub.unique_dates), feature_cols,
                                 list(target_cols), stage.timings, stats["peak_bytes"] if stats else None,
                                 peak_host_bytes())
            _write_metadata(backend, cfg, manifest, result, groups, _normalized_names(feature_cols, cfg),
                            enrich_status, tmp)
        bar.advance(task)
    return result


# ----------------------------------------------------------------------------- stages


def _load(backend: Backend, manifest: Manifest, cfg: DatasetConfig) -> tuple[Any, Any, Any]:
    bars = read_raw(backend, manifest, "bars_daily", BAR_COLUMNS, BuildError)
    topix = read_raw(backend, manifest, "topix", ["Date", "C"], BuildError)
    master = read_raw(backend, manifest, "master", ["Date", "Code", "S33", "Mkt"], BuildError)
    lo = _day(cfg.start, -cfg.warmup_days) if cfg.start else None
    hi = _day(cfg.end, 0) if cfg.end else None
    if lo is not None or hi is not None:
        days = backend.days(bars["Date"])
        keep = backend.xp.ones(len(days), dtype=bool)
        if lo is not None:
            keep &= days >= lo
        if hi is not None:
            keep &= days <= hi
        bars = bars.iloc[backend.xp.flatnonzero(keep)]
    if len(bars) == 0:
        raise BuildError(f"no daily bars in the lake between {cfg.start} and {cfg.end}")
    return bars, topix.sort_values("Date"), master


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


def _selection(backend: Backend, panel: Panel, frame: Any, cfg: DatasetConfig) -> Any:
    xp = backend.xp
    keep = xp.ones(panel.n, dtype=bool)
    if cfg.start:
        keep &= panel.dates >= _day(cfg.start, 0)
    if cfg.end:
        keep &= panel.dates <= _day(cfg.end, 0)
    if cfg.universe != "all":
        member = frame["Mkt"].isin(list(UNIVERSES[cfg.universe]))
        keep &= backend.to_array(member.astype("float64")) == 1.0
    return keep


def _later_reads(ops: list[tuple[str, dict[str, Any]]]) -> list[set[str]]:
    """later[i]: the panel columns that ops[i:] read (their inputs and the `columns` they are given)."""
    later: list[set[str]] = [set()]
    for op, params in reversed(ops):
        later.append(later[-1] | set(registry.get(op).inputs) | set(params.get("columns", ())))
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


def _normalized_names(feature_cols: list[str], cfg: DatasetConfig) -> list[str]:
    if cfg.normalize.method == "none":
        return []
    return [name for col in feature_cols for name in (f"{col}{cfg.normalize.suffix}", f"{col}_missing")]


def _write_years(backend: Backend, stage: StageTimer, keys: Any, sub: Panel, feature_cols: list[str],
                 target_cols: list[str], cfg: DatasetConfig, folder: Path) -> None:
    """Normalise and write one year at a time, into `folder/year=YYYY/part-0.parquet` (hive layout).

    A day never spans two years, so normalising a year's rows per day is normalising the whole, while only
    one year's output columns exist at once; each value is cast to float32 as soon as it is final.
    """
    xp = backend.xp
    norm = cfg.normalize
    year, _, _ = civil_from_days(xp, sub.dates)
    for y in sorted(int(v) for v in xp.unique(year)):  # host-ok: the few year numbers, for the loop
        with stage("write"):
            idx = xp.flatnonzero(year == y)
            part = sub.subset(idx)
            data: dict[str, Any] = {"Code": keys["Code"].iloc[idx].reset_index(drop=True),
                                    "Date": keys["Date"].iloc[idx].reset_index(drop=True)}
        normed: dict[str, Any] = {}
        for col in feature_cols:
            x = part.columns.pop(col)
            if norm.method != "none":  # of the float32 value the dataset stores, so it can be recomputed
                with stage("normalize"):
                    value, missing = normalize(part, x.astype(xp.float64), norm.method, norm.clip)
                    normed[f"{col}{norm.suffix}"] = value.astype(xp.float32)
                    normed[f"{col}_missing"] = missing.astype(xp.float32)
            data[col] = x.astype(xp.float32, copy=False)
        with stage("write"):
            for col in target_cols:
                data[col] = part.columns.pop(col).astype(xp.float32, copy=False)
            (folder / f"year={y}").mkdir(parents=True)
            backend.write_parquet(data | normed, folder / f"year={y}" / "part-0.parquet",
                                  dictionary=["Code", *(c for c in normed if c.endswith("_missing"))])


def _write_metadata(backend: Backend, cfg: DatasetConfig, manifest: Manifest, result: BuildResult,
                    groups: dict[str, list[str]], normed: list[str], enrich_status: dict[str, str],
                    folder: Path) -> None:
    enriched = [d for g, status in enrich_status.items() if status == "on" for d in GROUPS[g].datasets]
    meta = {
        **provenance(backend, cfg.name),
        "rows": result.rows, "codes": result.codes, "dates": result.dates,
        "feature_count": len(result.features),
        "features_by_group": groups,
        "normalized": normed,
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


def _day(date: str, shift_days: int) -> int:
    d = dt.date.fromisoformat(str(date)) + dt.timedelta(days=shift_days)
    return (d - dt.date(1970, 1, 1)).days
