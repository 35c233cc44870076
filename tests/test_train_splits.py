"""Walk-forward splits: folds by calendar year, no overlap, purge and embargo honoured row by row, the
saved plan checked; the GAT and XGBoost configs share their data, splits and eval sections."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from gpuetl.config import ConfigError
from gpuetl.train.config import SplitSettings, load_gat_config, load_xgb_config
from gpuetl.train.splits import Fold, Period, SplitError, Splits, check_splits, label_reach, make_splits

DATES = pd.bdate_range("2019-01-04", "2024-12-30").to_numpy().astype("datetime64[D]")
SPLITS = SplitSettings(test_years=4, min_train_days=60, valid_days=60, embargo_days=20)


def test_reach_counts_the_next_day_entry() -> None:
    assert label_reach("target_next_ret_1d", (1, 5, 20)) == 21  # close t+1 -> t+21
    assert label_reach("target_ret_5d", (1, 5)) == 5  # close t -> t+5


def test_folds_are_calendar_years_with_purged_embargoed_expanding_windows() -> None:
    reach = label_reach("target_next_ret_1d", (1, 5, 10, 20))
    plan = make_splits(DATES, SPLITS, reach)
    years = DATES.astype("datetime64[Y]").astype(int) + 1970
    assert [f.test_year for f in plan.folds] == [2021, 2022, 2023, 2024]
    for f in plan.folds:
        train, valid, test = (set(p.days) for p in (f.train, f.valid, f.test))
        assert not train & valid and not train & test and not valid & test  # no overlap
        assert test == set(np.flatnonzero(years == f.test_year))  # the whole calendar year
        assert len(valid) == SPLITS.valid_days and f.train.first == 0  # expanding from the first day
        # purge: no training (validation) row's label window reaches the next period ...
        assert max(t + reach for t in train) < min(valid) and max(t + reach for t in valid) < min(test)
        # ... and the embargo: >= 20 business days between the last label close and the next period
        assert min(valid) - (max(train) + reach) - 1 == SPLITS.embargo_days
        assert min(test) - (max(valid) + reach) - 1 == SPLITS.embargo_days
    assert [len(f.train) for f in plan.folds] == sorted(len(f.train) for f in plan.folds)
    check_splits(plan, DATES, 20)


def test_years_without_enough_history_are_skipped_and_said() -> None:
    plan = make_splits(DATES[np.datetime64("2023-01-01") <= DATES], SPLITS, 21)
    assert [f.test_year for f in plan.folds] == [2024] and plan.skipped[0].startswith("2023: 0 training days")


def test_the_check_catches_overlap_leaks_and_short_embargoes(tmp_path: Path) -> None:
    plan = make_splits(DATES, SPLITS, 21)
    plan.save(tmp_path / "splits.json", DATES)
    saved = json.loads((tmp_path / "splits.json").read_text())
    assert saved["folds"][0]["test"]["from"] == "2021-01-01" and saved["embargo"] == 20
    check_splits(Splits.from_json(saved), DATES, 20)
    f = plan.folds[1]

    def with_fold(**changes: Period) -> Splits:
        folds = list(plan.folds)
        folds[1] = dataclasses.replace(f, **changes)
        return dataclasses.replace(plan, folds=tuple(folds))

    cases = {
        "labels reach into valid": with_fold(train=Period(0, f.valid.first - 21)),
        "business days between": with_fold(train=Period(0, f.valid.first - 30)),
        "labels reach into test": with_fold(valid=Period(f.valid.first, f.test.first - 5)),
        "not the calendar year": with_fold(test=Period(f.test.first, f.test.last + 1)),
        "empty or outside": with_fold(test=Period(f.test.first, len(DATES) + 3)),
        "expand": dataclasses.replace(plan, folds=(plan.folds[1], plan.folds[0])),
    }
    for message, bad in cases.items():
        with pytest.raises(SplitError, match=message):
            check_splits(bad, DATES, 20)
    with pytest.raises(SplitError, match="shorter than the longest horizon"):
        check_splits(dataclasses.replace(plan, embargo=5), DATES, 20)
    assert isinstance(plan.folds[0], Fold)


@pytest.mark.parametrize(("tuning", "train", "loader"), [
    ("configs/tune/gat.yaml", "configs/train/gat.yaml", load_gat_config),
    ("configs/tune/xgb.yaml", "configs/train/xgb.yaml", load_xgb_config),
])
def test_the_tuned_defaults_are_the_best_of_the_recorded_study(tuning: str, train: str, loader: Any) -> None:
    """Every key the tuning config searches holds, in the shipped training config, the value of the best trial of
    the study recorded in benchmarks/results (run on a calibration market's validation days: docs/training.md,
    "How the training defaults were chosen"); the README's tables are measured with these defaults."""
    from gpuetl.config import to_dict

    keys = [p["key"] for p in yaml.safe_load(Path(tuning).read_text())["space"]]
    name = Path(tuning).stem
    best = loader(f"benchmarks/results/cpu-2026-12-07-tune-{name}-best.yaml")
    shipped = loader(train)

    def at(cfg: Any, key: str) -> Any:
        value: Any = to_dict(cfg)
        for part in key.split("."):
            value = value[part]
        return value

    assert {k: at(shipped, k) for k in keys} == {k: at(best, k) for k in keys}
    assert keys  # the space is not empty: the test compares something


def test_configs_share_data_splits_and_eval_and_check_the_embargo() -> None:
    gat = yaml.safe_load(Path("configs/train/gat.yaml").read_text())
    xgb = yaml.safe_load(Path("configs/train/xgb.yaml").read_text())
    for section in ("data", "splits", "eval", "run"):
        assert {k: v for k, v in gat[section].items() if k != "out"} == \
            {k: v for k, v in xgb[section].items() if k != "out"}, section
    assert load_gat_config("configs/train/gat.yaml").splits.embargo_days >= 20
    load_xgb_config("configs/train/xgb.yaml")
    with pytest.raises(ConfigError, match="at least the longest horizon"):
        load_gat_config("configs/train/gat.yaml", ["data.horizons=[1, 20]", "splits.embargo_days=10"])
    with pytest.raises(ConfigError, match=r"multiple of model\.heads"):
        load_gat_config("configs/train/gat.yaml", ["model.hidden=9"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_xgb_config("configs/train/xgb.yaml", ["xgb.depth=3"])
