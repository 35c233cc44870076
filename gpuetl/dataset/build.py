"""Raw lake -> model-ready dataset, on whichever backend is active (same code on GPU and CPU).

Stages: load (Parquet straight into the frame library: cuDF on the GPU), panel (sort by Code/Date, split
adjustment, sector and market columns), enrich (statements, flows, margin, short selling, listing and
event data as of each day's close: gpuetl.enrich), features (the config's ops, in order; each op may read the
columns of the ops before it), targets, selection (dates and universe), normalisation (per day, on the
selected rows), write (Parquet by year, written to a temporary folder and renamed, + metadata.json).
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
from gpuetl.features.targets import targets
from gpuetl.lake.atomic import replaced_dir
from gpuetl.lake.manifest import Manifest
from gpuetl.stages import StageTimer, provenance

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


def build_dataset(backend: Backend, cfg: DatasetConfig, lake: str | Path, out: str | Path,
                  progress: bool = True) -> BuildResult:
    lake, out = Path(lake), Path(out)
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
        bar.advance(task)
        groups: dict[str, list[str]] = {}
        feature_cols: list[str] = []  # in config order
        bar.update(task, description="enrich")
        for name, cols in enrich(backend, manifest, panel, frame, enrich_groups, stage).items():
            panel.columns.update(cols)
            groups[name] = list(cols)
            feature_cols.extend(cols)
        bar.advance(task)
        for op, params in ops:
            bar.update(task, description=f"feature {op}")
            with stage(f"feature:{op}"):
                cols = registry.compute(panel, op, params)
            panel.columns.update(cols)
            groups.setdefault(registry.get(op).group, []).extend(cols)
            feature_cols.extend(cols)
            bar.advance(task)
        with stage("targets"):
            target_cols = targets(panel, cfg.targets.horizons, panel.unique_dates, panel.date_columns["mkt_close"])
            panel.columns.update(target_cols)
        bar.advance(task)
        with stage("select"):
            keep = _selection(backend, panel, frame, cfg)
            rows = backend.xp.flatnonzero(keep)
            sub = panel.subset(rows)
        if int(sub.n) == 0:
            raise BuildError(f"no rows between {cfg.start} and {cfg.end} in universe {cfg.universe!r}")
        with stage("normalize"):
            normed = _normalize(sub, feature_cols, cfg)
        bar.advance(task)
        bar.update(task, description="write")
        with replaced_dir(out) as tmp:  # data and metadata.json appear together, or not at all
            with stage("write"):
                _write(backend, frame, rows, sub, feature_cols, normed, list(target_cols), tmp)
            stats = backend.memory_stats()
            result = BuildResult(out, int(sub.n), int(len(sub.offsets) - 1), len(sub.unique_dates), feature_cols,
                                 list(target_cols), stage.timings, stats["peak_bytes"] if stats else None)
            _write_metadata(backend, cfg, manifest, result, groups, list(normed), enrich_status, tmp)
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


def _normalize(sub: Panel, feature_cols: list[str], cfg: DatasetConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if cfg.normalize.method == "none":
        return out
    for col in feature_cols:
        value, missing = normalize(sub, sub[col], cfg.normalize.method, cfg.normalize.clip)
        out[f"{col}{cfg.normalize.suffix}"] = value
        out[f"{col}_missing"] = missing
    return out


def _write(backend: Backend, frame: Any, rows: Any, sub: Panel, feature_cols: list[str], normed: dict[str, Any],
           target_cols: list[str], folder: Path) -> None:
    xp = backend.xp
    data: dict[str, Any] = {"Code": frame["Code"].iloc[rows].reset_index(drop=True),
                            "Date": frame["Date"].iloc[rows].reset_index(drop=True).astype("datetime64[ms]")}
    for col in feature_cols + target_cols:
        data[col] = sub[col].astype(xp.float32)
    for col, values in normed.items():
        data[col] = values.astype(xp.float32)
    year, _, _ = civil_from_days(xp, sub.dates)
    data["year"] = year.astype(xp.int16)
    backend.xdf.DataFrame(data).to_parquet(str(folder / "data"), partition_cols=["year"], index=False)


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
        "enrich": enrich_status,
        "raw_manifest_hash": manifest.digest(sorted(set(RAW_DATASETS) | set(enriched))),
        "timings_s": result.timings,
        "peak_device_bytes": result.peak_device_bytes,
        "config": to_dict(cfg),
    }
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2, default=str))


def _day(date: str, shift_days: int) -> int:
    d = dt.date.fromisoformat(str(date)) + dt.timedelta(days=shift_days)
    return (d - dt.date(1970, 1, 1)).days
