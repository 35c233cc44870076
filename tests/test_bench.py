"""`gpuetl bench`: the peers compute the same numbers as gpuetl on a tiny market, and the command writes its
results (JSON, Markdown, chart) with ratios measured in the same run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpuetl.bench import report
from gpuetl.bench.compare import mismatches
from gpuetl.bench.gpuetl_stages import GpuetlStages
from gpuetl.bench.inputs import Inputs, ensure_lake, load_inputs
from gpuetl.bench.measure import timed
from gpuetl.bench.pandas_peer import PandasStages
from gpuetl.bench.spec import FEATURES, STAGES, Size, with_needs
from gpuetl.commands import main

TINY = Size("tiny", 24, "2024-01-01", "2024-09-30", seed=3)  # ~190 business days: ~140 graph days
CHECKED = ("read", "adjust", "features", "asof", "normalize", "graphs", "analytics")
needs_polars = pytest.mark.skipif(importlib.util.find_spec("polars") is None, reason="needs polars (bench extra)")


@pytest.fixture(scope="module")
def tiny_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench") / "lake"
    assert ensure_lake(root, TINY) and not ensure_lake(root, TINY)  # written once, then reused
    return root


@pytest.fixture(scope="module")
def tiny_inputs(tiny_lake: Path) -> Inputs:
    from tests._testing import CPU

    return load_inputs(CPU, tiny_lake)


def outputs(stages: Any) -> dict[str, dict[str, np.ndarray]]:
    state: dict[str, Any] = {}
    out = {}
    for stage in CHECKED:
        if not hasattr(stages, stage):
            continue
        state[stage] = getattr(stages, stage)(state)
        out[stage] = stages.canonical(stage, state[stage])
    return out


@pytest.fixture(scope="module")
def reference(tiny_inputs: Inputs) -> dict[str, dict[str, np.ndarray]]:
    from tests._testing import CPU

    return outputs(GpuetlStages(CPU, tiny_inputs))


def peer_outputs(name: str, inputs: Inputs) -> dict[str, dict[str, np.ndarray]]:
    if name == "polars":
        from gpuetl.bench.polars_peer import PolarsStages

        return outputs(PolarsStages(inputs))
    return outputs(PandasStages(inputs))


@pytest.mark.parametrize("peer", [pytest.param("polars", marks=needs_polars), "pandas-naive"])
def test_peers_compute_the_same_numbers_as_gpuetl(peer: str, tiny_inputs: Inputs,
                                                  reference: dict[str, dict[str, np.ndarray]]) -> None:
    got = peer_outputs(peer, tiny_inputs)
    graphs = reference["graphs"]
    shape = (int(graphs["grid"][0]), int(graphs["grid"][1]))
    assert len(graphs["edge_src"]) > 1000 and np.isfinite(reference["features"]["ema26_gap"]).mean() > 0.5
    assert np.isfinite(reference["asof"]["st_eps_yield"]).mean() > 0.5  # the join finds statements
    for stage, want in reference.items():
        if stage in got:
            assert mismatches(stage, got[stage], want, graphs, shape) == [], (peer, stage)
    assert set(got) == set(CHECKED) - ({"analytics"} if peer == "polars" else set())


def test_the_check_fails_on_a_changed_value_or_a_moved_nan(reference: dict[str, dict[str, np.ndarray]]) -> None:
    want = reference["normalize"]
    got = {k: v.copy() for k, v in want.items()}
    assert mismatches("normalize", got, want) == []
    i = int(np.flatnonzero(np.isfinite(got["ret_5d_z"]))[7])
    got["ret_5d_z"][i] += 1e-6
    assert mismatches("normalize", got, want) == ["ret_5d_z: 1 of "
                                                  f"{int(np.isfinite(want['ret_5d_z']).sum())} values differ "
                                                  "(max abs 1e-06)"]
    got["ret_5d_z"][i] = np.nan
    assert "missing in different places" in mismatches("normalize", got, want)[0]
    del got["drawdown_rank"]
    assert "drawdown_rank: missing" in mismatches("normalize", got, want)


def test_ranks_and_zscores_are_the_pandas_per_day_ones(tiny_inputs: Inputs,
                                                       reference: dict[str, dict[str, np.ndarray]]) -> None:
    """The normalize stage's gpuetl side (the group_stats kernel) against pandas groupby by date, directly."""
    import pandas as pd

    from tests._testing import CPU, assert_backend_equal

    stages = GpuetlStages(CPU, tiny_inputs)
    state: dict[str, Any] = {}
    for stage in ("read", "adjust"):
        state[stage] = getattr(stages, stage)(state)
    dates = np.asarray(state["adjust"].panel.dates)
    for f in ("ret_1d", "dist_low_60d"):
        x = pd.Series(reference["features"][f]).groupby(dates)
        assert_backend_equal(reference["normalize"][f"{f}_rank"], x.rank(pct=True).to_numpy(), tol="exact")
        z = ((pd.Series(reference["features"][f]) - x.transform("mean")) / x.transform("std")).clip(-3, 3)
        assert_backend_equal(reference["normalize"][f"{f}_z"], z, tol="sum_order")
    assert set(reference["normalize"]) == {f"{f}_{k}" for f in FEATURES for k in ("rank", "z")}


def test_timing_warms_up_repeats_and_keeps_to_its_budget() -> None:
    calls = []
    timing, first, last = timed(None, lambda: calls.append(len(calls)) or len(calls), warmup=2, repeat=3,
                                keep_first=True)
    assert len(calls) == 5 and len(timing.seconds) == 3 and len(timing.warmup_s) == 2
    assert (first, last) == (1, 5)
    s = timing.summary()
    assert s["min_s"] <= s["median_s"] <= s["max_s"] and s["repeat"] == 3
    calls.clear()
    timing, _, _ = timed(None, lambda: calls.append(1) or sum(range(200_000)), warmup=1, repeat=50, budget_s=1e-9)
    assert len(calls) == 1 and len(timing.seconds) == 1 and timing.warmup_s == []  # over budget: one run only


def test_stages_bring_their_inputs() -> None:
    assert with_needs(["normalize"]) == ["read", "adjust", "features", "normalize"]
    assert with_needs(["analytics", "asof"]) == ["read", "adjust", "asof", "graphs", "analytics"]
    assert with_needs(list(STAGES)) == list(STAGES)


def test_missing_polars_is_said_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpuetl.commands import bench as cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "polars" else real(name, *a))
    assert cli.unavailable("polars") == "polars is not installed: pip install 'gpuetl[bench]' (or pip install polars)"
    assert cli.unavailable("pandas-naive") is None


@needs_polars
def test_bench_command_writes_results_with_ratios(tiny_lake: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    code = main(["bench", "--lake", str(tiny_lake), "--backends", "cpu,polars,pandas-naive", "--stages",
                 "features,normalize,tensors", "--warmup", "1", "--repeat", "2", "--out", str(out)])
    assert code == 0
    doc = json.loads((out / "results.json").read_text())
    by = {(r["backend"], r["stage"]): r for r in doc["results"]}
    for backend in ("cpu", "polars", "pandas-naive"):
        for stage in ("features", "normalize"):
            r = by[(backend, stage)]
            assert r["status"] == "ok" and r["equal"] is True and r["repeat"] == 2 and r["median_s"] > 0
            assert r["rows_per_s"] == pytest.approx(doc["rows"] / r["median_s"])
            assert r["peak_rss_bytes"] > 0
    assert ("cpu", "read") not in by  # an input of the chosen stages, run untimed
    tensors = by[("cpu", "tensors")]
    if importlib.util.find_spec("torch") is None:
        assert tensors["status"] == "skipped" and "pip install 'gpuetl[train]'" in tensors["note"]
    else:  # timed on a dataset the bench built once, with the graphs the train stage's GAT reads
        assert tensors["status"] == "ok" and tensors["median_s"] > 0
        assert json.loads((out / "dataset" / "graphs" / "graphs.json").read_text())["graph_days"] > 0
    assert by[("polars", "tensors")]["status"] == "skipped"
    ratio = {(x["stage"], x["fast"], x["slow"]): x["ratio"] for x in doc["ratios"]}
    assert ratio[("normalize", "cpu", "pandas-naive")] == pytest.approx(
        by[("pandas-naive", "normalize")]["median_s"] / by[("cpu", "normalize")]["median_s"])
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["versions"]["pandas"]
    md = (out / "results.md").read_text()
    assert "| stage | cpu | polars | pandas-naive | cpu vs polars | cpu vs pandas-naive |" in md
    assert (out / "results.png").stat().st_size > 1000
    assert not list((out / "work").glob("*.npz"))  # the stage outputs are removed after the check
    printed = capsys.readouterr().out
    assert "gpuetl bench: lake" in printed and "normalize" in printed  # the table, on the console
    assert report.markdown(doc) == md


def test_bench_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--backends", "cpu,spark"]) == 2
    assert "unknown backends spark; valid: gpu, cpu, polars, pandas-naive" in capsys.readouterr().err

