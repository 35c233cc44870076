"""The graph pipeline: batched == one day at a time, no graph uses a later return (perturbation), the synthetic
market's sectors are recovered, and `gpuetl graph` on a built dataset + lake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest

from gpuetl.backend import Backend
from gpuetl.commands import main
from gpuetl.dataset.build import build_dataset
from gpuetl.dataset.config import load_dataset_config
from gpuetl.graphs.build import GraphOutput, build_graphs
from gpuetl.graphs.dataset import graph_stage
from gpuetl.graphs.returns import Returns, horizon_returns
from gpuetl.synth import MarketConfig, cached_market
from tests._testing import CPU, assert_backend_equal, host
from tests.support.graphs import factor_returns, graph_config
from tests.support.lakes import SMALL, raw_market, write_lake
from tests.support.panels import make_panel, random_walk_frame


def run_graphs(backend: Backend, r1: np.ndarray, r5: np.ndarray, *overrides: str) -> GraphOutput:
    xp = backend.xp
    returns = Returns(xp.arange(len(r1)) + 18_000, xp.asarray(r1), xp.asarray(r5))
    return build_graphs(backend, returns, graph_config(*overrides), start=2)


def as_host(backend: Backend, out: GraphOutput) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return ({k: host(backend, v) for k, v in out.edges.items()},
            {k: host(backend, v) for k, v in out.features.items()})


def test_batched_equals_one_day_at_a_time() -> None:
    r1, _ = factor_returns(60, 30, seed=2)
    r5, _ = factor_returns(60, 30, seed=3)
    cpu = CPU
    one = run_graphs(cpu, r1, r5, "batch.max_days=1")
    many = run_graphs(cpu, r1, r5, "batch.max_days=7")
    assert (one.batch_days, many.batch_days) == (1, 7)
    e1, f1 = as_host(cpu, one)
    e2, f2 = as_host(cpu, many)
    assert_backend_equal(e1, e2, tol="exact")
    assert_backend_equal(f1, f2, tol="exact")


@pytest.mark.cugraph
@pytest.mark.parametrize("every_n_days", [1, 4])
def test_perturbing_returns_after_t_changes_nothing_up_to_t(backend: Backend, every_n_days: int) -> None:
    """DESIGN leakage rule: every graph and graph feature at or before t is bit-identical when every return after
    t changes (on the GPU, cuGraph couples the days of one call: PageRank within its tolerance, Louvain not held)."""
    r1, _ = factor_returns(70, 28, seed=11)
    r5, _ = factor_returns(70, 28, seed=12)
    t = 41
    rng = np.random.default_rng(0)
    p1, p5 = r1.copy(), r5.copy()
    p1[t + 1:] = p1[t + 1:] * rng.uniform(-2, 2, p1[t + 1:].shape) + rng.normal(0, 0.01, p1[t + 1:].shape)
    p5[t + 1:] = rng.permutation(p5[t + 1:].ravel()).reshape(p5[t + 1:].shape)
    overrides = (f"every_n_days={every_n_days}", "batch.max_days=6")
    ea, fa = as_host(backend, run_graphs(backend, r1, r5, *overrides))
    eb, fb = as_host(backend, run_graphs(backend, p1, p5, *overrides))
    before_a, before_b = ea["day"] <= t, eb["day"] <= t
    assert before_a.sum() > 0 and (~before_a).sum() > 0
    for k in ea:
        assert_backend_equal(ea[k][before_a], eb[k][before_b], tol="exact", err_msg=k)
    for k in fa:
        if backend.is_gpu and k in ("graph_community", "graph_community_size"):
            continue
        tol = "pagerank_stop" if backend.is_gpu and k == "graph_pagerank" else "exact"
        assert_backend_equal(fa[k][: t + 1], fb[k][: t + 1], tol=tol, err_msg=k)
    assert not np.array_equal(fa["graph_peer_ret_1d"][t + 1:], fb["graph_peer_ret_1d"][t + 1:], equal_nan=True)


def test_graphs_recover_the_synthetic_sectors() -> None:
    market = cached_market(MarketConfig(codes=150, start="2023-01-04", end="2023-12-29", seed=5))
    bars = market.table("bars_daily")
    adj = bars["AdjFactor"].fillna(1.0).groupby(bars["Code"]).cumprod()
    close = (bars["C"] / adj).to_numpy()
    wide = pd.DataFrame({"Date": bars["Date"], "Code": bars["Code"], "close": close}).pivot(
        index="Date", columns="Code", values="close")
    r1 = horizon_returns(np, wide.to_numpy(), 1)
    out = build_graphs(CPU, Returns(np.arange(len(wide)), r1, horizon_returns(np, wide.to_numpy(), 5)),
                       graph_config("window=60", "halflife=30.0", "knn.k=3",
                                    "features.enabled=false", "every_n_days=20"))
    sector = market.truth["universe"].set_index("Code")["S33"].reindex(wide.columns).to_numpy()
    src, dst, weight = out.edges["src"], out.edges["dst"], out.edges["weight"]
    same = sector[src] == sector[dst]
    by_chance = (pd.Series(sector).value_counts(normalize=True) ** 2).sum()
    # the synthetic returns are market + sector + idiosyncratic: the market factor makes most pairs correlate,
    # the sector factor shows as same-sector pairs over-represented among the edges and more strongly weighted
    assert len(src) > 500 and same.mean() > 2 * by_chance and weight[same].mean() > weight[~same].mean() + 0.02


def graph_cli(argv: list[str]) -> int:
    return main(["graph", "--backend", "cpu", *argv])


def read(path: Path) -> pd.DataFrame:
    return pads.dataset(path, format="parquet", partitioning="hive").to_table().to_pandas()


def test_graph_command_on_a_built_dataset_and_the_lake_leakage_rule(tmp_path: Path) -> None:
    bars, topix, master = raw_market(seed=7)
    t = pd.Timestamp("2020-06-15")
    later = bars["Date"] > t
    bars2 = bars.copy()
    rng = np.random.default_rng(3)
    bars2.loc[later, "C"] *= rng.uniform(0.5, 2.0, later.sum())
    bars2.loc[later, "AdjFactor"] = rng.choice([1.0, 0.5, 3.0], later.sum())
    cfg = load_dataset_config("configs/dataset/default.yaml", [*SMALL, "start=2020-04-01"])
    outs = []
    for i, b in enumerate((bars, bars2)):
        write_lake(tmp_path / f"lake{i}", b, topix, master)
        build_dataset(CPU, cfg, tmp_path / f"lake{i}", tmp_path / f"ds{i}", progress=False)
        assert graph_cli(["--dataset", str(tmp_path / f"ds{i}"), "--lake", str(tmp_path / f"lake{i}"),
                          "--config-set", "window=20", "--config-set", "knn.k=2",
                          "--config-set", "knn.threshold=0.01", "--no-progress"]) == 0
        outs.append(tmp_path / f"ds{i}" / "graphs")
    out = outs[0]
    meta = json.loads((out / "graphs.json").read_text())
    codes = pd.read_parquet(out / "codes.parquet")
    assert codes["Code"].tolist() == sorted(bars["Code"].unique()) and codes["index"].tolist() == list(range(5))
    edges = read(out / "edges")
    feats = read(out / "features")
    rows = read(tmp_path / "ds0" / "data")
    assert len(feats) == len(rows) == meta["dataset_rows"] and meta["edges"] == len(edges) > 0
    assert set(zip(feats["Code"], feats["Date"], strict=True)) == set(zip(rows["Code"], rows["Date"], strict=True))
    assert (edges["src"] < edges["dst"]).all() and edges["weight"].dtype == np.float32
    assert edges["Date"].min() >= pd.Timestamp("2020-04-01")  # graphs from the dataset's first date
    # graphs.json reports the days that have edges, not only the graph days
    assert meta["days_with_edges"] == edges["Date"].nunique() <= meta["graph_days"]
    assert meta["first_day_with_edges"] == str(edges["Date"].min().date())
    # the graph features are a registered op: graphs.json carries their declared normalisation
    assert set(meta["normalization"]) == {c for c in feats.columns if c.startswith("graph_")}
    assert meta["normalization"]["graph_community"] == "raw" \
        and meta["normalization"]["graph_degree"] == "cross_section"
    assert feats["graph_degree"].notna().mean() > 0.8
    # leakage through the whole command: raw bars after t perturbed -> everything dated <= t identical
    edges2, feats2 = read(outs[1] / "edges"), read(outs[1] / "features")
    key = ["Date", "src", "dst"]
    e1 = edges[edges["Date"] <= t].sort_values(key).reset_index(drop=True)
    e2 = edges2[edges2["Date"] <= t].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(e1, e2)
    f1 = feats[feats["Date"] <= t].sort_values(["Code", "Date"]).reset_index(drop=True)
    f2 = feats2[feats2["Date"] <= t].sort_values(["Code", "Date"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(f1, f2)
    assert not feats[feats["Date"] > t]["graph_peer_ret_1d"].equals(feats2[feats2["Date"] > t]["graph_peer_ret_1d"])


def test_graph_command_reports_a_missing_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert graph_cli(["--dataset", str(tmp_path / "nope"), "--lake", str(tmp_path)]) == 1
    assert "build it with `gpuetl build`" in capsys.readouterr().err
    assert graph_cli(["--config-set", "knn.k=0"]) == 2


@pytest.mark.cugraph
def test_graph_stage_on_a_panel_gives_columns_aligned_with_its_rows(backend: Backend, tmp_path: Path) -> None:
    frame = random_walk_frame(seed=4, lengths=(90, 90, 60, 90, 90, 30), gaps=0.05, splits=True)
    panel = make_panel(backend, frame)
    first_day = int(panel.unique_dates[30])
    cols, output = graph_stage(backend, panel, pd.Series([f"{1300 + c}0" for c in range(6)]),
                               graph_config("knn.k=2", "knn.threshold=0.01"), first_day, tmp_path / "graphs")
    assert set(cols) == set(output.features) and all(len(v) == panel.n for v in cols.values())
    date_id, code = host(backend, panel.date_id), host(backend, panel.group)
    for name, values in cols.items():
        assert_backend_equal(host(backend, values), host(backend, output.features[name])[date_id, code], tol="exact",
                             err_msg=name)
    degree = host(backend, cols["graph_degree"])
    dates = host(backend, panel.dates)
    assert np.isnan(degree[dates < first_day]).all() and np.isfinite(degree[dates >= first_day]).mean() > 0.7
    assert pd.read_parquet(tmp_path / "graphs" / "codes.parquet")["Code"].tolist()[:2] == ["13000", "13010"]
    assert read(tmp_path / "graphs" / "edges")["Date"].min() >= pd.Timestamp(first_day, unit="D")


def test_graph_command_limits_the_nodes_to_the_dataset_universe(tmp_path: Path) -> None:
    bars, topix, master = raw_market(seed=2)  # 13030 is not in the prime market
    write_lake(tmp_path / "lake", bars, topix, master)
    cfg = load_dataset_config("configs/dataset/default.yaml", [*SMALL, "universe=prime"])
    build_dataset(CPU, cfg, tmp_path / "lake", tmp_path / "ds", progress=False)
    assert graph_cli(["--dataset", str(tmp_path / "ds"), "--lake", str(tmp_path / "lake"), "--out",
                      str(tmp_path / "g"), "--config-set", "window=20",
                      "--config-set", "knn.threshold=0.01", "--no-progress"]) == 0
    codes = pd.read_parquet(tmp_path / "g" / "codes.parquet").set_index("Code")["index"]
    edges = read(tmp_path / "g" / "edges")
    assert len(edges) > 0 and codes["13030"] not in set(edges["src"]) | set(edges["dst"])
    assert "13030" not in set(read(tmp_path / "g" / "features")["Code"])
