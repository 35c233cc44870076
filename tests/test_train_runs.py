"""Run folders are outputs like any other: marked, locked, swapped in whole, replaced only with --overwrite,
continued only with --resume and only from the same dataset, graphs and config; graphs are checked wherever read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpuetl.commands import main
from gpuetl.graphs.io import dataset_digest, graphs_digest
from gpuetl.lake.outputs import output_kind, write_marker
from gpuetl.tensors import DatasetError, open_dataset
from gpuetl.train.config import load_gat_config
from gpuetl.train.data import load_train_data, relations
from gpuetl.train.leadlag import lead_lag_edges
from tests._testing import assert_backend_equal
from tests.support.train import (
    TINY_TRAIN,
    TINY_XGB,
    keep_torch_threads,  # noqa: F401 (an autouse fixture)
    write_tiny_dataset,
)

QUICK = [*TINY_TRAIN, "optim.max_epochs=1"]


def run(command: str, dataset: Path, out: Path, overrides: list[str], *extra: str) -> int:
    sets = [a for o in overrides for a in ("--config-set", o)]
    return main([command, "--backend", "cpu", "--dataset", str(dataset), "--out", str(out), "--no-progress",
                 *sets, *extra])


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "ds")


def rebuild(dataset: Path) -> None:
    """What a rebuild that changed the data does to the dataset: another metadata.json (graphs kept, now stale)."""
    meta = json.loads((dataset / "metadata.json").read_text())
    meta["rows"] += 1
    (dataset / "metadata.json").write_text(json.dumps(meta))


def test_a_run_records_what_it_was_made_from_and_resumes_only_from_that(dataset: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gat"
    assert run("train", dataset, out, QUICK, "--resume") == 2  # nothing there to continue
    assert "no gat-run at" in capsys.readouterr().err
    assert run("train", dataset, out, QUICK) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset_hash"] == dataset_digest(dataset)
    assert config["graphs_hash"] == graphs_digest(dataset / "graphs")
    assert output_kind(out) == "gat-run"
    moved = tmp_path / "moved"  # the same dataset in another folder: the same run
    shutil.copytree(dataset, moved)
    assert run("train", moved, out, QUICK, "--resume") == 0
    rebuild(moved)  # and its graphs made again, as `gpuetl graph` would
    graphs = json.loads((moved / "graphs" / "graphs.json").read_text())
    (moved / "graphs" / "graphs.json").write_text(json.dumps({**graphs, "dataset_hash": dataset_digest(moved)}))
    capsys.readouterr()
    assert run("train", moved, out, QUICK, "--resume") == 2  # another dataset
    err = capsys.readouterr().err
    assert "dataset (rebuilt since)" in err and err.count("\n") == 1
    assert run("train", dataset, out, QUICK, "--resume", "--overwrite") == 2  # one or the other


def test_a_stopped_run_is_kept_for_resume_and_never_replaced_unasked(dataset: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gat"
    assert run("train", dataset, out, QUICK) == 0
    partial = tmp_path / ".gat.tmp"  # as a killed run leaves it: marked, not finished, the checkpoints inside
    out.rename(partial)
    write_marker(partial, "gat-run", "writing")
    (partial / "metrics.json").unlink()
    assert run("train", dataset, out, QUICK) == 2
    assert "did not finish" in capsys.readouterr().err and partial.is_dir() and not out.exists()
    assert run("train", dataset, out, QUICK, "--resume") == 0
    assert not partial.exists() and output_kind(out) == "gat-run"
    assert json.loads((out / "metrics.json").read_text())["folds"][0]["members"][0]["resumed"]


def test_graphs_are_checked_wherever_they_are_read(dataset: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ds = open_dataset(dataset, "cpu")
    assert ds.edges(0)[0].shape[0] == 2
    rebuild(dataset)
    stale = open_dataset(dataset, "cpu")
    assert stale.frame(["ret_1d"]).shape[0] > 0  # the dataset's own columns are still there
    with pytest.raises(DatasetError, match=r"stale.*gpuetl graph --dataset"):
        stale.edges(0)
    for command, extra in (("train", QUICK), ("train", [*QUICK, "model.graph=false"])):
        assert run(command, dataset, tmp_path / "run", extra) == 1
        err = capsys.readouterr().err
        assert "stale" in err and "gpuetl graph" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_gat_needs_graphs_unless_asked_for_the_graph_free_model(dataset: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(dataset / "graphs")
    assert run("train", dataset, tmp_path / "gat", QUICK) == 1
    err = capsys.readouterr().err
    assert "no graphs at" in err and "model.graph=false" in err and err.count("\n") == 1
    assert run("train", dataset, tmp_path / "alone", [*QUICK, "model.graph=false"]) == 0
    assert json.loads((tmp_path / "alone" / "config.json").read_text())["graphs_hash"] is None


def test_a_missing_dataset_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--backend", "cpu", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "no dataset at data/datasets/demo" in err and "--dataset" in err and err.count("\n") == 1
    (tmp_path / "folder").mkdir()
    assert main(["baseline", "--backend", "cpu", "--dataset", "folder", "--no-progress"]) == 2
    assert "is not a dataset" in capsys.readouterr().err


def blank_feature(ds: Path, feature: str) -> None:
    """Make `feature` of a tiny dataset have no value (as the sector code of a lake without a master): NaN raw,
    z-score 0, missing flag 1, coverage 0 in metadata.json; the graphs' record follows the new metadata."""
    for f in (ds / "data").rglob("*.parquet"):
        frame = pd.read_parquet(f)
        frame[feature] = np.float32(np.nan)
        frame[feature + "_z"] = np.float32(0.0)
        frame[feature + "_missing"] = np.float32(1.0)
        frame.to_parquet(f, index=False)
    meta = json.loads((ds / "metadata.json").read_text())
    meta["coverage"] = {f: {"share": 0.0 if f == feature else 1.0, "first_date": None}
                        for names in meta["features_by_group"].values() for f in names}
    (ds / "metadata.json").write_text(json.dumps(meta))
    graphs = json.loads((ds / "graphs" / "graphs.json").read_text())
    (ds / "graphs" / "graphs.json").write_text(json.dumps({**graphs, "dataset_hash": dataset_digest(ds)}))


def test_a_dataset_without_sector_codes_trains_with_what_it_has(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """No sector codes (a lake without a master): the default relations still train. The sector relation is left
    out, the lead-lag leaders are sought among all codes (and found), the feature without a value is no input; each
    said in one line and recorded in config.json."""
    ds = write_tiny_dataset(tmp_path / "ds")
    blank_feature(ds, "lst_s33")
    settings = [*(o for o in QUICK if o != "model.lead_lag=null"), "model.lead_lag.within=lst_s33"]  # within sectors
    capsys.readouterr()
    assert run("train", ds, tmp_path / "gat", settings) == 0
    err = capsys.readouterr().err
    lines = [f"no sector relation: {ds} has no values of lst_s33",
             f"lead-lag leaders sought among all codes: {ds} has no values of lst_s33",
             f"1 feature(s) without a value in {ds} are no inputs: lst_s33"]
    assert all(line in err for line in lines), err
    config = json.loads((tmp_path / "gat" / "config.json").read_text())
    assert sorted(config["left_out"]) == sorted(lines)
    assert "lst_s33_z" not in config["inputs"] and "ret_1d_z" in config["inputs"]
    cfg = load_gat_config("configs/train/gat.yaml", settings)
    data = load_train_data(open_dataset(ds, backend="cpu"), cfg.data, "cpu", cfg.model)
    assert data.sector is None and data.lead_lag is not None and data.lead_lag.within is None
    src, _, _ = lead_lag_edges(data.panel.column("ret_1d")[:200], None, data.lead_lag.peers, data.lead_lag.min_days)
    assert len(src) > 0  # leaders among all codes: before, none were sought outside a sector that is not there


def test_inputs_with_one_value_in_every_row_are_left_out_in_one_line(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A feature whose z-score is one number everywhere and the missing flags of features that are never missing
    (all 0) tell no code from another: they are no inputs, named in one line and in config.json; `gpuetl predict`
    then scores with the inputs the run recorded."""
    ds = write_tiny_dataset(tmp_path / "ds")
    for f in (ds / "data").rglob("*.parquet"):
        frame = pd.read_parquet(f)
        frame["sma5_gap_z"] = np.float32(0.5)
        frame.to_parquet(f, index=False)
    graphs = json.loads((ds / "graphs" / "graphs.json").read_text())
    (ds / "graphs" / "graphs.json").write_text(json.dumps({**graphs, "dataset_hash": dataset_digest(ds)}))
    capsys.readouterr()
    assert run("baseline", ds, tmp_path / "xgb", [*TINY_XGB, "data.inputs.missing_flags=true"]) == 0
    err = capsys.readouterr().err
    flat = ["sma5_gap_z", *(f"{f}_missing" for f in ("ret_1d", "ret_5d", "sma5_gap", "lst_s33", "st_log_mcap"))]
    (line,) = [x for x in err.splitlines() if "with one value in every row" in x]
    assert line.startswith(f"gpuetl baseline: {len(flat)} input(s)") and all(c in line for c in flat), line
    config = json.loads((tmp_path / "xgb" / "config.json").read_text())
    assert not set(flat) & set(config["inputs"]) and "ret_1d_z" in config["inputs"]
    assert any("with one value in every row" in x for x in config["left_out"])
    out = tmp_path / "pred"
    assert main(["predict", "--backend", "cpu", "--run", str(tmp_path / "xgb"), "--dataset", str(ds), "--out",
                 str(out)]) == 0
    assert len(pd.read_parquet(next(out.glob("predictions-*.parquet")))) > 0


def test_inputs_the_dataset_keeps_raw_are_z_scored_per_day(tmp_path: Path) -> None:
    """A `<feature>_z` the dataset keeps raw (normalization "raw": a category code such as lst_s33 = 9050, a count)
    enters the model as the day's z-score over its codes (pandas' reference, ddof 0); the others as they are."""
    ds = write_tiny_dataset(tmp_path / "ds")
    for f in (ds / "data").rglob("*.parquet"):
        frame = pd.read_parquet(f)
        frame["sma5_gap_z"] = (frame["Code"].str[:4].astype(np.float32) + frame["sma5_gap"] * 100).astype(np.float32)
        frame.to_parquet(f, index=False)
    meta = json.loads((ds / "metadata.json").read_text())
    meta["normalization"] = {"by_feature": {"sma5_gap": "raw", "ret_1d": "cross_section"}}
    (ds / "metadata.json").write_text(json.dumps(meta))
    graphs = json.loads((ds / "graphs" / "graphs.json").read_text())
    (ds / "graphs" / "graphs.json").write_text(json.dumps({**graphs, "dataset_hash": dataset_digest(ds)}))
    cfg = load_gat_config("configs/train/gat.yaml", QUICK)
    data = load_train_data(open_dataset(ds, backend="cpu"), cfg.data, "cpu")
    frame = open_dataset(ds, backend="cpu").frame(["sma5_gap_z", "ret_1d_z"])
    expected = frame["sma5_gap_z"].astype(np.float64).groupby(frame["Date"]).transform(
        lambda v: (v - v.mean()) / v.std(ddof=0))
    col = data.inputs.index("sma5_gap_z")
    t = np.searchsorted(data.panel.dates, frame["Date"].to_numpy().astype("datetime64[D]"))
    n = np.searchsorted(data.panel.codes, frame["Code"].to_numpy())
    got = data.x[:, :, col].numpy()[t, n]
    assert_backend_equal(got, expected.to_numpy(), tol="float32")
    assert_backend_equal(data.x[:, :, data.inputs.index("ret_1d_z")].numpy()[t, n], frame["ret_1d_z"].to_numpy(),
                         tol="exact")


def test_relation_columns_of_an_enrichment_that_did_not_run_are_left_out_and_typos_refused(tmp_path: Path) -> None:
    """A lake without a master: the listing enrichment is skipped and lst_s33 is no column at all; the relations
    that read it are left out (saying why), while a column no enrichment makes is a DatasetError."""
    ds = write_tiny_dataset(tmp_path / "ds")
    meta = json.loads((ds / "metadata.json").read_text())
    meta["features_by_group"]["listing"] = []
    meta["enrich"] = {"listing": "skipped: the lake has no master"}
    (ds / "metadata.json").write_text(json.dumps(meta))
    cfg = load_gat_config("configs/train/gat.yaml", ["model.lead_lag.within=lst_s33"])  # leaders within sectors
    sector, lead_lag, notes = relations(open_dataset(ds, backend="cpu"), cfg.model)
    why = f"{ds} has no lst_s33 (its listing enrichment is skipped: the lake has no master)"
    assert sector is None and lead_lag is not None and lead_lag.within is None
    assert notes == [f"no sector relation: {why}", f"lead-lag leaders sought among all codes: {why}"]
    typo = load_gat_config("configs/train/gat.yaml", ["model.lead_lag.within=lst_s34"]).model
    with pytest.raises(DatasetError, match="has no column lst_s34 for the lead-lag relation"):
        relations(open_dataset(ds, backend="cpu"), typo)
