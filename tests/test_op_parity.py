"""Every registered op gives the same result on both sides of the backend seam, to the tolerance it declares.

One test walks the registry (gpuetl/dataset/registry.py): each op, with the default dataset's parameters, runs on a
small random lake's panel (its enrichment context, a batch of its daily graphs) on the CPU backend (pandas/NumPy,
the kernels' CPU twins) and on a device side, and each output column is held to
`assert_backend_equal(device, cpu, tol=op.tolerance_of(column))`; community labels, whose values are arbitrary, are
compared as the partitions they make (their modularity on the same graph). The device side is

- `gpu` (marked `gpu`: runs where a GPU is usable): cuDF/CuPy and the CUDA kernels on the device;
- `cuda_model` (runs wherever g++ is): pandas/NumPy with every kernel that has a CUDA source (kernels/*.cu) run
  through its CuPy wrapper on tests/support/cudasim's host model of the device, so the kernels' CUDA paths are
  held to their CPU twins op by op in CI. The kernels without one (cuGraph's PageRank and Louvain, cupyx's
  ndtri) run their CPU twins there: only the `gpu` side tests those.

Each op is given the same inputs on both sides (the CPU's values of the columns it reads, copied to the device),
so a difference is that op's own, not one carried from the ops before it.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from gpuetl import ops
from gpuetl.backend import Backend
from gpuetl.dataset.config import load_dataset_config
from gpuetl.dataset.registry import REGISTRY
from gpuetl.features.normalize import ts_z_name
from gpuetl.features.panel import Panel
from gpuetl.graphs.daily import batch_graphs, pad_returns
from gpuetl.graphs.features import GraphBatch
from gpuetl.graphs.returns import returns_from_panel
from gpuetl.kernels import KernelSet, registered
from tests._testing import assert_backend_equal, host
from tests.support import cudasim
from tests.support.graphs import graph_config
from tests.support.lakes import build_context, synthetic_tables, write_tables

DEFAULT = "configs/dataset/default.yaml"


class CudaModelKernels(KernelSet):
    """The kernel set of the CUDA model: a kernel whose GPU version is a CuPy wrapper of a CUDA source
    (gpuetl/kernels/<name>_cuda.py) runs that wrapper on NumPy arrays, its kernels compiled for the host by
    tests/support/cudasim; any other kernel (an optional library's, cupyx's) runs its CPU twin."""

    def __init__(self) -> None:
        super().__init__("cpu")

    def __getattr__(self, name: str) -> Callable[..., Any]:
        kernel = registered().get(name)
        if kernel is not None and not kernel.gpu_requires and (wrapper := cuda_wrapper(kernel.gpu)) is not None:
            return wrapper
        return super().__getattr__(name)


@functools.cache
def cuda_wrapper(target: str) -> Callable[..., Any] | None:
    """The function `target` ("module:function") of a CUDA wrapper (gpuetl/kernels/<name>_cuda.py) loaded by
    cudasim; None for a GPU version of another kind (cupyx's)."""
    module, _, attr = target.partition(":")
    package, _, name = module.rpartition(".")
    if package != "gpuetl.kernels" or not name.endswith("_cuda"):
        return None
    return getattr(cudasim.load_wrapper(name), attr)  # type: ignore[no-any-return]


# the kernels with a CUDA source of ours (kernels/*.cu): on the CUDA model, these run their CUDA wrappers
MODELLED = {"segmented_ewm", "segmented_asof", "shrunk_correlation", "row_topk", "group_stats"}


@functools.cache
def cuda_model() -> Backend:
    backend = Backend("cpu", pd, np, CudaModelKernels(), "the CUDA kernels on tests/support/cudasim's host model")
    twins = KernelSet("cpu")
    modelled = {n for n in registered() if getattr(backend.kernels, n) is not getattr(twins, n)}
    assert modelled == MODELLED, f"the CUDA model runs {sorted(modelled)}, expected {sorted(MODELLED)}"
    return backend


@pytest.fixture(params=["cuda_model", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> Backend:
    """The side held to the CPU backend: the GPU backend, or the CPU backend with the CUDA model's kernels."""
    if request.param == "gpu":
        return request.getfixturevalue("gpu_backend")  # type: ignore[no-any-return]
    if shutil.which("g++") is None:
        pytest.skip("the CUDA model (tests/support/cudasim) needs g++ (C++20)")
    return cuda_model()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random lake holding every dataset an op reads."""
    root = tmp_path_factory.mktemp("parity_lake")
    write_tables(root, synthetic_tables(codes=6, start="2024-01-04", end="2024-12-27"))
    return root


def same_partitions(batch: GraphBatch, got: dict[str, np.ndarray], want: dict[str, np.ndarray], tol: str,
                    where: str) -> None:
    """Community labels and sizes (B, span, N) of two Louvain runs, on each graph of the batch (the CPU's): the two
    partitions' modularity to `tol`, and on each side a node's community size is the count of its label."""
    g = batch.graphs
    for b in range(len(g.days)):
        nodes = np.flatnonzero(g.valid[b])
        for side in (got, want):
            lab = side["graph_community"][b, 0, nodes]
            counts = {c: int((lab == c).sum()) for c in np.unique(lab)}
            assert_backend_equal(side["graph_community_size"][b, 0, nodes], np.array([counts[c] for c in lab]),
                                 tol="exact", err_msg=f"{where}: community sizes of graph {b}")
        on = g.edge_batch == b
        graph = nx.Graph()
        graph.add_nodes_from(nodes.tolist())
        graph.add_weighted_edges_from(zip(g.edge_src[on], g.edge_dst[on], g.edge_weight[on], strict=True))
        if graph.number_of_edges() == 0:
            continue
        q = [nx.community.modularity(graph, [set(nodes[side["graph_community"][b, 0, nodes] == c].tolist())
                                             for c in np.unique(side["graph_community"][b, 0, nodes])])
             for side in (want, got)]
        assert_backend_equal(q[1], q[0], tol=tol, err_msg=f"{where}: modularity of graph {b}")


def test_every_op_equals_its_cpu_result_to_its_declared_tolerance(cpu_backend: Backend, device: Backend,
                                                                  lake: Path) -> None:
    cpu, dev = build_context(cpu_backend, lake), build_context(device, lake)
    xp = device.xp
    structure = ("group", "dates", "offsets", "date_id")
    assert_backend_equal({k: getattr(dev.panel, k) for k in structure},
                         {k: getattr(cpu.panel, k) for k in structure}, tol="exact", err_msg="the panel's rows")
    compared: list[str] = []

    def same_inputs() -> None:  # the device panel reads the CPU's values: each op is compared on its own
        dev.panel.columns.update({k: xp.asarray(host(cpu_backend, v)) for k, v in cpu.panel.columns.items()})
        dev.panel.date_columns.update({k: xp.asarray(host(cpu_backend, v)) for k, v in cpu.panel.date_columns.items()})

    def both(op: ops.Op, targets: tuple[Any, Any], params: dict[str, Any]) -> dict[str, Any]:
        same_inputs()
        want = ops.run(op, targets[0], params)
        got = ops.run(op, targets[1], params)
        assert list(got) == list(want)
        labels = [c for c in want if op.tolerance_of(c) in ops.PARTITIONS]
        for col in (c for c in want if c not in labels):
            assert_backend_equal(got[col], want[col], tol=op.tolerance_of(col),
                                 err_msg=f"{op.stage} op {op.name!r}, {col} ({device.reason})")
        if labels:  # labels: the partitions they make, on the CPU's graphs
            same_partitions(targets[0], {c: host(device, got[c]) for c in labels}, {c: want[c] for c in labels},
                            op.tolerance_of(labels[0]), f"{op.stage} op {op.name!r} ({device.reason})")
        compared.append(op.name)
        return want

    for group in REGISTRY.of("enrich").values():
        cpu.panel.columns.update(both(group, (cpu, dev), {}))
    cfg = load_dataset_config(DEFAULT)
    for name, params in cfg.feature_params():  # in config order: cs_rank reads what the ops before it made
        cpu.panel.columns.update(both(REGISTRY.get(name, "feature"), (cpu.panel, dev.panel), params))
    both(REGISTRY["targets"], (cpu.panel, dev.panel), {"horizons": cfg.targets.horizons})

    kinds = {c: kind for op in REGISTRY.of("enrich").values() for c, kind in op.normalization({}).items()}
    kinds |= {c: kind for op, p in cfg.feature_params() for c, kind in REGISTRY[op].normalization(p).items()}
    series = tuple(c for c, kind in kinds.items() if kind == "time_series")
    norm = cfg.normalize
    rng = np.random.default_rng(0)  # ts_zscore runs on one row per date: each column's value that day
    dates = host(cpu_backend, cpu.panel.unique_dates)
    by_date = {c: rng.standard_normal(len(dates)) for c in series}
    per_date = [Panel(b, b.xp.zeros(len(dates), dtype=np.int64), b.xp.asarray(dates),
                      {c: b.xp.asarray(v) for c, v in by_date.items()}) for b in (cpu_backend, device)]
    z = both(REGISTRY["ts_zscore"], (per_date[0], per_date[1]),
             {"columns": series, "window": norm.ts_window, "min_periods": norm.ts_min_periods, "clip": norm.clip})
    cpu.panel.date_columns.update({ts_z_name(c): z[ts_z_name(c)] for c in series})
    for method in ("zscore", "rankgauss"):
        both(REGISTRY["normalize"], (cpu.panel, dev.panel),
             {"columns": kinds, "method": method, "clip": norm.clip, "suffix": norm.suffix})

    graphs = graph_config("every_n_days=2", "knn.k=2")  # 6 codes: a kNN of 2 keeps the graphs sparse
    same_inputs()
    batches = []
    for b, ctx in ((cpu_backend, cpu), (device, dev)):  # each side builds its graphs (its correlation kernels)
        returns = returns_from_panel(ctx.panel)
        days = b.xp.arange(graphs.min_observations, returns.shape[0])[:6]
        batch = batch_graphs(b, pad_returns(b.xp, returns.r1, graphs.window), days, graphs)
        batches.append(GraphBatch(b, batch, returns, graphs.every_n_days))
    both(REGISTRY["graph"], (batches[0], batches[1]), {"config": graphs})

    assert set(compared) == {op.name for op in REGISTRY}, f"never compared: {set(REGISTRY.of()) - set(compared)}"
