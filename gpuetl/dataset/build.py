"""Raw lake -> model-ready dataset, on whichever backend is active (same code on GPU and CPU), in this process
or on a Dask cluster, with the same result.

The plan (gpuetl.dataset.plan) reads the lake's dates and codes, derives the warm-up from the ops' declared
lookbacks and splits the codes into parts. Each code part (gpuetl.dataset.codes) reads its codes' history,
enriches it, runs the per-code ops and the targets and spills its rows by year; the build then fits the
time-series z-scores of market-wide columns over every date; each year (gpuetl.dataset.days) runs the per-day
ops, normalises and writes its Parquet file. Everything is written to a temporary folder that replaces the
output, with metadata.json, once complete; the spill store lives inside it and is gone by then.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpuetl import ops
from gpuetl.backend import Backend
from gpuetl.cluster import InProcess, Runner, TaskFiles
from gpuetl.config import to_dict
from gpuetl.dataset.codes import CodePartResult, code_part, spill_file
from gpuetl.dataset.config import DatasetConfig
from gpuetl.dataset.days import YearResult, chunk_part, merge_years
from gpuetl.dataset.plan import BuildError, BuildPlan, make_plan, warmup_days
from gpuetl.dataset.record import inputs_record, year_record
from gpuetl.dataset.registry import REGISTRY
from gpuetl.dates import EPOCH, civil_from_days
from gpuetl.features.normalize import ts_z_name
from gpuetl.features.panel import Panel
from gpuetl.features.targets import DESCRIPTIONS as TARGET_DESCRIPTIONS
from gpuetl.features.targets import target_names
from gpuetl.lake.manifest import Manifest
from gpuetl.lake.outputs import Input, check_output_dir, claimed, replaced_dir
from gpuetl.lake.verify import require_no_holes
from gpuetl.ops import NORMALIZATIONS
from gpuetl.remote.tree import FileEntry
from gpuetl.remote.workers import get, put
from gpuetl.stages import peak_host_bytes, provenance

RAW_DATASETS = ("bars_daily", "topix", "master")
DEFAULT_PARTITION_ROWS = 1_500_000
DEFAULT_DAY_ROWS = 200_000  # build.day_rows in configs/gpuetl.yaml

log = logging.getLogger(__name__)

__all__ = ["BuildError", "BuildResult", "build_dataset", "warmup_days"]


@dataclasses.dataclass
class BuildResult:
    out: Path
    rows: int
    codes: int
    dates: int
    features: list[str]
    targets: list[str]
    timings: dict[str, float]  # seconds per stage, summed over the tasks
    peak_device_bytes: int | None
    peak_host_bytes: int  # the largest of this process and every task's process
    warmup_days: int = 0  # business days of history read before the first date written
    invalid_prices: int = 0  # bar rows whose non-positive prices or negative volume were read as missing
    parts: int = 1  # code parts
    runner: str = "in-process"


def build_dataset(backend: Backend, cfg: DatasetConfig, lake: str | Path, out: str | Path, progress: bool = True,
                  overwrite: bool = False, runner: Runner | None = None,
                  partition_rows: int = DEFAULT_PARTITION_ROWS, read: Sequence[Input] = (),
                  day_rows: int = DEFAULT_DAY_ROWS) -> BuildResult:
    """Build the dataset `cfg` from `lake` into `out`; `runner` runs the tasks (default: this process). `out` may
    not be the lake or anything else in `read` (nor inside or above one); it is locked for the whole build."""
    read = [Input(Path(lake), "the lake"), *read]
    out = check_output_dir(out, "dataset", overwrite=overwrite, read=read)  # before the work (and the lock)
    with claimed(out):
        return _build(backend, cfg, Path(lake), out, progress, overwrite, runner, partition_rows, read, day_rows)


def _build(backend: Backend, cfg: DatasetConfig, lake: Path, out: Path, progress: bool, overwrite: bool,
           runner: Runner | None, partition_rows: int, read: Sequence[Input], day_rows: int) -> BuildResult:
    runner = runner or InProcess(backend, progress)
    manifest = Manifest.load(lake)  # once: the plan and the metadata hash use this one
    plan = plan_build(backend, cfg, lake, manifest, partition_rows, runner, day_rows)
    with replaced_dir(out, "dataset", overwrite=overwrite, read=read) as tmp:  # data and metadata.json together
        parts, years = run_plan(backend, plan, runner, tmp)
        result = finish(backend, manifest, plan, runner, parts, years, tmp, out)
    return result


def plan_build(backend: Backend, cfg: DatasetConfig, lake: Path, manifest: Manifest, partition_rows: int,
               runner: Runner, day_rows: int = DEFAULT_DAY_ROWS) -> BuildPlan:
    """The build's plan, once the lake is known to have no hole in the days it reads (a lost day joins two)."""
    plan = make_plan(backend, cfg, lake, manifest, partition_rows, target_names(cfg.targets.horizons), day_rows,
                     min_parts=2 * runner.workers if runner.workers > 1 else 1)
    require_no_holes(manifest, read_datasets(plan), EPOCH + dt.timedelta(days=plan.read_from), cfg.end, BuildError)
    return plan


def read_datasets(plan: BuildPlan) -> list[str]:
    """The raw datasets a build of `plan` reads (bars, TOPIX, master, and the enrichment's inputs)."""
    return [*RAW_DATASETS, *(d for g in plan.enrich for d in REGISTRY.get(g).inputs)]


def lake_inputs(plan: BuildPlan) -> tuple[str, ...]:
    """The lake's folders a build's tasks read: what `read_datasets` names and the trading calendar."""
    return tuple(sorted({*read_datasets(plan), "calendar"}))


def run_plan(backend: Backend, plan: BuildPlan, runner: Runner,
             folder: Path) -> tuple[list[CodePartResult], list[YearResult]]:
    """Every code part (over the whole history read), the time-series z-scores over every date, and the years of
    `plan.years()` written to `folder`/data; the spill store lives in `folder` until then. On workers that
    share no filesystem with this process (`runner.files`), the spill and the years go through the output's
    store, and the years are fetched into `folder` at the end."""
    spill = folder / ".spill"
    url = runner.files.exchange(folder) if runner.files else None
    coded = runner.map(functools.partial(_code_task, plan, spill, runner.files, url), range(len(plan.parts)),
                       "codes")
    parts = [part for part, _ in coded]
    spilled = {rel: entry for _, made in coded for rel, entry in made.items()}
    series_z = _fit_series(backend, plan, parts)
    chunks = [(year, i) for year in plan.years() for i in range(len(plan.year_chunks(year)))]
    done = runner.map(functools.partial(_chunk_task, plan, spill, runner.files, url, spilled, series_z,
                                        folder / "data"), chunks, "days")
    if url is not None:
        get(url, {rel: entry for _, made in done for rel, entry in made.items()}, folder / "data")
    shutil.rmtree(spill, ignore_errors=True)
    return parts, merge_years([year for year, _ in done])


def finish(backend: Backend, manifest: Manifest, plan: BuildPlan, runner: Runner, parts: list[CodePartResult],
           years: list[YearResult], folder: Path, out: Path) -> BuildResult:
    """The result of the build of `out` and its metadata.json in `folder` (where `out` is written), from its code
    parts and every year of the dataset (`years`: those written now and, for `gpuetl update`, those kept)."""
    cfg = plan.cfg
    years = sorted(years, key=lambda y: y.year)
    rows = sum(y.rows for y in years)
    if rows == 0:
        raise BuildError(f"no rows between {cfg.start} and {cfg.end} in universe {cfg.universe!r}")
    tasks: list[CodePartResult | YearResult] = [*parts, *years]
    timings: dict[str, float] = {}
    for task in tasks:
        for name, secs in task.timings.items():
            timings[name] = round(timings.get(name, 0.0) + secs, 4)
    devices = [t.peak_device_bytes for t in tasks if t.peak_device_bytes is not None]
    result = BuildResult(out, rows, len({c for y in years for c in y.codes}), sum(y.dates for y in years),
                         plan.features, list(plan.targets), timings, max(devices) if devices else None,
                         max([peak_host_bytes(), *(t.peak_host_bytes for t in tasks)]), plan.warmup,
                         sum(p.invalid_prices for p in parts), len(plan.parts), runner.name)
    _write_metadata(backend, cfg, manifest, result, plan, _coverage(plan, years, rows), years, folder)
    return result


def _code_task(plan: BuildPlan, spill: Path, files: TaskFiles | None, url: str | None, backend: Backend,
               index: int) -> tuple[CodePartResult, dict[str, FileEntry]]:
    """Code part `index`; with `url`, written to this worker's scratch and handed on as objects of `url`."""
    if files is not None:
        plan = dataclasses.replace(plan, lake=files.path(plan.lake, lake_inputs(plan)))
    if files is None or url is None:
        return code_part(backend, plan, index, spill), {}
    own = files.scratch() / "spill"
    result = code_part(backend, plan, index, own)
    made = sorted(str(p.relative_to(own)) for p in own.glob(f"year=*/{spill_file(Path(), index, 0).name}"))
    return result, put(url, own, made)


def _chunk_task(plan: BuildPlan, spill: Path, files: TaskFiles | None, url: str | None,
                spilled: dict[str, FileEntry], series_z: dict[str, np.ndarray], folder: Path, backend: Backend,
                chunk: tuple[int, int]) -> tuple[YearResult, dict[str, FileEntry]]:
    """Day chunk `chunk` (year, index); with `url`, the spill it reads fetched from `url` into this worker's
    scratch, and the file it writes handed back as an object of `url`."""
    year, index = chunk
    if files is not None:
        plan = dataclasses.replace(plan, lake=files.path(plan.lake, lake_inputs(plan)))
    if files is None or url is None:
        return chunk_part(backend, plan, year, index, spill, series_z, folder), {}
    own = files.scratch()
    first = plan.year_chunks(year)[index][0]
    since = int(civil_from_days(np, np.array([plan.reads_from(first)], dtype=np.int64))[0][0])  # the overlap's
    needed = {str(spill_file(Path(), i, y)) for i in range(len(plan.parts)) for y in range(since, year + 1)}
    get(url, {rel: e for rel, e in spilled.items() if rel in needed}, own / "spill")
    result = chunk_part(backend, plan, year, index, own / "spill", series_z, own / "data")
    written = sorted((own / "data").glob(f"year={year}/part-{index}.parquet"))
    made = put(url, own / "data", [str(p.relative_to(own / "data")) for p in written])
    for p in written:
        p.unlink()  # in the store now; only the spill is read again (by this worker's other chunks)
    return result, made


def _fit_series(backend: Backend, plan: BuildPlan, parts: list[CodePartResult]) -> dict[str, np.ndarray]:
    """Each time_series column's value per date (the same for every code that has it: checked) and its
    trailing z-score over every date of the plan (the `ts_zscore` op, on a panel of one row per date)."""
    norm = plan.cfg.normalize
    if norm.method == "none" or not plan.time_series:
        return {}
    values: dict[str, np.ndarray] = {}
    for col in plan.time_series:
        with np.errstate(invalid="ignore"):
            hi = functools.reduce(np.fmax, [p.extremes[col][0] for p in parts])
            lo = functools.reduce(np.fmin, [p.extremes[col][1] for p in parts])
        if bool((hi != lo)[~np.isnan(hi)].any()):
            raise ValueError(f"feature {col!r} is declared `time_series` (the same for every stock on a day) but "
                             "differs across codes on some days; declare it `cross_section`")
        values[col] = hi
    xp = backend.xp
    by_date = Panel(backend, xp.zeros(len(plan.dates), dtype=xp.int64), xp.asarray(plan.dates),
                    {c: xp.asarray(v) for c, v in values.items()})
    z = ops.run(REGISTRY.get("ts_zscore", "normalize"), by_date,
                {"columns": tuple(values), "window": norm.ts_window, "min_periods": norm.ts_min_periods,
                 "clip": norm.clip}, by_date.columns)
    return {col: backend.to_host(z[ts_z_name(col)]) for col in values}  # host-ok: per-date series between tasks


def _coverage(plan: BuildPlan, years: list[YearResult], rows: int) -> dict[str, dict[str, Any]]:
    """Per feature: the share of written rows with a value, and the first date with one."""
    out = {}
    for col in plan.kinds:
        firsts = [day for y in years if (day := y.first[col]) is not None]
        first = min(firsts) if firsts else None
        out[col] = {"share": round(sum(y.valid[col] for y in years) / rows, 6) if rows else 0.0,
                    "first_date": None if first is None else str(EPOCH + dt.timedelta(days=first))}
    return out


def _write_metadata(backend: Backend, cfg: DatasetConfig, manifest: Manifest, result: BuildResult, plan: BuildPlan,
                    coverage: dict[str, dict[str, Any]], years: list[YearResult], folder: Path) -> None:
    enriched = [d for g in plan.enrich for d in REGISTRY.get(g).inputs]
    norm = cfg.normalize
    meta = {
        **provenance(backend, cfg.name),
        "rows": result.rows, "codes": result.codes, "dates": result.dates,
        "warmup_days": result.warmup_days,
        "invalid_price_rows": result.invalid_prices,
        "feature_count": len(result.features),
        "features_by_group": plan.groups,
        "normalized": [] if norm.method == "none" else
        [name for col in result.features for name in (f"{col}{norm.suffix}", f"{col}_missing")],
        "normalization": {
            "kinds": NORMALIZATIONS,
            "by_feature": plan.kinds,
            "missing_flag": "<feature>_missing is 1 exactly where the raw value is NaN; <feature>" + norm.suffix +
                            " is 0 where it is missing or cannot be computed (one value or no spread that day, "
                            "a trailing window not yet filled)",
        },
        "coverage": coverage,  # per feature: share of rows with a value, first date with one
        "targets": result.targets,
        "target_descriptions": TARGET_DESCRIPTIONS,  # k: the horizon in business days (rows of the code)
        "default_label": f"target_next_ret_{cfg.targets.horizons[0]}d",
        "enrich": plan.enrich_status,
        "parts": result.parts, "runner": result.runner,
        "raw_manifest_hash": manifest.digest(sorted(set(RAW_DATASETS) | set(enriched))),
        "inputs": inputs_record(manifest, plan, read_datasets(plan)),  # what `gpuetl update` compares
        "years": {str(y.year): year_record(plan, y) for y in years},
        "timings_s": result.timings,
        "peak_device_bytes": result.peak_device_bytes,
        "peak_host_bytes": result.peak_host_bytes,
        "config": to_dict(cfg),
    }
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2, default=str))
