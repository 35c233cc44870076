"""Run folders are outputs like any other: marked, locked, swapped in whole, replaced only with --overwrite,
continued only with --resume and only from the same dataset, graphs and config; graphs are checked wherever read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gpuetl.commands import main
from gpuetl.graphs.io import dataset_digest, graphs_digest
from gpuetl.lake.outputs import output_kind, write_marker
from gpuetl.tensors import DatasetError, open_dataset
from tests.support.train import (
    TINY_TRAIN,
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
    assert json.loads((out / "metrics.json").read_text())["folds"][0]["resumed"]


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
