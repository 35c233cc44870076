"""`gpuetl train` and `gpuetl baseline` end to end on a tiny dataset whose signal travels along its graph: the run
folder, metrics that pandas recomputes from the predictions, the GAT against its graph-free ablation, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch_geometric")
pytest.importorskip("xgboost")

from gpuetl.backend import Backend
from gpuetl.commands import main
from gpuetl.tensors import open_dataset
from tests._testing import assert_backend_equal
from tests.support.train import (
    TINY_TRAIN,
    TINY_XGB,
    keep_torch_threads,  # noqa: F401 (an autouse fixture)
    write_tiny_dataset,
)


def run(command: str, dataset: Path, out: Path, overrides: list[str], *extra: str) -> int:
    sets = [a for o in overrides for a in ("--config-set", o)]
    return main([command, "--backend", "cpu", "--dataset", str(dataset), "--out", str(out), "--no-progress",
                 *sets, *extra])


def daily_rank_ic(predictions: pd.DataFrame) -> pd.Series:
    scored = predictions.dropna(subset=["label"])
    return scored.groupby("Date").apply(lambda d: d["prediction"].rank().corr(d["label"].rank()))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny") / "ds")


def test_train_writes_the_run_and_the_graph_carries_the_signal(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "gat"
    assert run("train", dataset, out, TINY_TRAIN) == 0
    for name in ("config.json", "splits.json", "metrics.json", "predictions.parquet", "report.md",
                 "charts/curves.png", "charts/rank_ic.png", "charts/long_short.png", "checkpoints/fold0-seed7.pt",
                 "edges.parquet"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    predictions = pd.read_parquet(out / "predictions.parquet")
    ric = daily_rank_ic(predictions)
    assert_backend_equal(metrics["overall"]["rank_ic"], ric.mean(), tol="reference")  # torch's against pandas' IC
    assert [f["test_year"] for f in metrics["folds"]] == [2022] and metrics["label"] == "target_next_ret_1d"
    assert predictions["Date"].dt.year.eq(2022).all()
    # each head scored against its own target: the label's is the run's score; the 2-day head's, pandas' on its columns
    assert list(metrics["horizons"]) == ["target_next_ret_1d", "target_next_ret_2d"]
    assert metrics["horizons"]["target_next_ret_1d"] == metrics["overall"]
    two = predictions.rename(columns={"prediction_target_next_ret_2d": "prediction", "target_next_ret_2d": "label"})
    assert_backend_equal(metrics["horizons"]["target_next_ret_2d"]["rank_ic"],
                         daily_rank_ic(two.loc[:, ~two.columns.duplicated(keep="last")]).mean(), tol="reference")
    (member,) = metrics["folds"][0]["members"]
    assert member["seed"] == member["fit_seed"] == 7  # run.seeds[0] + the fold's index, recorded
    assert 1 <= member["best"] <= len(member["history"]) and member["history"][0]["stock_days_per_s"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["run"]["seeds"] == [7] and config["heads"] == ["target_next_ret_1d", "target_next_ret_2d"]
    assert config["context"] == ["mkt_ret_1d", "cal_dow"] and "ret_1d_z" in config["inputs"]
    report = (out / "report.md").read_text()
    assert "| 0 | 2022 |" in report and "![rank_ic](charts/rank_ic.png)" in report
    # the label is the neighbours' returns: the GAT finds it; the same model without edges cannot
    assert metrics["overall"]["rank_ic"] > 0.3
    alone = tmp_path / "alone"
    assert run("train", dataset, alone, [*TINY_TRAIN, "model.graph=false"]) == 0
    without = json.loads((alone / "metrics.json").read_text())
    assert without["overall"]["rank_ic"] < metrics["overall"]["rank_ic"] - 0.2
    # resuming a finished run trains nothing and predicts the same
    assert run("train", dataset, out, TINY_TRAIN, "--resume") == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["folds"][0]["members"][0]["resumed"] and again["overall"] == metrics["overall"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "predictions.parquet"), predictions)
    # a changed config does not resume from the old checkpoints
    assert run("train", dataset, out, [*TINY_TRAIN, "model.hidden=8"], "--resume") == 2


def test_resume_continues_an_interrupted_fold(dataset: Path, tmp_path: Path) -> None:
    """Two epochs, then two more from the checkpoint == four epochs in one go (same seed, same batches)."""
    base = [o for o in TINY_TRAIN if not o.startswith(("optim.max_epochs", "optim.patience"))] + ["optim.patience=10"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert run("train", dataset, whole, [*base, "optim.max_epochs=4"]) == 0
    assert run("train", dataset, part, [*base, "optim.max_epochs=2"]) == 0
    config = json.loads((part / "config.json").read_text())
    config["config"]["optim"]["max_epochs"] = 4  # the same run, allowed to go on
    (part / "config.json").write_text(json.dumps(config))
    ckpt = part / "checkpoints" / "fold0-seed7.pt"
    import torch

    state = torch.load(ckpt, weights_only=False)
    state["done"] = False  # stopped by the budget, not by early stopping
    torch.save(state, ckpt)
    assert run("train", dataset, part, [*base, "optim.max_epochs=4"], "--resume") == 0
    a = json.loads((whole / "metrics.json").read_text())["folds"][0]["members"][0]["history"]
    b = json.loads((part / "metrics.json").read_text())["folds"][0]["members"][0]["history"]
    # the CPU backend trains on the CPU: the same float32 steps, so the same losses bit for bit
    assert_backend_equal([e["train_loss"] for e in a], [e["train_loss"] for e in b], tol="exact")


def test_baseline_scores_the_same_rows_on_the_same_folds(dataset: Path, tmp_path: Path) -> None:
    gat, xgb = tmp_path / "gat", tmp_path / "xgb"
    assert run("train", dataset, gat, [*TINY_TRAIN, "optim.max_epochs=1"]) == 0
    assert run("baseline", dataset, xgb, TINY_XGB) == 0
    assert (xgb / "checkpoints" / "fold0-seed7.ubj").is_file() and (xgb / "report.md").is_file()
    assert json.loads((xgb / "splits.json").read_text()) == json.loads((gat / "splits.json").read_text())
    a, b = (pd.read_parquet(p / "predictions.parquet") for p in (gat, xgb))
    pd.testing.assert_frame_equal(a[["Date", "Code", "label"]], b[["Date", "Code", "label"]])
    metrics = json.loads((xgb / "metrics.json").read_text())
    assert_backend_equal(metrics["overall"]["rank_ic"], daily_rank_ic(b).mean(), tol="reference")
    assert metrics["model"] == "xgb" and metrics["folds"][0]["members"][0]["best"] % 10 == 0
    check_rules(dataset, xgb, b)


def check_rules(dataset: Path, run_dir: Path, predictions: pd.DataFrame) -> None:
    """The rules beside the model, recomputed with pandas on the run's scored rows: each rule's mean daily RankIC
    and the paired difference (the model's daily RankIC minus the rule's) with its t-statistic."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    raw = pd.read_parquet(dataset / "data", columns=["Date", "Code", "ret_1d", "ret_5d"])
    rows = predictions.merge(raw, on=["Date", "Code"], how="left")
    assert metrics["rules_missing"] == ["momentum_120_20", "low_vol_20d"]  # the tiny dataset has no such columns
    model = daily_rank_ic(rows)
    for rule, column in (("reversal_1d", "ret_1d"), ("reversal_5d", "ret_5d")):
        ref = daily_rank_ic(rows.assign(prediction=-rows[column]))
        got = metrics["rules"][rule]
        assert got["days"] == len(ref) == metrics["overall"]["days"]
        assert_backend_equal(got["rank_ic"], ref.mean(), tol="reference")
        diff = (model - ref).to_numpy()
        assert_backend_equal(got["diff_rank_ic"], diff.mean(), tol="reference")
        assert_backend_equal(got["diff_t"], diff.mean() / diff.std(ddof=1) * np.sqrt(len(diff)), tol="reference")
    assert abs(metrics["rules"]["random"]["rank_ic_t"]) < 4  # chance: no skill
    report = (run_dir / "report.md").read_text()
    assert "## Beside simple rules" in report and "| reversal_1d |" in report and "momentum_120_20" in report
    assert (run_dir / "charts" / "rules.png").is_file()


def test_train_with_the_lead_lag_relation_and_relation_means(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "ll"
    lead_lag = "model.lead_lag={column: ret_1d, within: lst_s33, peers: 3, min_days: 50}"
    assert run("train", dataset, out, [*TINY_TRAIN, "optim.max_epochs=1", lead_lag, "model.relation_means=true"]) == 0
    config = json.loads((out / "config.json").read_text())["config"]["model"]
    assert config["lead_lag"]["peers"] == 3 and config["relation_means"] is True
    state = __import__("torch").load(out / "checkpoints" / "fold0-seed7.pt", weights_only=False)["model"]
    assert state["means_proj.weight"].shape[1] == 3 * len(json.loads((out / "config.json").read_text())["inputs"])
    assert len(pd.read_parquet(out / "predictions.parquet")) > 0
    # the edges it learnt over, per relation and day: the correlation graph as the dataset hands it out, and the
    # lead-lag relation fitted once on the fold's training days (the same edges every day, at most 3 per code)
    edges = pd.read_parquet(out / "edges.parquet")
    assert set(edges["relation"]) == {"correlation", "sector", "lead_lag"}
    ds = open_dataset(dataset, "cpu")
    corr = edges[edges["relation"] == "correlation"].set_index("Date")["edges"]
    for day in corr.index[::40]:
        assert corr[day] == ds.edges(str(day.date()))[0].shape[1]
    ll = edges.loc[edges["relation"] == "lead_lag", "edges"]
    assert ll.nunique() == 1 and 0 < ll.iloc[0] <= 3 * len(ds.codes)
    summary = json.loads((out / "metrics.json").read_text())["folds"][0]["edges"]
    assert summary["lead_lag"]["mean"] == ll.iloc[0] and summary["correlation"]["max"] == corr.max()
    assert run("train", dataset, tmp_path / "bad", [*TINY_TRAIN, "model.lead_lag={column: nope, within: null, "
                                                                  "peers: 3, min_days: 50}"]) == 1


def test_a_relation_without_edges_is_said(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Lead-lag pairs need more consecutive days than the data has: the relation gets no edge, and the run says so
    (and edges.parquet shows 0 every day) instead of crediting it silently."""
    lead_lag = "model.lead_lag={column: ret_1d, within: null, peers: 3, min_days: 100000}"
    capsys.readouterr()
    assert run("train", dataset, tmp_path / "gat", [*TINY_TRAIN, "optim.max_epochs=1", lead_lag]) == 0
    assert "fold 0: the lead_lag relation has no edges on any day" in capsys.readouterr().err
    edges = pd.read_parquet(tmp_path / "gat" / "edges.parquet")
    assert (edges.loc[edges["relation"] == "lead_lag", "edges"] == 0).all()
    assert (edges.loc[edges["relation"] == "correlation", "edges"] > 0).any()


def test_seeds_train_one_model_each_and_rank_by_their_mean_z_score(dataset: Path, tmp_path: Path) -> None:
    """run.seeds=[7, 8]: each member is the model its seed trains alone, and the ensemble's score of a row is the
    mean of the members' per-day z-scores (pandas' reference)."""
    sets = [*TINY_TRAIN, "optim.max_epochs=1"]
    both, alone7, alone8 = tmp_path / "both", tmp_path / "s7", tmp_path / "s8"
    assert run("train", dataset, both, [*sets, "run.seeds=[7, 8]"]) == 0
    assert run("train", dataset, alone7, [*sets, "run.seeds=[7]"]) == 0
    assert run("train", dataset, alone8, [*sets, "run.seeds=[8]"]) == 0
    assert {p.name for p in (both / "checkpoints").glob("*.pt")} == {"fold0-seed7.pt", "fold0-seed8.pt"}
    metrics = json.loads((both / "metrics.json").read_text())
    single = [json.loads((p / "metrics.json").read_text())["overall"] for p in (alone7, alone8)]
    each = metrics["seeds"]["each"]
    assert [e["seed"] for e in each] == [7, 8]
    for e, s in zip(each, single, strict=True):
        assert_backend_equal(e["rank_ic"], s["rank_ic"], tol="exact")
    values = np.array([s["rank_ic"] for s in single])
    assert_backend_equal(metrics["seeds"]["mean"]["rank_ic"], values.mean(), tol="reference")
    assert_backend_equal(metrics["seeds"]["std"]["rank_ic"], values.std(ddof=1), tol="reference")
    assert [m["seed"] for m in metrics["folds"][0]["members"]] == [7, 8]
    preds = [pd.read_parquet(p / "predictions.parquet").set_index(["Date", "Code"])["prediction"]
             for p in (alone7, alone8)]
    z = [p.groupby(level="Date").transform(lambda v: (v - v.mean()) / v.std(ddof=0)) for p in preds]
    expected = (z[0] + z[1]) / 2
    got = pd.read_parquet(both / "predictions.parquet").set_index(["Date", "Code"])["prediction"]
    assert_backend_equal(got.sort_index().to_numpy(), expected.sort_index().to_numpy(), tol="float32")
    assert "## Seeds" in (both / "report.md").read_text()


def test_commands_fail_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("train", tmp_path / "none", tmp_path / "out", []) == 1
    assert "no dataset" in capsys.readouterr().err
    assert run("baseline", tmp_path, tmp_path / "out", ["data.horizons=[1, 5]", "splits.embargo_days=3"]) == 2
    assert "longest horizon" in capsys.readouterr().err


@pytest.mark.gpu
def test_train_and_baseline_on_the_gpu(dataset: Path, tmp_path: Path, gpu_backend: Backend) -> None:
    """The same runs on the device: panel, graphs, GAT steps (bf16) and XGBoost (device=cuda from CuPy)."""
    from gpuetl.tensors import open_dataset
    from gpuetl.train.config import load_gat_config, load_xgb_config
    from gpuetl.train.data import load_train_data
    from gpuetl.train.loop import GATLearner
    from gpuetl.train.walkforward import walk_forward
    from gpuetl.train.xgb import XGBLearner

    ds = open_dataset(dataset, gpu_backend)
    gat = load_gat_config("configs/train/gat.yaml", TINY_TRAIN)
    data = load_train_data(ds, gat.data, model=gat.model)
    assert data.device.type == "cuda" and data.graphs is not None and data.graphs.src.is_cuda
    metrics = walk_forward(gat, ds, data, lambda seed: GATLearner(gat, data, seed), tmp_path / "gat", progress=False)
    assert metrics["overall"]["rank_ic"] > 0.3 and metrics["train"]["peak_device_bytes"] > 0
    xgb = load_xgb_config("configs/train/xgb.yaml", TINY_XGB)
    rows = load_train_data(ds, xgb.data)
    on_gpu = walk_forward(xgb, ds, rows, lambda seed: XGBLearner(xgb, seed), tmp_path / "xgb", progress=False)
    assert run("baseline", dataset, tmp_path / "xgb-cpu", TINY_XGB) == 0
    on_cpu = json.loads((tmp_path / "xgb-cpu" / "metrics.json").read_text())
    assert abs(on_gpu["overall"]["rank_ic"] - on_cpu["overall"]["rank_ic"]) < 0.03


def test_runs_log_to_tensorboard_and_mlflow(dataset: Path, tmp_path: Path) -> None:
    """The run's curves and metrics, read back with TensorBoard's and MLflow's own readers, equal metrics.json."""
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, store = tmp_path / "gat", tmp_path / "mlruns"
    assert run("train", dataset, out, [*TINY_TRAIN, "optim.max_epochs=2", f"tracking.mlflow_uri={store}",
                                       "tracking.experiment=tiny"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    history = metrics["folds"][0]["members"][0]["history"]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    curve = [e.value for e in events.Scalars("fold0/seed7/valid_rank_ic")]
    assert_backend_equal(curve, [h["valid_rank_ic"] for h in history], tol="float32")
    assert_backend_equal(events.Scalars("overall/rank_ic")[0].value, metrics["overall"]["rank_ic"], tol="float32")
    client = MlflowClient(tracking_uri=f"sqlite:///{store.resolve() / 'mlflow.db'}")
    (logged,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert logged.info.status == "FINISHED" and logged.data.params["model.hidden"] == "16"
    assert_backend_equal(logged.data.metrics["overall/rank_ic"], metrics["overall"]["rank_ic"], tol="rounding")
    steps = client.get_metric_history(logged.info.run_id, "fold0/seed7/train_loss")
    assert [m.step for m in steps] == [h["epoch"] for h in history]
    assert {a.path for a in client.list_artifacts(logged.info.run_id)} >= {"report.md", "metrics.json", "charts"}
