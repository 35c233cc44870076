"""Graphs for an existing dataset: bars from the raw lake -> adjusted closes -> returns -> graphs, and the graph
features of every dataset row, written beside the dataset (`<dataset>/graphs/`, see gpuetl/graphs/io.py).

The lake is read from `window` business days (dates with bars) before the dataset's first date to its last
date, so the first graph day (the dataset's first date) has a full window. Adjusted closes are forward-cumulated exactly
as the dataset build does (gpuetl/features/adjust.py): raw close / product of the code's factors so far.
The nodes of a day are the codes with a dataset row that day (so a universe selection carries over; other
codes' returns are never used). The features join the dataset on (Code, Date); its own files are not rewritten.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpuetl.backend import Backend
from gpuetl.cluster import InProcess, Runner, TaskFiles
from gpuetl.dates import civil_from_days
from gpuetl.features.adjust import cumulative_factor
from gpuetl.features.panel import Panel
from gpuetl.graphs.build import GraphOutput, build_graphs, graph_day_indices, panel_features
from gpuetl.graphs.config import GraphConfig
from gpuetl.graphs.features import graph
from gpuetl.graphs.io import dataset_digest, dates_from_days, write_graphs
from gpuetl.graphs.returns import Returns, returns_from_panel
from gpuetl.lake.manifest import Manifest
from gpuetl.lake.outputs import Input, check_output_dir, claimed
from gpuetl.lake.reader import read_raw
from gpuetl.stages import peak_host_bytes

BAR_COLUMNS = ["Code", "Date", "C", "AdjFactor"]


class GraphInputError(RuntimeError):
    """The dataset or the lake cannot make graphs (missing, empty); the message says what to run."""


@dataclasses.dataclass
class GraphRunResult:
    out: Path
    rows: int
    codes: int
    graph_days: int
    edges: int
    features: list[str]
    batch_days: int
    timings: dict[str, float]
    peak_device_bytes: int | None
    peak_host_bytes: int


def dataset_rows(backend: Backend, dataset: Path) -> Any:
    """The dataset's (Code, Date) rows as a frame of the backend."""
    files = sorted((dataset / "data").rglob("*.parquet"))
    if not files:
        raise GraphInputError(f"no dataset at {dataset} (expected data/year=YYYY/*.parquet): build it first "
                              "with `gpuetl build`")
    return backend.read_parquet([str(f) for f in files], columns=["Code", "Date"])


def load_bars(backend: Backend, lake: Path, first_day: int, last_day: int, lookback: int) -> Any:
    """Daily bars (Code, Date, C, AdjFactor) from `lookback` business days (dates with bars) before `first_day`
    to `last_day`, sorted by (Code, Date)."""
    xp = backend.xp
    bars = read_raw(backend, Manifest.load(lake), "bars_daily", BAR_COLUMNS, GraphInputError)
    days = backend.days(bars["Date"])
    dates = xp.unique(days[days <= last_day])
    lo = dates[max(int(xp.searchsorted(dates, first_day)) - lookback,  # host-ok: one index
                   0)] if len(dates) else first_day
    bars = bars.iloc[xp.flatnonzero((days >= lo) & (days <= last_day))]
    if len(bars) == 0:
        raise GraphInputError(f"the lake at {lake} has no daily bars for the dataset's dates")
    return bars.sort_values(["Code", "Date"]).reset_index(drop=True)


def adjusted_panel(backend: Backend, bars: Any) -> tuple[Panel, Any]:
    """A Panel with the forward-adjusted `close`, and the sorted codes (code index -> Code)."""
    xp = backend.xp
    code_id, codes = bars["Code"].factorize()  # rows are sorted by Code, so ids follow the sorted codes
    panel = Panel(backend, xp.asarray(code_id), backend.days(bars["Date"]),
                  {"C": backend.to_array(bars["C"]), "AdjFactor": backend.to_array(bars["AdjFactor"])})
    panel.columns["close"] = panel["C"] / cumulative_factor(panel)
    return panel, codes


def locate_rows(backend: Backend, rows: Any, codes: Any, dates: Any) -> tuple[Any, Any, Any]:
    """For each dataset row: its date index in `dates`, its code index in `codes`, and whether both exist."""
    xp, xdf = backend.xp, backend.xdf
    table = xdf.DataFrame({"Code": xdf.Series(codes).reset_index(drop=True), "_code": xp.arange(len(codes))})
    keyed = rows[["Code"]].assign(_row=xp.arange(len(rows))).merge(table, on="Code", how="left").sort_values("_row")
    code = backend.to_array(keyed["_code"].reset_index(drop=True))
    days = backend.days(rows["Date"])
    pos = xp.minimum(xp.searchsorted(dates, days), len(dates) - 1)
    found = (dates[pos] == days) & ~xp.isnan(code)
    return pos, xp.where(found, code, 0).astype(xp.int64), found


def row_features(backend: Backend, rows: Any, output: GraphOutput, date_pos: Any, code_pos: Any,
                 found: Any) -> Any:
    """Frame of Code, Date, graph_* (float32) and year for the dataset rows (NaN where a row has no graph)."""
    xp, xdf = backend.xp, backend.xdf
    days = backend.days(rows["Date"])
    data: dict[str, Any] = {"Code": rows["Code"].reset_index(drop=True), "Date": dates_from_days(backend, days)}
    for name, values in output.features.items():
        data[name] = xp.where(found, values[date_pos, code_pos], xp.nan).astype(xp.float32)
    year, _, _ = civil_from_days(xp, days)
    data["year"] = year.astype(xp.int16)
    return xdf.DataFrame(data)


def graph_stage(backend: Backend, panel: Panel, codes: Any, cfg: GraphConfig, first_day: int,
                out: str | Path | None = None, progress: bool = False,
                node_rows: Any = None) -> tuple[dict[str, Any], GraphOutput]:
    """The graph stage of a dataset build: graphs from the panel's adjusted `close`, one every `every_n_days`
    from the first date >= `first_day` (days since 1970-01-01), edges written to `out` when given, and the
    graph features as columns aligned with the panel's rows (NaN before the first graph). `node_rows`
    (bool per panel row), if given, limits the nodes to those rows (e.g. the dataset's selected universe)."""
    start = int(backend.xp.searchsorted(panel.unique_dates, first_day))  # host-ok: the first graph day's index
    eligible = None
    if node_rows is not None:
        eligible = backend.xp.zeros((len(panel.unique_dates), len(panel.offsets) - 1), dtype=bool)
        eligible[panel.date_id, panel.group] = node_rows
    output = build_graphs(backend, returns_from_panel(panel), cfg, start, progress, eligible)
    if out is not None:
        write_graphs(backend, out, codes, output, cfg)
    return panel_features(panel, output), output


@dataclasses.dataclass(frozen=True)
class GraphJob:
    """What every graph task reads: the dataset, the lake and the config (hashable: tasks cache their inputs)."""

    dataset: Path
    lake: Path
    cfg: GraphConfig


@dataclasses.dataclass
class GraphInputs:
    rows: Any  # the dataset's (Code, Date) rows
    codes: Any  # code index -> Code
    returns: Returns
    eligible: Any  # (T, N) bool: the codes that may be nodes on each date (the dataset's rows)
    start: int  # the first graph day's date index
    date_pos: Any
    code_pos: Any
    found: Any


@functools.lru_cache(maxsize=1)
def graph_inputs(backend: Backend, job: GraphJob) -> GraphInputs:
    """The dataset's rows and the lake's returns from the graph window before its first date (cached: the tasks
    of one run in one process share them)."""
    rows = dataset_rows(backend, job.dataset)
    if len(rows) == 0:
        raise GraphInputError(f"the dataset at {job.dataset} has no rows")
    row_days = backend.days(rows["Date"])
    first, last = int(row_days.min()), int(row_days.max())  # host-ok: two scalars set the lake's read window
    bars = load_bars(backend, job.lake, first, last, graph.lookback({"config": job.cfg}))
    panel, codes = adjusted_panel(backend, bars)
    start = int(backend.xp.searchsorted(panel.unique_dates, first))  # host-ok: the first graph day's index
    date_pos, code_pos, found = locate_rows(backend, rows, codes, panel.unique_dates)
    eligible = backend.xp.zeros((len(panel.unique_dates), len(codes)), dtype=bool)
    eligible[date_pos[found], code_pos[found]] = True  # nodes: the dataset's rows (its universe, day by day)
    return GraphInputs(rows, codes, returns_from_panel(panel), eligible, start, date_pos, code_pos, found)


def graph_chunks(inputs: GraphInputs, cfg: GraphConfig, tasks: int, start: int | None = None) -> list[tuple[int, int]]:
    """[lo, hi) date-index ranges, one per task, cut at graph days, so each date is served by one task; from the
    first graph day, or from `start` (a graph day: `gpuetl update` computes only the days from there)."""
    n = inputs.returns.shape[0]
    first = inputs.start if start is None else start
    days = graph_day_indices(n, first, cfg.every_n_days)
    if tasks <= 1 or len(days) <= 1:
        return [(first, n)]
    cuts = [int(days[i]) for i in np.linspace(0, len(days), tasks + 1, dtype=int)[1:-1]]
    bounds = [first, *sorted(set(cuts) - {first}), n]
    return list(itertools.pairwise(bounds))


def graph_chunk(job: GraphJob, backend: Backend, bounds: tuple[int, int],
                files: TaskFiles | None = None) -> GraphOutput:
    """The graphs of the graph days in [lo, hi), with the features of the dates they serve (rows lo..hi-1); with
    `files`, on this worker's own copies of the dataset and the lake (workers that share no filesystem)."""
    lo, hi = bounds
    if files is not None:
        job = dataclasses.replace(job, dataset=files.path(job.dataset, ("data",)),
                                  lake=files.path(job.lake, ("bars_daily",)))
    inputs = graph_inputs(backend, job)
    out = build_graphs(backend, inputs.returns, job.cfg, lo, False, inputs.eligible, stop=hi)
    return dataclasses.replace(out, features={k: v[lo:hi] for k, v in out.features.items()})


def run_graph_days(backend: Backend, job: GraphJob, inputs: GraphInputs, runner: Runner,
                   start: int | None = None) -> tuple[GraphOutput, int]:
    """The graphs of every graph day (from graph day `start`: `gpuetl update`), in tasks of `runner` (two per
    worker on a cluster), merged into one output; and how many tasks ran."""
    chunks = graph_chunks(inputs, job.cfg, 2 * runner.workers if runner.workers > 1 else 1, start)
    parts = runner.map(functools.partial(graph_chunk, job, files=runner.files), chunks, "graphs")
    return _merge(backend, inputs, chunks, parts), len(chunks)


def _merge(backend: Backend, inputs: GraphInputs, chunks: list[tuple[int, int]],
           parts: list[GraphOutput]) -> GraphOutput:
    xp = backend.xp
    n, n_codes = inputs.returns.shape
    features = {k: xp.full((n, n_codes), xp.nan) for k in (parts[0].features if parts else {})}
    for (lo, hi), part in zip(chunks, parts, strict=True):
        for k, v in part.features.items():
            features[k][lo:hi] = v
    edges = {k: xp.concatenate([p.edges[k] for p in parts]) for k in ("day", "src", "dst", "weight")}
    timings: dict[str, float] = {}
    for p in parts:
        for k, secs in p.timings.items():
            timings[k] = round(timings.get(k, 0.0) + secs, 4)
    return GraphOutput(inputs.returns.dates, np.concatenate([p.graph_days for p in parts]), edges, features,
                       max(p.batch_days for p in parts), timings)


def graph_dataset(backend: Backend, cfg: GraphConfig, dataset: str | Path, lake: str | Path,
                  out: str | Path | None = None, progress: bool = True, overwrite: bool = False,
                  runner: Runner | None = None, read: Sequence[Input] = ()) -> GraphRunResult:
    """Graphs of a dataset's rows, written beside it; `runner` runs the graph days in tasks (default: this
    process, one task; on a cluster two per worker), each the same graphs as one run makes. `out` may not be the
    dataset (its `graphs/` is the default place), the lake or anything else in `read`, nor inside or above one."""
    job = GraphJob(Path(dataset).absolute(), Path(lake).absolute(), cfg)
    read = [Input(job.dataset, "the dataset", (job.dataset / "graphs",)), Input(job.lake, "the lake"), *read]
    out = check_output_dir(out or job.dataset / "graphs", "graphs", overwrite=overwrite, read=read)
    with claimed(out):
        return _graph_dataset(backend, job, out, progress, overwrite, runner or InProcess(backend, progress), read)


def _graph_dataset(backend: Backend, job: GraphJob, out: Path, progress: bool, overwrite: bool, runner: Runner,
                   read: Sequence[Input]) -> GraphRunResult:
    cfg, dataset = job.cfg, job.dataset
    digest = dataset_digest(dataset)  # before reading: a dataset rebuilt meanwhile must not pass as this one
    try:
        inputs = graph_inputs(backend, job)
        output, tasks = run_graph_days(backend, job, inputs, runner)
        rows = inputs.rows
        features = (row_features(backend, rows, output, inputs.date_pos, inputs.code_pos, inputs.found)
                    if output.features else None)
        if dataset_digest(dataset) != digest:
            raise GraphInputError(f"the dataset at {dataset} was rebuilt while its graphs were made: run "
                                  "`gpuetl graph` again")
        write_graphs(backend, out, inputs.codes, output, cfg, features,
                     {"dataset": str(dataset), "lake": str(job.lake), "dataset_rows": len(rows),
                      "dataset_hash": digest,
                      "normalization": graph.normalization({"config": cfg}), "tasks": tasks,
                      "runner": runner.name},
                     overwrite, read)
    finally:
        graph_inputs.cache_clear()
    stats = backend.memory_stats()
    return GraphRunResult(out, len(rows), len(inputs.codes), len(output.graph_days), output.n_edges,
                          list(output.features), output.batch_days, output.timings,
                          stats["peak_bytes"] if stats else None, peak_host_bytes())
