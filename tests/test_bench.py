"""`gpuetl bench`: the peers compute the same numbers as gpuetl on a tiny market, and the command writes its
results (JSON, Markdown, chart) with ratios measured in the same run, prints each stage as it ends, reruns a
stage's timed runs when the machine's load moves, and skips the Polars GPU engine where it cannot run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpuetl.backend import GpuProbe
from gpuetl.bench import report
from gpuetl.bench.compare import RANK_TIE_SHARE, mismatches
from gpuetl.bench.gpuetl_stages import GpuetlStages
from gpuetl.bench.inputs import Inputs, ensure_lake, load_inputs
from gpuetl.bench.measure import LoadProbe, load_moved, timed
from gpuetl.bench.pandas_peer import PandasStages
from gpuetl.bench.spec import BACKENDS, FEATURES, STAGES, Size, with_needs
from gpuetl.commands import main

TINY = Size("tiny", 24, "2024-01-01", "2024-09-30", seed=3)  # ~190 business days: ~140 graph days
CHECKED = ("read", "adjust", "features", "asof", "normalize", "graphs", "analytics")
needs_polars = pytest.mark.skipif(importlib.util.find_spec("polars") is None, reason="needs polars (bench extra)")
needs_cudf_polars = pytest.mark.skipif(importlib.util.find_spec("cudf_polars") is None,
                                       reason="needs cudf-polars (gpu extra) for Polars' GPU engine")


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
    if name in ("polars", "polars-gpu"):
        from gpuetl.bench.polars_peer import PolarsStages

        stages = PolarsStages(inputs, engine="gpu" if name == "polars-gpu" else "auto")
        got = outputs(stages)
        if stages.fallbacks:  # equal numbers either way; where they came from is worth a line in the log
            print(f"{name}: queries on the Polars CPU engine: {sorted(set(stages.fallbacks))}")
        return got
    return outputs(PandasStages(inputs))


@pytest.mark.parametrize("peer", [pytest.param("polars", marks=needs_polars), "pandas-naive",
                                  pytest.param("polars-gpu", marks=[pytest.mark.gpu, needs_polars, needs_cudf_polars])])
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
    assert set(got) == set(CHECKED) - ({"analytics"} if peer.startswith("polars") else set())


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


def test_ranks_allow_an_ulp_tie_broken_differently_and_nothing_more(
        reference: dict[str, dict[str, np.ndarray]]) -> None:
    want = {"ret_5d_rank": np.tile(reference["normalize"]["ret_5d_rank"], 40)}  # enough values for one tie
    finite = np.flatnonzero(np.isfinite(want["ret_5d_rank"]))
    got = {k: v.copy() for k, v in want.items()}
    got["ret_5d_rank"][finite[0]] += 0.004  # a tie of a few codes split by an ulp in one library
    assert finite.size * RANK_TIE_SHARE >= 1 and mismatches("normalize", got, want) == []
    got["ret_5d_rank"][finite[0]] += 0.05  # a rank moved by 5% of the day is no tie
    assert mismatches("normalize", got, want)
    got["ret_5d_rank"][finite[0]] -= 0.05
    got["ret_5d_rank"][finite[1: 2 + int(finite.size * RANK_TIE_SHARE)]] += 0.004  # too many moved
    assert mismatches("normalize", got, want)


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


def loads(*values: float) -> LoadProbe:
    """A probe reading the given 1-minute loads in turn (a read too many fails) and no CPU time of its own."""
    return LoadProbe(load=iter(values).__next__, cpu_s=lambda: 0.0)


def test_a_load_that_moves_more_than_a_core_reruns_the_timed_runs() -> None:
    assert not load_moved(1.0, 1.9) and load_moved(1.0, 2.1) and load_moved(3.0, 1.5)  # up or down
    assert not load_moved(1.0, 3.5, own_cores=2.0) and load_moved(1.0, 3.5, own_cores=1.0)  # its own threads
    calls: list[int] = []

    def fn() -> int:
        calls.append(1)
        return len(calls)

    # reads: before the warm-up, then before/after each try of the 2 timed runs: +2.5 cores, then steady
    timing, _, _ = timed(None, fn, warmup=1, repeat=2, probe=loads(0.5, 0.5, 3.0, 3.0, 3.2))
    s = timing.summary()
    assert len(calls) == 1 + 2 + 2 and len(timing.seconds) == 2
    assert (s["load_before"], s["load_after"], s["load_retries"]) == (3.0, 3.2, 1)
    assert s["load_history"] == [[0.5, 3.0, 0.0], [3.0, 3.2, 0.0]]
    calls.clear()  # a load that keeps moving: rerun at most `retries` more times, the last try kept
    timing, _, _ = timed(None, fn, warmup=0, repeat=1, probe=loads(0, 0, 2, 2, 0, 0, 2), retries=2)
    assert len(calls) == 3 and timing.summary()["load_retries"] == 2 and timing.summary()["load_after"] == 2
    calls.clear()  # over budget: the warm-up is the one timing, its load recorded, never rerun
    timing, _, _ = timed(None, fn, warmup=1, repeat=3, budget_s=1e-12, probe=loads(0.0, 5.0))
    assert len(calls) == 1 and timing.summary()["load_history"] == [[0.0, 5.0, 0.0]]
    timing, _, _ = timed(None, fn, warmup=0, repeat=1, probe=None)
    assert "load_before" not in timing.summary()


def test_progress_lines_say_the_time_the_load_and_why_not() -> None:
    row = {"stage": "features", "status": "ok", "median_s": 2.1641, "repeat": 2, "load_before": 1.1,
           "load_after": 1.23, "load_retries": 1}
    assert report.progress_line("cpu", row) == ("bench: cpu features 2.164 s (median of 2, load 1.1 -> 1.2 "
                                                "(timed runs repeated 1x: the load moved))")
    assert report.progress_line("polars", {"stage": "analytics", "status": "skipped", "note": "no stage"}) == (
        "bench: polars analytics skipped: no stage")
    assert report.progress_line("cpu", {"stage": "read", "status": "ok", "input": True, "seconds": [0.5]}) == (
        "bench: cpu read 0.500 s (an input of the chosen stages, untimed)")


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


def test_polars_gpu_says_why_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpuetl import backend
    from gpuetl.commands import bench as cli
    from gpuetl.commands import build_parser

    assert build_parser().parse_args(["bench"]).backends.split(",") == list(BACKENDS)
    assert BACKENDS.index("polars-gpu") == BACKENDS.index("polars") + 1  # in the default list, after its CPU twin
    monkeypatch.setattr(backend, "probe_gpu", lambda: GpuProbe(False, "no CUDA device is visible (test)"))
    assert cli.unavailable("polars-gpu") == "no usable GPU (no CUDA device is visible (test))"
    real = importlib.util.find_spec
    monkeypatch.setattr(backend, "probe_gpu", lambda: GpuProbe(True, "a GPU (test)"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cudf_polars" else real(name, *a))
    assert cli.unavailable("polars-gpu") == "cudf-polars is not installed: pip install 'gpuetl[gpu]'"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if "polars" in name else real(name, *a))
    assert cli.unavailable("polars-gpu") == cli.unavailable("polars") and "pip install polars" in cli.unavailable(
        "polars")


@needs_polars
def test_a_gpu_engine_fallback_is_noted_beside_its_stage(tiny_lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Polars' GPU engine runs a query it cannot on its CPU engine, with a warning when verbose: the worker
    says so in the stage's row (the GPU engine is faked here, the CPU engine computes)."""
    import warnings

    import polars as pl

    from gpuetl.bench import worker
    from gpuetl.config import DEFAULT_SETTINGS

    real = pl.LazyFrame.collect

    def collect(self: pl.LazyFrame, *, engine: Any = "auto", **kw: Any) -> pl.DataFrame:
        if isinstance(engine, pl.GPUEngine):
            assert pl.Config.state().get("POLARS_VERBOSE") == "1"  # else cudf-polars says nothing
            warnings.warn("Query execution with GPU not possible: unsupported operations.\nThe errors were:\n"
                          "- NotImplementedError: Grouped rolling window not implemented",
                          pl.exceptions.PerformanceWarning, stacklevel=2)
        return real(self, **kw)

    monkeypatch.setattr(pl.LazyFrame, "collect", collect)
    job = {"backend": "polars-gpu", "stages": ["adjust"], "warmup": 0, "repeat": 1, "budget_s": 60.0,
           "check": False, "lake": str(tiny_lake), "settings": str(DEFAULT_SETTINGS), "overrides": [],
           "canonical": None}
    said: list[dict[str, Any]] = []
    result = worker.run(job, said.append)
    assert [(r["stage"], r.get("input", False)) for r in said] == [("read", True), ("adjust", False)]
    row = result["results"][0]
    assert result["results"] == [said[1]] and row["status"] == "ok" and row["median_s"] > 0
    assert row["note"] == "ran on the Polars CPU engine in part: NotImplementedError: Grouped rolling window " \
                          "not implemented"
    assert report.progress_line("polars-gpu", row).endswith("; " + row["note"])


def test_the_check_reads_one_stage_at_a_time_and_names_what_differs(tmp_path: Path) -> None:
    from gpuetl.commands.bench import _check

    x = np.array([1.0, np.nan, 3.0])
    np.savez(tmp_path / "cpu.npz", **{"adjust/close": x, "features/ret_1d": x})
    np.savez(tmp_path / "polars.npz", **{"adjust/close": x, "features/ret_1d": x + np.array([0, 0, 1e-3])})
    rows = [{"backend": b, "stage": s, "status": "ok"} for b in ("cpu", "polars") for s in ("adjust", "features")]
    rows.append({"backend": "polars", "stage": "asof", "status": "ok", "note": "slow"})
    _check(rows, tmp_path)
    assert [r.get("equal") for r in rows] == [True, True, True, False, None]
    assert rows[3]["mismatches"] == ["ret_1d: 1 of 2 values differ (max abs 0.001)"]
    assert rows[4]["note"] == "slow; not checked: no cpu output of asof"
    assert not list(tmp_path.glob("*.npz"))


@needs_polars
def test_bench_command_writes_results_with_ratios(tiny_lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from gpuetl import backend as backend_mod

    monkeypatch.setattr(backend_mod, "probe_gpu", lambda: GpuProbe(False, "no CUDA device is visible (test)"))
    out = tmp_path / "results"
    code = main(["bench", "--lake", str(tiny_lake), "--backends", "cpu,polars,polars-gpu,pandas-naive", "--stages",
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
            assert r["load_before"] >= 0 and r["load_after"] >= 0 and r["load_retries"] in range(3)
    assert ("cpu", "read") not in by  # an input of the chosen stages, run untimed
    assert doc["backends"]["polars-gpu"] == {"status": "skipped",
                                             "note": "no usable GPU (no CUDA device is visible (test))"}
    assert not [r for r in doc["results"] if r["backend"] == "polars-gpu"]
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
    assert "Backends not run: polars-gpu: no usable GPU (no CUDA device is visible (test))." in md
    cpu_features = by[("cpu", "features")]
    assert f"| cpu | features | {cpu_features['rows_per_s']:,.0f} |" in md and report.load_text(cpu_features) in md
    printed = capsys.readouterr()
    assert "gpuetl bench: lake" in printed.out and "normalize" in printed.out  # the table, on the console
    progress = [line for line in printed.err.splitlines() if line.startswith("bench: ")]
    for backend_name in ("cpu", "polars", "pandas-naive"):  # each stage's line, as the worker ended it
        assert report.progress_line(backend_name, by[(backend_name, "normalize")]) in progress
        assert any(line.startswith(f"bench: {backend_name} adjust ") and "untimed" in line for line in progress)
    assert "bench: polars-gpu skipped: no usable GPU (no CUDA device is visible (test))" in progress
    assert progress.index("bench: polars (features, normalize, tensors) ...") < progress.index(
        report.progress_line("polars", by[("polars", "features")]))
    assert report.markdown(doc) == md


def test_bench_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--backends", "cpu,spark"]) == 2
    assert "unknown backends spark; valid: gpu, cpu, polars, polars-gpu, pandas-naive" in capsys.readouterr().err

