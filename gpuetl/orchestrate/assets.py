"""The daily assets, one partition per Tokyo day: the lake fetched through the day, the dataset and its graphs as
of the day's close, and the ranking of the day's codes. Each calls the library function its command calls, with
the command's arguments (no second pipeline):

| asset       | calls                                          | as the command                                  |
|-------------|------------------------------------------------|-------------------------------------------------|
| lake        | `gpuetl.commands.fetch.fetch_lake`             | gpuetl fetch [--demo] [--start S] --end DAY     |
| dataset     | `gpuetl.dataset.build.build_dataset`           | gpuetl build --config-set end=DAY (the first)   |
|             | `gpuetl.dataset.update.update_dataset`         | gpuetl update --no-fetch --end DAY (then)       |
| graphs      | `gpuetl.graphs.dataset.graph_dataset`          | gpuetl graph --overwrite (unless the update     |
|             |                                                | extended them)                                  |
| predictions | `gpuetl.train.predict.predict_day`             | gpuetl predict --date DAY --out <root>/DAY      |

The lake grows unit by unit (a fetch of a day already held requests nothing); the dataset and its graphs are one
folder each, built once and then extended by each new day (a backfill of a day the dataset holds already leaves
them as they are: the rows up to a day do not depend on later days); each day's ranking is a folder of its own.
Outputs are replaced only when they are of the step's own kind, as with the commands' --overwrite.
"""

# no `from __future__ import annotations`: Dagster reads the context and resource annotations at run time

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from gpuetl import backend
from gpuetl.backend import Backend
from gpuetl.cluster import ClusterError
from gpuetl.commands.fetch import fetch_lake
from gpuetl.config import ConfigError, Settings, to_dict
from gpuetl.dataset.build import build_dataset
from gpuetl.dataset.config import load_dataset_config
from gpuetl.dataset.plan import BuildError
from gpuetl.dataset.update import UpdateError, update_dataset
from gpuetl.fetch.plan import FetchInputError
from gpuetl.graphs.config import load_graph_config
from gpuetl.graphs.dataset import GraphInputError, graph_dataset
from gpuetl.graphs.io import StaleGraphsError, check_graphs
from gpuetl.jquants.errors import JQuantsError
from gpuetl.lake.manifest import ManifestError
from gpuetl.lake.outputs import OutputError
from gpuetl.lake.verify import CorruptLakeError
from gpuetl.orchestrate.resources import GpuetlResource
from gpuetl.tensors import DatasetError
from gpuetl.train.learner import TrainError
from gpuetl.train.predict import FORMATS, PredictError, predict_day

# what the commands report in one line (exit 1 or 2): a step fails with that line, without a traceback
_ONE_LINE = (JQuantsError, FetchInputError, OutputError, ManifestError, CorruptLakeError, BuildError, ClusterError,
             GraphInputError, StaleGraphsError, UpdateError, DatasetError, PredictError, TrainError, ConfigError,
             FileNotFoundError)
GROUP = "gpuetl"


@contextlib.contextmanager
def one_line(step: str) -> Iterator[None]:
    """The library's own errors as a Dagster failure of one line, `gpuetl <step>: what is wrong and the fix`."""
    try:
        yield
    except _ONE_LINE as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise dg.Failure(description=f"gpuetl {step}: {message}", allow_retries=False) from None


def _start(gpuetl: GpuetlResource) -> tuple[Settings, Backend]:
    settings = gpuetl.load()
    return settings, backend.init(settings)


def last_date(dataset: Path) -> str | None:
    """The dataset's last date as its metadata records it (None: no dataset, or no record)."""
    try:
        meta = json.loads((dataset / "metadata.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return (meta.get("inputs") or {}).get("last_date")


def refresh_dataset(gpuetl: GpuetlResource, day: str, say: Callable[[str], None]) -> dict[str, Any]:
    """The dataset through `day`: built when there is none (`gpuetl build --config-set end=DAY`), extended by the
    new days when it ends before (`gpuetl update --end DAY`), left as it is when it holds the day already (a
    backfill: its rows up to the day are those a build to the day makes). What was done, for the asset's metadata."""
    settings, b = _start(gpuetl)
    cfg = load_dataset_config(gpuetl.dataset_config, [*gpuetl.dataset_overrides, f"end={day}"])
    lake, out = gpuetl.lake_path(settings), Path(gpuetl.dataset)
    read = gpuetl.config_inputs(gpuetl.dataset_config)
    last = last_date(out)
    if not (out / "metadata.json").is_file():
        built = build_dataset(b, cfg, lake, out, progress=False, overwrite=True,
                              partition_rows=settings.build.partition_rows, read=read,
                              day_rows=settings.build.day_rows)
        return {"dataset": str(out), "action": "built", "rows": built.rows, "last_date": day}
    if last is not None and last >= day:
        return {"dataset": str(out), "action": "current", "last_date": last}
    result = update_dataset(b, cfg, lake, out, progress=False, partition_rows=settings.build.partition_rows,
                            read=read, say=say, day_rows=settings.build.day_rows)
    return {"dataset": str(out), "action": result.action, "reason": result.reason, "last_date": result.last_date,
            "graphs": result.graphs}


def refresh_graphs(gpuetl: GpuetlResource) -> dict[str, Any]:
    """The dataset's graphs (`gpuetl graph --overwrite`), unless they are those of the dataset as it is, made with
    this graph config (an update extends them with the dataset)."""
    settings, b = _start(gpuetl)
    cfg = load_graph_config(gpuetl.graph_config, gpuetl.graph_overrides)
    dataset = Path(gpuetl.dataset)
    try:
        meta = check_graphs(dataset)
    except StaleGraphsError:
        meta = None
    if meta is not None and meta.get("config") == json.loads(json.dumps(to_dict(cfg), default=str)):
        return {"graphs": str(dataset / "graphs"), "action": "current", "graph_days": meta["graph_days"],
                "edges": meta["edges"]}
    result = graph_dataset(b, cfg, dataset, gpuetl.lake_path(settings), progress=False, overwrite=True,
                           read=gpuetl.config_inputs(gpuetl.graph_config))
    return {"graphs": str(result.out), "action": "made", "graph_days": result.graph_days, "edges": result.edges}


def daily_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """lake -> dataset -> graphs -> predictions, partitioned by `partitions` (days)."""

    @dg.asset(partitions_def=partitions, group_name=GROUP, description="the raw lake, fetched through the day")
    def lake(context: dg.AssetExecutionContext, gpuetl: GpuetlResource) -> dg.MaterializeResult:
        day = context.partition_key
        with one_line("fetch"):
            settings = gpuetl.load()
            summary = asyncio.run(fetch_lake(settings, gpuetl.fetch_start, day, gpuetl.datasets,
                                             gpuetl.lake_path(settings), demo=gpuetl.demo, progress=False))
        return dg.MaterializeResult(metadata={
            "lake": str(summary.lake), "requests": summary.requests, "manifest_hash": summary.manifest_hash,
            "units_fetched": sum(d.done for d in summary.datasets.values())})

    @dg.asset(partitions_def=partitions, group_name=GROUP, deps=[lake],
              description="the dataset as of the day's close (features, targets, normalisation)")
    def dataset(context: dg.AssetExecutionContext, gpuetl: GpuetlResource) -> dg.MaterializeResult:
        day = context.partition_key
        with one_line("build" if not (Path(gpuetl.dataset) / "metadata.json").is_file() else "update"):
            return dg.MaterializeResult(metadata=refresh_dataset(gpuetl, day, context.log.info))

    @dg.asset(partitions_def=partitions, group_name=GROUP, deps=[dataset],
              description="the dataset's daily correlation graphs and graph features")
    def graphs(context: dg.AssetExecutionContext, gpuetl: GpuetlResource) -> dg.MaterializeResult:
        with one_line("graph"):
            return dg.MaterializeResult(metadata=refresh_graphs(gpuetl))

    @dg.asset(partitions_def=partitions, group_name=GROUP, deps=[graphs],
              description="the day's codes ranked by the run's model (predictions-<day>.<format>)")
    def predictions(context: dg.AssetExecutionContext, gpuetl: GpuetlResource) -> dg.MaterializeResult:
        day = context.partition_key
        with one_line("predict"):
            settings, b = _start(gpuetl)
            fmt = next((f for f in FORMATS if f == gpuetl.format), None)
            if fmt is None:
                raise PredictError(f"format {gpuetl.format!r}: choose one of {', '.join(FORMATS)}")
            result = predict_day(b, gpuetl.run, gpuetl.dataset, gpuetl.predictions_path(settings, day), day, fmt,
                                 overwrite=True, read=gpuetl.config_inputs())
        top = "\n".join(f"| {r.rank} | {r.Code} | {r.score:+.6f} |" for r in result.ranking.head(10).itertuples())
        return dg.MaterializeResult(metadata={
            "file": str(result.file), "codes": len(result.ranking), "model": result.summary["model"],
            "out_of_sample": result.summary["out_of_sample"],
            "top": dg.MetadataValue.md(f"| rank | Code | score |\n|---:|---|---:|\n{top}")})

    return [lake, dataset, graphs, predictions]
