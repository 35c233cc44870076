"""Writing graphs: edges and codes as Parquet (from the device on the GPU), per-(Code, Date) features, metadata.

Layout of a graph output folder (by default `<dataset>/graphs/`), written to a temporary folder and renamed:

    codes.parquet                 index (int32), Code: src/dst of the edges index this table
    edges/year=YYYY/*.parquet     Date (timestamp[ms]), src, dst (int32, src < dst), weight (float32)
    features/year=YYYY/*.parquet  Code, Date, graph_* (float32): one row per dataset row (`gpuetl graph`)
    graphs.json                   config, counts (and per year), batch size, timings, backend, dataset_hash

`dataset_hash` is the digest of the dataset the graphs were made from (`dataset_digest`). Rebuilding a dataset
keeps its graphs/ folder but changes the digest, so `check_graphs` (for every reader) refuses them as stale
until `gpuetl graph` runs again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpuetl.backend import Backend
from gpuetl.config import to_dict
from gpuetl.dates import EPOCH, civil_from_days
from gpuetl.graphs.build import GraphOutput
from gpuetl.graphs.config import GraphConfig
from gpuetl.lake.outputs import Input, replaced_dir
from gpuetl.stages import provenance

_MS_PER_DAY = 86_400_000
# metadata.json keys that describe a build run, not what it made (a faster or GPU rebuild makes the same rows)
_RUN_DETAILS = frozenset({"created_at", "timings_s", "peak_device_bytes", "peak_host_bytes", "backend", "device",
                          "parts", "runner", "tasks", "dataset", "lake"})  # how and where it ran, not what it made


class StaleGraphsError(RuntimeError):
    """Graphs that are missing or were made from another build of their dataset; says what to run."""


def dataset_digest(dataset: str | Path) -> str | None:
    """What a dataset build made, as one hash: its metadata.json without the run details (None: no metadata)."""
    return _digest(Path(dataset) / "metadata.json")


def graphs_digest(graphs: str | Path) -> str | None:
    """What a graph run made, as one hash: its graphs.json without the run details (None: no graphs)."""
    return _digest(Path(graphs) / "graphs.json")


def _digest(path: Path) -> str | None:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    made = {k: v for k, v in meta.items() if k not in _RUN_DETAILS}
    return "sha256:" + hashlib.sha256(json.dumps(made, sort_keys=True, default=str).encode()).hexdigest()


def check_graphs(dataset: str | Path, graphs: str | Path | None = None) -> dict[str, Any]:
    """graphs.json of the graphs of `dataset` (default `<dataset>/graphs`), once they are known to belong to
    the dataset as it is now; StaleGraphsError (one line: what to run) when missing or made from another build."""
    dataset = Path(dataset)
    graphs = Path(graphs) if graphs else dataset / "graphs"
    rerun = f"run `gpuetl graph --dataset {dataset}" + (f" --out {graphs}" if graphs != dataset / "graphs" else "")
    try:
        meta: dict[str, Any] = json.loads((graphs / "graphs.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StaleGraphsError(f"no graphs at {graphs}: {rerun}`") from None
    if meta.get("dataset_hash") != dataset_digest(dataset):
        raise StaleGraphsError(f"the graphs at {graphs} were made from an earlier build of {dataset} "
                               f"(stale): {rerun} --overwrite` again")
    return meta


def dates_from_days(backend: Backend, days: Any) -> Any:
    """int64 days since 1970-01-01 (array of the backend) -> a timestamp[ms] Series of the frame library."""
    return backend.xdf.Series(days.astype(backend.xp.int64) * _MS_PER_DAY).astype("datetime64[ms]")


def edges_frame(backend: Backend, output: GraphOutput) -> Any:
    xp = backend.xp
    days = output.dates[output.edges["day"]]
    year, _, _ = civil_from_days(xp, days)
    return backend.xdf.DataFrame({"Date": dates_from_days(backend, days), "src": output.edges["src"],
                                  "dst": output.edges["dst"], "weight": output.edges["weight"].astype(xp.float32),
                                  "year": year.astype(xp.int16)})


def write_partitioned(frame: Any, path: Path) -> None:
    """A frame as Parquet partitioned by `year`; an empty frame as one empty file (keeping the schema)."""
    if len(frame):
        frame.to_parquet(str(path), partition_cols=["year"], index=False)
    else:
        path.mkdir(parents=True, exist_ok=True)
        frame.drop(columns=["year"]).to_parquet(str(path / "part-0.parquet"), index=False)


def edge_years(backend: Backend, edges: Any) -> dict[str, dict[str, Any]]:
    """Per year of an edges frame (Date, ..., year): its edges, its days with an edge and the first of them; what
    graphs.json records so that `gpuetl update` can keep a year's files without reading them."""
    if not len(edges):
        return {}
    by_year = edges.groupby("year", sort=True)["Date"]
    count, days, first = by_year.size(), by_year.nunique(), by_year.min()
    years = backend.to_host(count.index)  # host-ok: a few numbers per year, for graphs.json
    count, days = backend.to_host(count.values), backend.to_host(days.values)  # host-ok: the same
    first = backend.to_host(backend.days(first))  # host-ok: the same
    return {str(int(y)): {"edges": int(n), "days_with_edges": int(d), "first_day_with_edges": _iso(int(f))}
            for y, n, d, f in zip(years, count, days, first, strict=True)}


def _iso(day: int) -> str:
    return str(EPOCH + dt.timedelta(days=day))


def graphs_meta(backend: Backend, cfg: GraphConfig, codes: int, output: GraphOutput, graph_days: int,
                years: dict[str, dict[str, Any]], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """graphs.json: the config, the counts (edges and days with edges summed over `years`), batch size,
    timings, backend, and `extra` (where the graphs came from, dataset_hash)."""
    firsts = [y["first_day_with_edges"] for y in years.values()]
    return {
        **provenance(backend, cfg.name),
        "codes": codes,
        "graph_days": graph_days,
        "edges": sum(y["edges"] for y in years.values()),
        "features": list(output.features),
        "batch_days": output.batch_days,
        "timings_s": output.timings,
        "config": to_dict(cfg),
        "definitions": "gpuetl/graphs/__init__.py",
        "days_with_edges": sum(y["days_with_edges"] for y in years.values()),
        "first_day_with_edges": min(firsts) if firsts else None,
        "years": years,
        **(extra or {}),
    }


def write_codes(backend: Backend, folder: Path, codes: Any) -> int:
    """codes.parquet (index, Code): what src/dst of the edges index; returns how many."""
    codes = backend.xdf.Series(codes).reset_index(drop=True)
    backend.xdf.DataFrame({"index": backend.xp.arange(len(codes), dtype=backend.xp.int32),
                           "Code": codes}).to_parquet(str(folder / "codes.parquet"), index=False)
    return len(codes)


def write_graphs(backend: Backend, out: str | Path, codes: Any, output: GraphOutput, cfg: GraphConfig,
                 features: Any = None, extra: dict[str, Any] | None = None, overwrite: bool = False,
                 read: Sequence[Input] = ()) -> Path:
    """Write codes, edges, optional features frame (Code, Date, graph_*, year) and graphs.json to `out`
    (a new or empty folder, or with `overwrite` graphs gpuetl wrote; never one of `read`)."""
    with replaced_dir(out, "graphs", overwrite=overwrite, read=read) as tmp:
        write_graph_files(backend, tmp, codes, output, cfg, features, extra)
    return Path(out)


def write_graph_files(backend: Backend, folder: Path, codes: Any, output: GraphOutput, cfg: GraphConfig,
                      features: Any = None, extra: dict[str, Any] | None = None) -> None:
    """The files of `write_graphs` in `folder`, as they are (a folder being filled, e.g. the temporary one)."""
    n_codes = write_codes(backend, folder, codes)
    edges = edges_frame(backend, output)
    write_partitioned(edges, folder / "edges")
    if features is not None:
        write_partitioned(features, folder / "features")
    meta = graphs_meta(backend, cfg, n_codes, output, len(output.graph_days), edge_years(backend, edges), extra)
    (folder / "graphs.json").write_text(json.dumps(meta, indent=2, default=str))
