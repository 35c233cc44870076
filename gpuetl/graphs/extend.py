"""The graphs of a dataset that `gpuetl update` changed from a date on: only the graph days from there are computed,
and only the years from there are written; the earlier years' files are kept (hard links). The result is the
files `gpuetl graph` makes of the new dataset.

Why that is exact: a graph day's edges and features read the returns of its window and the dataset's rows on its
day (its nodes), never a later date (tests/test_graphs_pipeline.py), and a day's graph does not depend on the
other days computed with it (batches and tasks: tests/test_dataset_parts.py). The returns are made as `gpuetl
graph` makes them, from the same lake window (the adjusted close is cumulated from the window's first row), and
the graph days keep their places (every `every_n_days`-th date from the dataset's first date): the computation
starts at the last graph day at or before the first changed date. One thing would move every old edge: a code new
to the graph window (a listing) shifts the code index of every later code, and the dense matrices of every day
grow by a column; then every graph is computed again, as `gpuetl graph` would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gpuetl.backend import Backend
from gpuetl.cluster import Runner
from gpuetl.config import from_dict
from gpuetl.dates import civil_from_days
from gpuetl.graphs.build import GraphOutput, graph_day_indices
from gpuetl.graphs.config import GraphConfig, validate
from gpuetl.graphs.dataset import GraphInputs, GraphJob, graph_inputs, row_features, run_graph_days
from gpuetl.graphs.features import graph
from gpuetl.graphs.io import dataset_digest, edge_years, edges_frame, graphs_meta, write_codes, write_partitioned
from gpuetl.lake.outputs import write_marker


@dataclasses.dataclass
class GraphUpdate:
    action: str  # "extended" (the days from `since`) or "recomputed" (every graph day)
    since: str | None  # the first graph day computed
    graph_days: int  # graph days computed now
    edges: int  # edges in the graphs now
    years_written: list[int]
    timings: dict[str, float]


def graph_config(meta: dict[str, Any]) -> GraphConfig:
    """The config the graphs of a graphs.json were made with."""
    cfg = from_dict(GraphConfig, meta["config"])
    validate(cfg)
    return cfg


def extend_graphs(backend: Backend, old: Path, dataset: Path, lake: Path, since: int | None, out: Path,
                  runner: Runner, say: Callable[[str], None]) -> GraphUpdate:
    """The graphs of `dataset` (whose rows from day `since` on changed; None: all) into `out` (a folder of the
    dataset being written), from the graphs at `old`, made with the same config from the dataset as it was."""
    meta = json.loads((old / "graphs.json").read_text(encoding="utf-8"))
    job = GraphJob(dataset, lake, graph_config(meta))
    try:
        inputs = graph_inputs(backend, job)
        why = None if since is None else _why_all(backend, meta, old, inputs)
        if why:
            say(why)
        start = inputs.start if since is None or why else _start(backend, inputs, job.cfg, since)
        return _write(backend, job, inputs, old, out, start, runner, start == inputs.start)
    finally:
        graph_inputs.cache_clear()


def _why_all(backend: Backend, meta: dict[str, Any], old: Path, inputs: GraphInputs) -> str | None:
    """Why every graph must be computed again, or None."""
    if "years" not in meta:
        return f"the graphs at {old} were made before `gpuetl update` kept their record: every graph is recomputed"
    was = backend.read_parquet([str(old / "codes.parquet")], ["Code"])["Code"]
    now = backend.xdf.Series(inputs.codes).reset_index(drop=True)
    if len(was) == len(now) and bool((was.astype(str).reset_index(drop=True)
                                      == now.astype(str)).all()):  # host-ok: one flag
        return None
    new = sorted(set(backend.to_host(now.astype(str))) - set(backend.to_host(was.astype(str))))  # host-ok: names
    return (f"{len(new)} code(s) new to the graph window ({', '.join(new[:3])}{' ...' if len(new) > 3 else ''}) "
            "move the code index of every edge: every graph is recomputed")


def _start(backend: Backend, inputs: GraphInputs, cfg: GraphConfig, since: int) -> int:
    """The last graph day at or before `since` (a date index; the first graph day when `since` is before it)."""
    at = int(backend.xp.searchsorted(inputs.returns.dates, since))  # host-ok: one index on the date grid
    days = graph_day_indices(inputs.returns.shape[0], inputs.start, cfg.every_n_days)
    before = days[days <= at]
    return int(before[-1]) if len(before) else inputs.start


def _write(backend: Backend, job: GraphJob, inputs: GraphInputs, old: Path, out: Path, start: int, runner: Runner,
           everything: bool) -> GraphUpdate:
    xp = backend.xp
    cfg = job.cfg
    output, tasks = run_graph_days(backend, job, inputs, runner, start)
    n_dates = inputs.returns.shape[0]
    cut = int(inputs.returns.dates[start]) if start < n_dates else 2**40  # host-ok: one date
    first_year = int(civil_from_days(np, np.asarray([cut]))[0][0]) if start < n_dates else 10**4
    out.mkdir(parents=True, exist_ok=True)
    n_codes = write_codes(backend, out, inputs.codes)
    edges = edges_frame(backend, output)
    earlier = _earlier(backend, old / "edges", first_year, cut, ["Date", "src", "dst", "weight"])
    if earlier is not None and len(earlier):
        earlier["year"] = civil_from_days(xp, backend.days(earlier["Date"]))[0].astype(xp.int16)
        edges = backend.xdf.concat([earlier, edges], ignore_index=True)
    years = _kept_years(old, first_year) | edge_years(backend, edges)
    if len(edges):
        write_partitioned(edges, out / "edges")
    features = None
    if output.features:
        features = _features(backend, inputs, output, old, first_year, cut)
        write_partitioned(features, out / "features")
    for part in ("edges", "features"):
        for year in _years(old / part):
            if year < first_year:
                _link_tree(old / part / f"year={year}", out / part / f"year={year}")
    if not any(_years(out / "edges")):  # no edge anywhere: the one empty file `gpuetl graph` writes
        write_partitioned(edges, out / "edges")
    rows = inputs.rows
    extra = {"dataset": str(job.dataset), "lake": str(job.lake), "dataset_rows": len(rows),
             "dataset_hash": dataset_digest(job.dataset), "normalization": graph.normalization({"config": cfg}),
             "tasks": tasks, "runner": runner.name}
    total_days = len(graph_day_indices(n_dates, inputs.start, cfg.every_n_days))
    meta = graphs_meta(backend, cfg, n_codes, output, total_days, dict(sorted(years.items())), extra)
    (out / "graphs.json").write_text(json.dumps(meta, indent=2, default=str))
    write_marker(out, "graphs")
    written = sorted({y for part in ("edges", "features") for y in _years(out / part) if y >= first_year})
    return GraphUpdate("recomputed" if everything else "extended",
                       str(np.datetime64(cut, "D")) if start < n_dates else None, len(output.graph_days),
                       meta["edges"], written, output.timings)


def _features(backend: Backend, inputs: GraphInputs, output: GraphOutput, old: Path, first_year: int,
              cut: int) -> Any:
    """The feature rows of the years from `first_year`: computed from `cut` on, the earlier ones from `old`."""
    xp = backend.xp
    days = backend.days(inputs.rows["Date"])
    year = civil_from_days(xp, days)[0]
    at = xp.flatnonzero(year >= first_year)
    frame = row_features(backend, inputs.rows.iloc[at].reset_index(drop=True), output, inputs.date_pos[at],
                         inputs.code_pos[at], inputs.found[at])
    names = list(output.features)
    before = xp.flatnonzero(days[at] < cut)
    if not len(before):
        return frame
    earlier = _earlier(backend, old / "features", first_year, cut, ["Code", "Date", *names])
    same = earlier is not None and len(earlier) == len(before)
    if same and not (bool((backend.days(earlier["Date"]) == days[at][before]).all())  # host-ok: one flag
                     and bool((earlier["Code"].astype(str).reset_index(drop=True)  # host-ok: one flag
                               == frame["Code"].iloc[before].astype(str).reset_index(drop=True)).all())):
        same = False
    if not same:
        raise RuntimeError(f"the graph features at {old} do not match the dataset's rows before the update: "
                           "rerun `gpuetl graph --overwrite`")
    for name in names:
        values = backend.to_array(frame[name]).astype(xp.float32)
        values[before] = backend.to_array(earlier[name]).astype(xp.float32)
        frame[name] = values
    return frame


def _earlier(backend: Backend, folder: Path, first_year: int, cut: int, columns: list[str]) -> Any:
    """The rows dated before `cut` of the years from `first_year` in a partitioned folder of the old graphs."""
    files = [str(f) for y in _years(folder) if y >= first_year for f in sorted((folder / f"year={y}").iterdir())]
    if not files:
        return None
    rows = backend.read_parquet(files, columns)
    return rows.iloc[backend.xp.flatnonzero(backend.days(rows["Date"]) < cut)].reset_index(drop=True)


def _years(folder: Path) -> list[int]:
    return sorted(int(p.name[5:]) for p in folder.glob("year=*")) if folder.is_dir() else []


def _kept_years(old: Path, first_year: int) -> dict[str, dict[str, Any]]:
    meta = json.loads((old / "graphs.json").read_text(encoding="utf-8"))
    return {y: s for y, s in meta.get("years", {}).items() if int(y) < first_year}


def _link_tree(src: Path, dst: Path) -> None:
    """`src`'s files at `dst`, hard-linked (copied where the filesystem cannot link)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        link(f, dst / f.name)


def link(src: Path, dst: Path) -> None:
    """A file kept from the output being replaced: a hard link (the old folder goes; the file stays), or a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
