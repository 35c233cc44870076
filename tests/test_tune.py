"""`gpuetl tune`: a rerun continues the study (only the missing trials run), best.yaml is a training config with the
best trial's values, a bad search space fails before any trial, and no day of any fold's test period is read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

import gpuetl.train.xgb as xgb_module
from gpuetl.commands import main
from gpuetl.config import to_dict
from gpuetl.tensors import DaySampler, open_dataset
from gpuetl.train.config import load_xgb_config
from gpuetl.train.data import TrainData, load_train_data
from gpuetl.train.splits import Splits
from gpuetl.train.tune_config import load_tune_config
from gpuetl.train.walkforward import plan_folds
from tests.support.train import (
    TINY_TRAIN,
    TINY_XGB,
    keep_torch_threads,  # noqa: F401 (an autouse fixture)
    write_tiny_dataset,
)

# two test years (2021, 2022) and, before them, two tuning folds (their years 2019, 2020)
TWO_FOLDS = ["splits.test_years=2"]
XGB = [*TINY_XGB, *TWO_FOLDS, "xgb.n_estimators=20", "xgb.eval_every=10"]
GAT = [*TINY_TRAIN, *TWO_FOLDS, "optim.max_epochs=1", "optim.days_per_epoch=16"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tune") / "ds", start="2019-01-01", end="2022-12-30")


def tune_config(folder: Path, learner: str = "xgb", space: str = "", trials: int = 2) -> Path:
    space = space or ("  - {key: xgb.max_depth, type: int, low: 2, high: 5}\n"
                      "  - {key: xgb.colsample_bytree, type: float, low: 0.3, high: 1.0}\n"
                      "  - {key: xgb.min_child_weight, type: float, low: 1.0, high: 50.0, log: true}\n"
                      if learner == "xgb" else
                      "  - {key: optim.weight_decay, type: float, low: 1.0e-4, high: 0.1, log: true}\n"
                      "  - {key: model.dropout, type: float, low: 0.0, high: 0.3}\n")
    path = folder / f"tune-{learner}.yaml"
    path.write_text(f"name: t-{learner}\ntrain: configs/train/{learner}.yaml\nlearner: {learner}\ntrials: {trials}\n"
                    "seed: 3\nobjective: valid_rank_ic\npruner: none\npruner_startup_trials: 0\nout: null\n"
                    f"space:\n{space}")
    return path


def tune(config: Path, dataset: Path, out: Path, overrides: list[str], *extra: str) -> int:
    sets = [a for o in overrides for a in ("--config-set", o)]
    return main(["tune", "--backend", "cpu", "--config", str(config), "--dataset", str(dataset), "--out", str(out),
                 *sets, *extra])


def study(out: Path, name: str = "t-xgb") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def test_a_rerun_continues_the_study_and_best_yaml_holds_the_best_trial(dataset: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    config, out = tune_config(tmp_path), tmp_path / "out"
    assert tune(config, dataset, out, XGB, "--trials", "2") == 0
    first = {t.number: (t.datetime_start, t.params) for t in study(out).trials}
    assert len(first) == 2
    err = capsys.readouterr().err
    assert "trial 1 (2/2) complete" in err and "test years 2021, 2022 never read" in err
    assert tune(config, dataset, out, XGB, "--trials", "3") == 0
    trials = study(out).trials
    assert [t.number for t in trials] == [0, 1, 2] and all(t.state.name == "COMPLETE" for t in trials)
    assert {t.number: (t.datetime_start, t.params) for t in trials[:2]} == first  # not run again
    assert trials[2].params != trials[0].params  # a resumed sampler draws afresh
    out_text = capsys.readouterr().out
    assert "1 trial(s) run now" in out_text
    assert tune(config, dataset, out, XGB, "--trials", "3") == 0  # nothing missing: nothing run
    assert len(study(out).trials) == 3 and "0 trial(s) run now" in capsys.readouterr().out
    lines = (out / "trials.csv").read_text().splitlines()
    assert lines[0].startswith("trial,state,value,xgb.max_depth") and len(lines) == 4

    best = study(out).best_trial
    cfg = load_xgb_config(out / "best.yaml")  # the training config's own loader
    assert (cfg.xgb.max_depth, cfg.xgb.colsample_bytree, cfg.xgb.min_child_weight) == (
        best.params["xgb.max_depth"], best.params["xgb.colsample_bytree"], best.params["xgb.min_child_weight"])
    assert cfg.splits.test_years == 2 and cfg.data.dataset == str(dataset)  # the study's --config-set and dataset
    changed = [*XGB, "xgb.max_bin=64"]  # another training config: refused, the folder untouched
    assert tune(config, dataset, out, changed, "--trials", "4") == 2
    assert "made from another config" in capsys.readouterr().err and len(study(out).trials) == 3
    assert not (tmp_path / ".out.tmp").exists()


@pytest.mark.parametrize(("space", "message"), [
    ("  - {key: xgb.no_such, type: int, low: 1, high: 3}\n", "unknown key(s) xgb.no_such"),
    ("  - {key: xgb.subsample, type: float, low: 0.5, high: 1.5}\n", "xgb.subsample: must be in (0, 1], got 1.5"),
    ("  - {key: xgb.max_depth, type: float, low: 2, high: 4}\n", "xgb.max_depth: expected an integer, got 2.0"),
    ("  - {key: splits.valid_days, type: int, low: 20, high: 60}\n", "may not be tuned"),
    ("  - {key: xgb.max_depth, type: int, low: 5, high: 2}\n", "low 5 is above high 2"),
    ("  - {key: xgb.reg_lambda, type: float, low: 0.0, high: 1.0, log: true}\n", "log: true needs low > 0"),
    ("  - {key: xgb.max_depth, type: int, lo: 1, high: 3}\n", "unknown key(s) space[0].lo"),
])
def test_a_bad_search_space_fails_with_one_line_before_any_trial(dataset: Path, tmp_path: Path, space: str,
                                                                 message: str, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def never(*_: Any, **__: Any) -> None:
        raise AssertionError("the dataset was opened")

    monkeypatch.setattr("gpuetl.tensors.open_dataset", never)
    out = tmp_path / "out"
    assert tune(tune_config(tmp_path, space=space), dataset, out, XGB) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gpuetl tune: config error:") and message in err, err
    assert not out.exists()


class Reads:
    """Every day index a run hands to the data: label rows (fitting, prediction, scoring), the XGBoost baseline's
    row blocks and the GAT's day batches (whose windows reach back only)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.days: set[int] = set()
        rows, day_rows, batch = TrainData.rows, xgb_module.day_rows, DaySampler.batch

        def record(days: Any) -> None:
            self.days.update(int(t) for t in days)

        monkeypatch.setattr(TrainData, "rows", lambda data, days: (record(days), rows(data, days))[1])
        monkeypatch.setattr(xgb_module, "day_rows", lambda fold, days: (record(days), day_rows(fold, days))[1])
        monkeypatch.setattr(DaySampler, "batch", lambda s, days: (record(days), batch(s, days))[1])


def _plans(dataset: Path, overrides: list[str]) -> tuple[Splits, Splits, list[int]]:
    """The walk-forward plan's test days, and the tuning folds' validation days, as `gpuetl tune` makes them."""
    from gpuetl import backend
    from gpuetl.config import load_settings
    from gpuetl.train.tune import tuning_plan

    ds = open_dataset(dataset, backend.init(load_settings(overrides=["backend=cpu"])))
    cfg = load_xgb_config("configs/train/xgb.yaml", overrides)
    data = load_train_data(ds, cfg.data, torch.device("cpu"))
    plan = plan_folds(cfg, ds, data)
    tuning = tuning_plan(ds.dates, cfg, plan)
    return plan, tuning, [t for f in tuning.folds for t in data.days(f.valid)]


@pytest.mark.parametrize("learner", ["xgb", "gat"])
def test_no_test_day_of_any_fold_is_read(dataset: Path, tmp_path: Path, learner: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = XGB if learner == "xgb" else GAT
    plan, tuning, valid = _plans(dataset, XGB)  # the same data, splits and label in both configs
    assert [f.test_year for f in plan.folds] == [2021, 2022] and [f.test_year for f in tuning.folds] == [2020, 2021]
    assert tuning.folds[-1].valid == plan.folds[0].valid and len(valid) > 40
    reads = Reads(monkeypatch)
    assert tune(tune_config(tmp_path, learner, trials=1), dataset, tmp_path / "out", overrides, "--no-progress") == 0
    tests = {t for f in plan.folds for t in f.test.days}
    assert reads.days and not reads.days & tests, sorted(reads.days & tests)[:5]
    assert set(valid) <= reads.days  # the validation days were read, so a leak would show
    first_test = min(tests)
    assert max(reads.days) + plan.reach + plan.embargo < first_test  # no label of a day read reaches a test day
    if learner == "gat":
        assert study(tmp_path / "out", "t-gat").trials[0].state.name == "COMPLETE"


def test_the_shipped_tune_configs_load_and_fit_their_training_configs() -> None:
    from gpuetl.train.tune_config import check_space

    for name in ("gat", "xgb"):
        cfg = load_tune_config(f"configs/tune/{name}.yaml")
        check_space(cfg, [])
        assert cfg.learner == name and to_dict(cfg.space)


@pytest.fixture(autouse=True)
def _quiet_optuna() -> Iterator[None]:
    yield
    optuna.logging.set_verbosity(optuna.logging.INFO)
