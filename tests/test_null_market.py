"""On the null market (`gpuetl synth --no-signal`: nothing planted to predict) no model may score: the GAT, its
graph-free ablation and XGBoost, trained with the commands on a small null market, each have a mean daily test
RankIC indistinguishable from zero (|t| < 2 over a year of test days). A leak would show here, and does: the same
baseline given a one-day look-ahead in one input column scores far above it (the test for the test)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch_geometric")
pytest.importorskip("xgboost")

from gpuetl.commands import main
from tests.support.lakes import SMALL
from tests.support.train import keep_torch_threads  # noqa: F401 (an autouse fixture)

CPU = ["--backend", "cpu", "--no-progress"]
# one test year after two of training (a year of warm-up before), 60 codes; every feature group as inputs
DATA = ["data.horizons=[1, 5]", "data.inputs.groups=[]", "splits.test_years=1", "splits.embargo_days=5",
        "run.threads=1"]
GAT = [*DATA, "model.window=10", "model.hidden=8", "model.heads=2", "optim.max_epochs=3", "optim.patience=3",
       "optim.days_per_epoch=120", "model.sector=null", "model.lead_lag=null"]
XGB = [*DATA, "xgb.n_estimators=60", "xgb.eval_every=20"]


def sets(flag: str, values: list[str]) -> list[str]:
    return [a for v in values for a in (flag, v)]


@pytest.fixture(scope="module")
def null(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A null market's lake, its dataset (the small feature set) and graphs."""
    root = tmp_path_factory.mktemp("null")
    assert main(["synth", *CPU, "--no-signal", "--codes", "60", "--start", "2020-01-06", "--end", "2023-12-29",
                 "--seed", "11", "--datasets", "calendar,bars_daily,topix,master", "--out", str(root / "lake")]) == 0
    assert main(["build", *CPU, "--lake", str(root / "lake"), "--out", str(root / "ds"),
                 *sets("--config-set", SMALL)]) == 0
    assert main(["graph", *CPU, "--dataset", str(root / "ds"), "--lake", str(root / "lake"),
                 *sets("--config-set", ["features.pagerank=false", "features.louvain=false", "window=20"])]) == 0
    return root


def rank_ic_t(run: Path) -> tuple[float, int]:
    overall = json.loads((run / "metrics.json").read_text())["overall"]
    return overall["rank_ic_t"], overall["days"]


@pytest.mark.parametrize("model", ["gat", "ablation", "xgb"])
def test_no_model_scores_on_the_null_market(null: Path, model: str) -> None:
    command, settings = {"gat": ("train", GAT), "ablation": ("train", [*GAT, "model.graph=false"]),
                         "xgb": ("baseline", XGB)}[model]
    out = null / "runs" / model
    assert main([command, *CPU, "--dataset", str(null / "ds"), "--out", str(out),
                 *sets("--config-set", settings)]) == 0
    t, days = rank_ic_t(out)
    assert days >= 200 and abs(t) < 2, (model, t, days)


def test_a_look_ahead_in_the_inputs_does_score(null: Path) -> None:
    """The test for the test: `ret_1d` (and its z-score) replaced by the next day's return, which the label is made
    of: the baseline's RankIC is then far from zero."""
    leaky = null / "leaky"
    shutil.copytree(null / "ds", leaky)
    for f in (leaky / "data").rglob("*.parquet"):
        frame = pd.read_parquet(f)
        ahead = frame["target_next_ret_1d"]
        frame["ret_1d"] = ahead.astype("float32")
        frame["ret_1d_z"] = ((ahead - ahead.groupby(frame["Date"]).transform("mean"))
                             / ahead.groupby(frame["Date"]).transform("std")).fillna(0.0).astype("float32")
        frame.to_parquet(f, index=False)
    out = null / "runs" / "leaky"
    assert main(["baseline", *CPU, "--dataset", str(leaky), "--out", str(out), *sets("--config-set", XGB)]) == 0
    t, _ = rank_ic_t(out)
    assert t > 10, t
