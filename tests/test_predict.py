"""`gpuetl predict` on the tiny dataset: the ranking of the latest day (one row per code, ranks 1..N, best first)
holds what the run's model computes for that day, for the GAT and XGBoost; a dataset updated with later days is
accepted and scores the days it shares alike; a dataset made otherwise, a day it lacks, a run that did not finish,
stale graphs and an output that is not the command's own are refused in one line, and nothing it reads changes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch_geometric")
pytest.importorskip("xgboost")

from gpuetl.commands import main
from gpuetl.graphs.io import dataset_digest
from gpuetl.lake.outputs import MARKER, output_kind, write_marker
from tests._testing import assert_backend_equal
from tests.support.train import (
    TINY_TRAIN,
    TINY_XGB,
    keep_torch_threads,  # noqa: F401 (an autouse fixture)
    write_tiny_dataset,
)

LAST = "2022-12-30"  # the tiny dataset's latest day


def sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--config-set", o)]


def train(command: str, dataset: Path, out: Path, overrides: list[str]) -> None:
    assert main([command, "--backend", "cpu", "--dataset", str(dataset), "--out", str(out), "--no-progress",
                 *sets(overrides)]) == 0


def predict(run: Path, dataset: Path | None, out: Path, *extra: str) -> int:
    where = ["--dataset", str(dataset)] if dataset else []
    return main(["predict", "--backend", "cpu", "--run", str(run), *where, "--out", str(out), "--no-progress", *extra])


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset, a GAT run and a baseline run on it (about 20 s)."""
    root = tmp_path_factory.mktemp("predict")
    write_tiny_dataset(root / "ds")
    train("train", root / "ds", root / "gat", TINY_TRAIN)
    train("baseline", root / "ds", root / "xgb", TINY_XGB)
    return root


def ranking(out: Path, date: str = LAST, fmt: str = "parquet") -> pd.DataFrame:
    path = out / f"predictions-{date}.{fmt}"
    return pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path, dtype={"Code": str})


def check_ranking(frame: pd.DataFrame, date: str) -> None:
    """One row per code, ranks 1..N in order, the highest score first."""
    assert list(frame.columns) == ["Date", "Code", "score", "rank"]
    assert frame["Code"].is_unique and (frame["Date"] == pd.Timestamp(date)).all()
    assert frame["rank"].tolist() == list(range(1, len(frame) + 1))
    assert frame["score"].is_monotonic_decreasing and np.isfinite(frame["score"]).all()


def own_predict(run: Path, dataset: Path, model: str, day: int) -> pd.Series:
    """What the run's model computes for `day`, through the training code: the last fold's learner restored by
    `fit(..., resume=True)` (a finished fold trains nothing), then its `predict`."""
    from gpuetl.tensors import open_dataset
    from gpuetl.train.config import load_gat_config, load_xgb_config
    from gpuetl.train.data import load_train_data
    from gpuetl.train.splits import Splits

    ds = open_dataset(dataset, "cpu")
    fold = Splits.from_json(json.loads((run / "splits.json").read_text())).folds[-1]
    if model == "gat":
        from gpuetl.train.loop import GATLearner

        cfg = load_gat_config("configs/train/gat.yaml", TINY_TRAIN)
        data = load_train_data(ds, cfg.data, "cpu", cfg.model)
        learner: object = GATLearner(cfg, data, cfg.run.seeds[0] + fold.index)
        checkpoint = run / "checkpoints" / f"fold{fold.index}-seed{cfg.run.seeds[0]}.pt"
    else:
        from gpuetl.train.xgb import XGBLearner

        cfg = load_xgb_config("configs/train/xgb.yaml", TINY_XGB)  # type: ignore[assignment]
        data = load_train_data(ds, cfg.data, "cpu")
        learner = XGBLearner(cfg, cfg.run.seeds[0] + fold.index)  # type: ignore[arg-type]
        checkpoint = run / "checkpoints" / f"fold{fold.index}-seed{cfg.run.seeds[0]}.ubj"
    before = snapshot(run)
    learner.fit(data.fold(fold), checkpoint, resume=True)  # type: ignore[attr-defined]
    assert snapshot(run) == before
    scores = learner.predict(data.fold(fold), [day])[0].numpy()  # type: ignore[attr-defined]
    mask = data.eligible[day].numpy()
    return pd.Series(scores[mask], index=data.panel.codes[mask])


@pytest.mark.parametrize("model", ["gat", "xgb"])
def test_the_latest_day_ranked_by_the_runs_own_model(world: Path, tmp_path: Path, model: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run, dataset, out = world / model, world / "ds", tmp_path / "pred"
    before = snapshot(world)
    capsys.readouterr()
    assert predict(run, None, out, "--json") == 0  # the dataset the run was trained on, its latest day
    summary = json.loads(capsys.readouterr().out)
    assert snapshot(world) == before  # the run and the dataset are inputs: untouched
    assert output_kind(out) == "predictions" and sorted(p.name for p in out.iterdir()) == [
        MARKER, "prediction.json", f"predictions-{LAST}.parquet"]
    frame = ranking(out)
    check_ranking(frame, LAST)
    data = pd.read_parquet(dataset / "data", columns=["Code", "Date"])
    assert sorted(frame["Code"]) == sorted(data.loc[data["Date"] == pd.Timestamp(LAST), "Code"])  # every code
    assert summary["date"] == LAST and summary["model"] == model and summary["codes"] == len(frame) == 24
    assert summary["out_of_sample"] and summary["top"][0] == {"rank": 1, "Code": frame["Code"][0],
                                                              "score": float(frame["score"][0])}
    day = len(pd.bdate_range("2021-01-04", LAST)) - 1
    own = own_predict(run, dataset, model, day)
    assert_backend_equal(frame.set_index("Code")["score"], own.loc[frame["Code"]].astype(np.float32), tol="exact")
    # the run scored the same day as a test day, batched with others: the same numbers
    written = pd.read_parquet(run / "predictions.parquet")
    written = written[written["Date"] == pd.Timestamp(LAST)].set_index("Code")["prediction"]
    assert_backend_equal(frame.set_index("Code")["score"], written.loc[frame["Code"]],
                         tol="exact" if model == "xgb" else "float32")
    meta = json.loads((out / "prediction.json").read_text())
    assert meta["run_dataset_hash"] == meta["dataset_hash"] == dataset_digest(dataset)
    assert meta["fold"]["test_year"] == 2022 and meta["file"] == f"predictions-{LAST}.parquet"


def test_csv_a_chosen_day_and_the_output_rules(world: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pred"
    assert predict(world / "xgb", world / "ds", out, "--date", "2022-06-01", "--format", "csv") == 0
    frame = ranking(out, "2022-06-01", "csv")
    frame["Date"] = pd.to_datetime(frame["Date"])
    check_ranking(frame, "2022-06-01")
    capsys.readouterr()
    assert predict(world / "xgb", world / "ds", out, "--date", "2022-06-01") == 2  # its own kind: --overwrite
    assert "holds a gpuetl predictions already: pass --overwrite" in capsys.readouterr().err
    assert predict(world / "xgb", world / "ds", out, "--date", "2022-06-02", "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "prediction.json", "predictions-2022-06-02.parquet"]
    assert predict(world / "xgb", world / "ds", world / "gat", "--overwrite") == 2  # never another kind
    assert "holds a gpuetl gat-run, not a predictions" in capsys.readouterr().err
    assert predict(world / "xgb", world / "ds", tmp_path / "x.parquet") == 2
    assert "names the folder the ranking goes in" in capsys.readouterr().err


def truncate(source: Path, target: Path, last: str) -> Path:
    """A copy of the tiny dataset without the days after `last`: the dataset an evening update then extends."""
    shutil.copytree(source, target)
    for folder in (target / "data", target / "graphs" / "edges"):
        for part in folder.rglob("*.parquet"):
            frame = pd.read_parquet(part)
            kept = frame[frame["Date"] <= pd.Timestamp(last)]
            if kept.empty:
                shutil.rmtree(part.parent)
            else:
                kept.to_parquet(part, index=False)
    meta = json.loads((target / "metadata.json").read_text())
    rows = pd.read_parquet(target / "data", columns=["Date"])
    meta.update(rows=len(rows), dates=int(rows["Date"].nunique()))
    (target / "metadata.json").write_text(json.dumps(meta))
    graphs = json.loads((target / "graphs" / "graphs.json").read_text())
    graphs["dataset_hash"] = dataset_digest(target)
    (target / "graphs" / "graphs.json").write_text(json.dumps(graphs))
    return target


def test_a_dataset_updated_with_later_days_is_accepted(world: Path, tmp_path: Path) -> None:
    """A GAT trained on the dataset up to 2022-11-30 scores that day alike on the dataset updated to 2022-12-30
    (same config, more days: another hash), and scores the new latest day."""
    short = truncate(world / "ds", tmp_path / "short", "2022-11-30")
    run = tmp_path / "gat"
    train("train", short, run, [*TINY_TRAIN, "optim.max_epochs=2"])
    assert predict(run, short, tmp_path / "a") == 0
    assert predict(run, world / "ds", tmp_path / "b", "--date", "2022-11-30") == 0
    a, b = ranking(tmp_path / "a", "2022-11-30"), ranking(tmp_path / "b", "2022-11-30")
    assert_backend_equal(a, b, tol="exact")
    assert predict(run, world / "ds", tmp_path / "c") == 0
    check_ranking(ranking(tmp_path / "c"), LAST)
    assert json.loads((tmp_path / "c" / "prediction.json").read_text())["dataset_hash"] != dataset_digest(short)


def edit_metadata(source: Path, target: Path, edit: str) -> Path:
    shutil.copytree(source, target)
    meta = json.loads((target / "metadata.json").read_text())
    if edit == "normalize":
        meta["config"]["normalize"]["clip"] = 4.0
    elif edit == "features":
        meta["features_by_group"]["returns"] = ["ret_1d"]
    else:  # a run detail: another hash, the same definition (the graphs beside it turn stale)
        meta["rows"] += 0 if edit == "same" else 1
    (target / "metadata.json").write_text(json.dumps(meta))
    return target


def test_what_does_not_fit_is_refused_in_one_line(world: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pred"
    before = snapshot(world)

    def refused(code: int, run: Path, dataset: Path | None, *extra: str) -> str:
        capsys.readouterr()
        assert predict(run, dataset, out, *extra) == code
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith("gpuetl predict: ") and captured.err.count("\n") == 1
        assert not out.exists()
        return captured.err

    normalize = edit_metadata(world / "ds", tmp_path / "n", "normalize")
    assert "config.normalize differ" in refused(2, world / "gat", normalize)
    err = refused(2, world / "xgb", edit_metadata(world / "ds", tmp_path / "f", "features"))
    assert "(features_by_group differ)" in err and "train a run on this one" in err
    assert "is not a day of" in refused(2, world / "gat", None, "--date", "2022-12-31")
    assert "is not a date" in refused(2, world / "gat", None, "--date", "2022-13-01")
    assert "is not a finished run" in refused(2, world / "ds", None)
    stale = edit_metadata(world / "ds", tmp_path / "stale", "stale")
    for model in ("gat", "xgb"):  # as `gpuetl train` and `gpuetl baseline` refuse them: a data error
        assert "(stale)" in refused(1, world / model, stale)
    bare = edit_metadata(world / "ds", tmp_path / "bare", "same")
    shutil.rmtree(bare / "graphs")
    assert "no graphs at" in refused(1, world / "gat", bare)
    killed = tmp_path / "killed"  # a run stopped half way leaves its work beside its place
    shutil.copytree(world / "xgb", tmp_path / ".killed.tmp")
    write_marker(tmp_path / ".killed.tmp", "xgb-run", "writing")
    assert "gpuetl baseline --resume --out" in refused(2, killed, world / "ds")
    capsys.readouterr()
    assert main(["predict", "--backend", "cpu", "--run", str(world / "gat"), "--out", str(world / "gat" / "p")]) == 2
    assert "is inside the run" in capsys.readouterr().err
    assert snapshot(world) == before
