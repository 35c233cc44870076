"""One executor for every column: every registered op (enrichment, features, targets, the normalisation, the
graph features) produces exactly what it declares; the registry is one explicit list; parameters are checked
against the op's signature; an op that cannot run on the GPU falls back to the CPU only as `on_cpu_fallback`
allows, counted; each run is an NVTX range named after the op (a no-op on the CPU); the stage timer waits for the
device at stage boundaries only, unless asked to time each op."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import pkgutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

import gpuetl
from gpuetl import backend as backend_mod
from gpuetl import ops
from gpuetl.backend import Backend, CpuFallbackRefused
from gpuetl.config import ConfigError
from gpuetl.dataset.config import load_dataset_config
from gpuetl.dataset.registry import REGISTRY
from gpuetl.enrich import GROUPS
from gpuetl.enrich.context import Context
from gpuetl.features.normalize import ts_z_name
from gpuetl.features.panel import Panel
from gpuetl.graphs.daily import batch_graphs, pad_returns
from gpuetl.graphs.features import GraphBatch, graph
from gpuetl.graphs.returns import returns_from_panel
from gpuetl.kernels import KernelSet
from gpuetl.stages import StageTimer
from tests._testing import CPU
from tests.support.graphs import graph_config
from tests.support.lakes import build_context, synthetic_tables, write_tables
from tests.support.panels import make_panel, random_walk_frame

DEFAULT = "configs/dataset/default.yaml"


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Context:
    """The build's panel and enrichment context over a small lake holding every dataset an op reads."""
    root = tmp_path_factory.mktemp("ops_lake")
    write_tables(root, synthetic_tables(codes=6, start="2024-01-04", end="2024-12-27"))
    return build_context(CPU, root)


def test_every_registered_op_produces_exactly_its_declared_outputs(context: Context) -> None:
    """Run every op of the registry, of every stage, on a small lake's panel (the default dataset's parameters):
    its columns are the declared ones, in order, one value per row of what it ran on."""
    ran: dict[str, tuple[str, ...]] = {}
    panel = context.panel

    def check(op: ops.Op, target: Any, params: dict[str, Any], rows: int | tuple[int, ...]) -> dict[str, Any]:
        out = ops.run(op, target, params)
        assert tuple(out) == op.outputs(op.params(params)), op.name
        for name, values in out.items():
            assert values.shape == (rows if isinstance(rows, tuple) else (rows,)), (op.name, name)
        ran[op.name] = tuple(out)
        return out

    for group in GROUPS:
        panel.columns.update(check(group, context, {}, panel.n))
    cfg = load_dataset_config(DEFAULT)
    for name, params in cfg.feature_params():  # in config order: cs_rank reads what the ops before it made
        panel.columns.update(check(REGISTRY.get(name, "feature"), panel, params, panel.n))
    check(REGISTRY["targets"], panel, {"horizons": cfg.targets.horizons}, panel.n)

    kinds = {c: kind for g in GROUPS for c, kind in g.normalization({}).items()}
    kinds |= {c: kind for op, p in cfg.feature_params() for c, kind in REGISTRY[op].normalization(p).items()}
    series = [c for c, kind in kinds.items() if kind == "time_series"]
    assert series, "the default features have time_series columns"
    rng = np.random.default_rng(0)  # ts_zscore runs on one row per date: each column's value that day
    by_date = Panel(CPU, np.zeros(len(panel.unique_dates), dtype=np.int64), panel.unique_dates,
                    {c: rng.standard_normal(len(panel.unique_dates)) for c in series})
    z = check(REGISTRY["ts_zscore"], by_date, {"columns": tuple(series), "window": 20, "min_periods": 5,
                                               "clip": 5.0}, by_date.n)
    for c in series:
        panel.date_columns[ts_z_name(c)] = z[ts_z_name(c)]
    check(REGISTRY["normalize"], panel, {"columns": kinds, "method": "zscore", "clip": 5.0, "suffix": "_z"},
          panel.n)

    cfg_graph = graph_config("every_n_days=2")
    returns = returns_from_panel(panel)
    days = np.arange(cfg_graph.min_observations, returns.shape[0])[:6]
    g = batch_graphs(CPU, pad_returns(np, returns.r1, cfg_graph.window), days, cfg_graph)
    check(graph, GraphBatch(CPU, g, returns, cfg_graph.every_n_days), {"config": cfg_graph},
          (len(days), cfg_graph.every_n_days, returns.shape[1]))
    assert set(ran) == {op.name for op in REGISTRY}, set(REGISTRY.of()) - set(ran)
    assert ran["graph"][-2:] == ("graph_peer_ret_1d", "graph_peer_ret_5d")  # the graph op makes its peer returns


def _op_modules() -> Iterator[Any]:
    for package in ("features", "enrich", "graphs"):
        path = Path(gpuetl.__file__).parent / package
        for info in pkgutil.iter_modules([str(path)]):
            yield importlib.import_module(f"gpuetl.{package}.{info.name}")


def test_the_registry_is_one_explicit_list_of_every_op() -> None:
    """Every op an op module defines is listed in gpuetl/dataset/registry.py (defining one registers nothing),
    names are unique, and a miss lists the valid names."""
    defined = {id(v): v for m in _op_modules() for v in vars(m).values() if isinstance(v, ops.Op)}
    defined |= {id(g): g for g in GROUPS}
    assert {o.name for o in defined.values()} == {o.name for o in REGISTRY}
    assert all(REGISTRY[o.name] is o for o in defined.values())
    assert set(REGISTRY.of("target")) == {"targets"} and set(REGISTRY.of("normalize")) == {"ts_zscore", "normalize"}
    assert set(REGISTRY.of("graph")) == {"graph"} and list(REGISTRY.of("enrich")) == [g.name for g in GROUPS]
    twin = dataclasses.replace(REGISTRY["rsi"], stage="target")
    with pytest.raises(ValueError, match="op 'rsi' is listed twice"):
        ops.Registry([*REGISTRY, twin])
    with pytest.raises(KeyError, match=r"unknown op 'nope'; registered: .*returns.*targets"):
        REGISTRY["nope"]
    with pytest.raises(KeyError, match=r"unknown normalize 'targets'; registered: normalize, ts_zscore"):
        REGISTRY.get("targets", "normalize")


def test_every_op_declares_a_known_tolerance_stage_axis_and_backends() -> None:
    assert ops.TOLERANCES.items() >= {"exact": (0.0, 0.0), "sum_order": (1e-12, 1e-15), "float32": (1e-5, 1e-6),
                                      "reference": (1e-9, 0.0), "weight_grid": (0.0, 2.0**-32),
                                      "pagerank": (0.0, 1e-6)}.items()
    for op in REGISTRY:
        names = op.tolerance.names() if isinstance(op.tolerance, ops.ByColumn) else {op.tolerance}
        assert names <= ops.TOLERANCES.keys(), op.name
        assert op.stage in ops.STAGES and op.axis in ops.AXES, op.name
        assert op.backends == {"cpu", "gpu"}, op.name  # every op of gpuetl runs on both
    assert REGISTRY["returns"].tolerance == "exact" and REGISTRY["sma"].tolerance == "sum_order"
    graph = REGISTRY["graph"]  # community labels are compared as partitions, everything else to pagerank's
    assert graph.tolerance_of("graph_community") in ops.PARTITIONS and graph.tolerance_of("graph_degree") == "pagerank"
    with pytest.raises(ValueError, match="unknown tolerance 'close_enough'"):
        ops.feature("t", group="t", inputs=(), outputs=lambda p: (), tolerance="close_enough")(lambda panel: {})
    with pytest.raises(ValueError, match="backends must be some of cpu, gpu"):
        ops.feature("t", group="t", inputs=(), outputs=lambda p: (), backends=("tpu",))(lambda panel: {})


def test_parameters_are_checked_against_the_signature() -> None:
    sma = REGISTRY["sma"]
    assert sma.params({"windows": [5, 20], "slope_days": 5, "crosses": [[5, 20]]}) == {
        "windows": (5, 20), "slope_days": 5, "crosses": ((5, 20),)}
    with pytest.raises(ConfigError, match=r"feature 'sma'.params.windows\[1\]: must be >= 1, got 0"):
        sma.params({"windows": (5, 0), "slope_days": 5, "crosses": ()})
    with pytest.raises(ConfigError, match=r"feature 'sma': unknown parameter\(s\) window; parameters: windows"):
        sma.params({"window": (5,), "slope_days": 5, "crosses": ()})
    with pytest.raises(ConfigError, match=r"missing a required argument: 'slope_days', 'crosses'"):
        sma.params({"windows": (5,)})
    with pytest.raises(ConfigError, match=r"targets\.params\.horizons: 5 appears twice"):
        REGISTRY["targets"].params({"horizons": (5, 5)}, "targets")
    cfg = graph_config()
    assert graph.params({"config": cfg})["config"] is cfg  # a loaded config passes as it is
    panel = make_panel(CPU, random_walk_frame(lengths=(30,)))
    with pytest.raises(ConfigError, match=r"periods: needs at least one value"):
        ops.run(REGISTRY["rsi"], panel, {"periods": ()})  # every run checks its parameters


def fake_gpu(on_cpu_fallback: str) -> Backend:
    """A backend that says it is the GPU but computes with NumPy: enough to exercise the CPU fallback here."""
    return Backend("gpu", pd, np, KernelSet("cpu", on_cpu_fallback), "a stand-in GPU on NumPy (tests)")


def plain_panel(backend: Backend) -> Panel:
    """Two codes' closes, built without the frame library (the stand-in GPU has none)."""
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(1).standard_normal(60) * 0.01))
    return Panel(backend, np.repeat([0, 1], [40, 20]), np.concatenate([np.arange(40), np.arange(20)]) + 19_000,
                 {"close": close})


def _doubled(panel: Panel) -> dict[str, Any]:
    assert panel.backend.name == "cpu"  # the fallback hands the op a host copy on the CPU backend
    return {"doubled": 2.0 * panel["close"]}


CPU_ONLY = ops.feature("t_cpu_only", group="test", inputs=("close",), outputs=lambda p: ("doubled",),
                       backends=("cpu",))(_doubled)


def test_an_op_that_cannot_run_on_the_gpu_falls_back_counted_raising_or_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    strict = fake_gpu("raise")
    with pytest.raises(CpuFallbackRefused, match=r"feature op 't_cpu_only' cannot run on the gpu backend \(it runs "
                                                 r"on cpu\); set on_cpu_fallback=warn"):
        ops.run(CPU_ONLY, plain_panel(strict))
    assert strict.fallbacks == {"feature op 't_cpu_only'": 1}
    lenient = fake_gpu("warn")
    with caplog.at_level("WARNING"):
        out = ops.run(CPU_ONLY, plain_panel(lenient))
        ops.run(CPU_ONLY, plain_panel(lenient))
    assert "feature op 't_cpu_only' cannot run on the gpu backend" in caplog.text
    assert lenient.fallbacks == {"feature op 't_cpu_only'": 2}
    cpu_panel = plain_panel(CPU)
    np.testing.assert_array_equal(out["doubled"], 2.0 * cpu_panel["close"])
    before = dict(CPU.fallbacks)
    ops.run(CPU_ONLY, cpu_panel)  # where it can run: no fallback
    assert dict(CPU.fallbacks) == before


def test_each_run_is_an_nvtx_range_named_after_the_op(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(CPU.range("feature:returns"), contextlib.nullcontext)  # no device: nothing to annotate
    seen: list[str] = []

    @contextlib.contextmanager
    def annotate(name: str) -> Iterator[None]:
        seen.append(name)
        yield

    monkeypatch.setattr(backend_mod, "_nvtx_annotate", lambda: annotate)
    gpu = fake_gpu("raise")
    ops.run(REGISTRY["returns"], plain_panel(gpu), {"horizons": (1,)})
    assert seen == ["feature:returns"]
    ops.run(REGISTRY["returns"], plain_panel(CPU), {"horizons": (1,)})
    assert seen == ["feature:returns"]  # the CPU opens none
    monkeypatch.setattr(backend_mod, "_nvtx_annotate", lambda: None)  # no NVTX binding: a no-op on the GPU too
    assert isinstance(gpu.range("x"), contextlib.nullcontext)


def test_the_stage_timer_waits_for_the_device_at_stage_boundaries_only() -> None:
    syncs: list[int] = []
    device: Any = SimpleNamespace(is_gpu=True, synchronize=lambda: syncs.append(1))
    timer = StageTimer(device)
    with timer("features"):
        for i in range(5):
            with timer.op(f"feature:{i}"):
                pass
    assert len(syncs) == 2 and set(timer.timings) == {"features"}
    asked = StageTimer(device, per_op=True)  # per-op timings when asked: the device waited for around each op
    syncs.clear()
    with asked("features"):
        time.sleep(0.02)
        with asked.op("feature:slow"):
            time.sleep(0.05)
    assert len(syncs) == 4
    # a stage's time excludes what was timed inside it, so the timings add up to the wall time
    assert asked.timings["feature:slow"] >= 0.05 and 0.02 <= asked.timings["features"] < 0.045
    assert StageTimer(CPU).per_op and not StageTimer(device).per_op  # on the CPU an op's timing costs nothing
