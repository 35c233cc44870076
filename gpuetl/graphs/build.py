"""All daily graphs of a returns matrix, batch by batch: edges plus dense (dates x codes) features.

Batches are runs of graph days that share one matmul and one top-k launch on the GPU, and one set of window
moments and one pool of day threads on the CPU. Their size is the config's `batch.max_days`, lowered to what
memory allows: on the GPU a share of the RMM pool's free bytes, on the CPU `batch.cpu_memory`. A day's results
do not depend on which batch it falls in (tests hold batched == one day at a time).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numba
import numpy as np
from rich.progress import Progress

from gpuetl import ops
from gpuetl.backend import Backend
from gpuetl.features.panel import Panel
from gpuetl.graphs.config import GraphConfig
from gpuetl.graphs.daily import batch_graphs, bytes_per_day, pad_returns
from gpuetl.graphs.features import GraphBatch, graph
from gpuetl.graphs.returns import Returns
from gpuetl.stages import StageTimer


@dataclasses.dataclass
class GraphOutput:
    dates: Any  # (T,) int64 days since 1970-01-01 (the returns' date grid)
    graph_days: np.ndarray  # host int64: date indices that are graph days (every n-th from `start`)
    edges: dict[str, Any]  # day (date index), src, dst (code indices, src < dst), weight; sorted that way
    features: dict[str, Any]  # name -> (T, N) float64, NaN where the code is not a node of the day's graph
    batch_days: int
    timings: dict[str, float]

    @property
    def n_edges(self) -> int:
        return len(self.edges["src"])


def graph_day_indices(n_dates: int, start: int, every_n_days: int) -> np.ndarray:
    return np.arange(max(start, 0), n_dates, every_n_days, dtype=np.int64)


def batch_size(backend: Backend, n_codes: int, cfg: GraphConfig) -> int:
    """Days per batch: max_days, lowered to the memory budget (RMM pool's free bytes on the GPU; on the CPU
    `batch.cpu_memory` less the n x n buffer each of its threads keeps)."""
    n = max(n_codes, 1)
    per_day = bytes_per_day(n, cfg, dense=backend.is_gpu)
    free = backend.free_device_bytes()
    if free is None:
        budget = float(cfg.batch.cpu_bytes) - numba.get_num_threads() * n * n * 8
    else:
        budget = cfg.batch.gpu_memory_fraction * free
    return int(max(1, min(cfg.batch.max_days, budget // per_day)))


def build_graphs(backend: Backend, returns: Returns, cfg: GraphConfig, start: int = 0, progress: bool = False,
                 eligible: Any = None, stop: int | None = None) -> GraphOutput:
    """Graphs for every `every_n_days`-th date index from `start`, and the features of every date from there.

    `eligible` (T, N) bool, if given, says which codes may be nodes on each date (e.g. the dataset's rows, so a
    universe selection carries over to the graphs); returns of other codes are never used.
    """
    xp = backend.xp
    timer = StageTimer(backend)
    n_dates, n_codes = returns.shape
    days = graph_day_indices(n_dates, start, cfg.every_n_days)
    if stop is not None:  # a slice of the graph days (a task's share): the same graphs as in one run
        days = days[days < stop]
    # a date index t has at most t returns in its window (row 0 has none): earlier days cannot have nodes
    computed = days[days >= cfg.min_observations]
    params = {"config": cfg}
    names = graph.outputs(params)
    with timer("prepare"):
        padded = pad_returns(xp, returns.r1, cfg.window)
        features = {name: xp.full((n_dates, n_codes), xp.nan) for name in names}
    size = batch_size(backend, n_codes, cfg)
    parts: list[tuple[Any, Any, Any, Any]] = []
    span = cfg.every_n_days
    with Progress(disable=not progress, transient=True) as bar, timer("graphs"):
        task = bar.add_task("graphs", total=len(computed))
        for lo in range(0, len(computed), size):
            chunk = computed[lo:lo + size]
            chunk_x = xp.asarray(chunk)
            with timer.op("graphs:build"):
                g = batch_graphs(backend, padded, chunk_x, cfg, None if eligible is None else eligible[chunk_x])
                parts.append((g.days[g.edge_batch], g.edge_src.astype(xp.int32), g.edge_dst.astype(xp.int32),
                              g.edge_weight))
            if names:
                with timer.op("graphs:features"):
                    out = ops.run(graph, GraphBatch(backend, g, returns, span), params)
                    for k in range(span):  # a graph serves its own date and the dates until the next graph
                        inside = chunk + k < n_dates
                        rows = xp.asarray(chunk[inside] + k)
                        sel = xp.asarray(np.flatnonzero(inside))
                        for name, values in out.items():
                            features[name][rows] = values[sel, k]
                    del out
            del g
            bar.advance(task, len(chunk))
    with timer("collect"):
        edges = _concat(xp, parts)
    return GraphOutput(returns.dates, days, edges, features, size, timer.timings)


def panel_features(panel: Panel, output: GraphOutput) -> dict[str, Any]:
    """The dense features at the panel's rows (date and code of each row), as columns aligned with the panel."""
    return {name: values[panel.date_id, panel.group] for name, values in output.features.items()}


def _concat(xp: Any, parts: list[tuple[Any, Any, Any, Any]]) -> dict[str, Any]:
    keys = ("day", "src", "dst", "weight")
    if not parts:
        dtypes = (xp.int64, xp.int32, xp.int32, xp.float64)
        return {k: xp.zeros(0, dtype=d) for k, d in zip(keys, dtypes, strict=True)}
    return {k: xp.concatenate([p[i] for p in parts]) for i, k in enumerate(keys)}
