"""Safe outputs: a command replaces only an output of its own kind, and only with --overwrite; keeps a dataset's
graphs (stale) when the dataset is rebuilt, leaves no temporary folder behind, and checks --out before the work.
(tests/test_inputs_sacred.py holds every command to the same rules against its inputs.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuetl.commands import main
from gpuetl.graphs.io import StaleGraphsError, check_graphs, dataset_digest
from gpuetl.lake.outputs import OutputError, check_output_dir, output_kind, replaced_dir, write_marker


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def write_dataset(out: Path, made: dict[str, object], **kw: bool) -> None:
    with replaced_dir(out, "dataset", **kw) as tmp:
        (tmp / "data").mkdir()
        (tmp / "data" / "part-0.parquet").write_text("rows")
        (tmp / "metadata.json").write_text(json.dumps({**made, "created_at": "now", "timings_s": {"load": 1.0}}))


def write_graphs(dataset: Path) -> None:
    with replaced_dir(dataset / "graphs", "graphs") as tmp:
        (tmp / "graphs.json").write_text(json.dumps({"dataset_hash": dataset_digest(dataset)}))


def test_a_folder_gpuetl_did_not_write_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("keep me")
    (out / "sub" / "x.csv").write_text("1,2")
    before = tree(out)
    for overwrite in (False, True):  # --overwrite never replaces what gpuetl did not write
        with pytest.raises(OutputError, match=r"is not empty \(notes.txt, sub\) and gpuetl did not write it"):
            write_dataset(out, {"config": 1}, overwrite=overwrite)
    assert tree(out) == before and not list(tmp_path.glob(".*"))  # nothing touched, no temporary folder


def test_an_empty_or_missing_folder_is_written_and_its_own_kind_replaced_with_overwrite(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "ds"):
        write_dataset(out, {"config": 1})
        with pytest.raises(OutputError, match="holds a gpuetl dataset already: pass --overwrite"):
            write_dataset(out, {"config": 2})
        write_dataset(out, {"config": 2}, overwrite=True)  # its own output, asked for: replaced
        assert json.loads((out / "metadata.json").read_text())["config"] == 2 and output_kind(out) == "dataset"
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="holds a gpuetl dataset, not a graphs"):
            check_output_dir(tmp_path / "empty", "graphs", overwrite=overwrite)


def test_a_rebuilt_dataset_keeps_its_graphs_and_marks_them_stale(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    write_dataset(ds, {"config": 1, "rows": 10})
    write_graphs(ds)
    assert check_graphs(ds)["dataset_hash"] == dataset_digest(ds)
    write_dataset(ds, {"config": 1, "rows": 10}, overwrite=True)  # the same dataset (other timings): still fresh
    check_graphs(ds)
    write_dataset(ds, {"config": 2, "rows": 12}, overwrite=True)  # another dataset: graphs kept, stale
    assert (ds / "graphs" / "graphs.json").exists()
    with pytest.raises(StaleGraphsError,
                       match=r"earlier build of .*run `gpuetl graph --dataset .*ds --overwrite` again"):
        check_graphs(ds)
    with pytest.raises(StaleGraphsError, match="no graphs at"):
        check_graphs(tmp_path / "other")


def test_an_error_leaves_the_old_folder_and_no_temporary_one(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    write_dataset(ds, {"config": 1})
    before = tree(ds)
    with pytest.raises(RuntimeError, match="disk full"), replaced_dir(ds, "dataset", overwrite=True) as tmp:
        (tmp / "half.parquet").write_text("half")
        raise RuntimeError("disk full")
    assert tree(ds) == before and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_a_killed_run_is_cleaned_up_by_the_next(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    write_dataset(ds, {"config": 1})
    write_graphs(ds)
    before = tree(ds)
    (tmp_path / ".ds.tmp" / "data").mkdir(parents=True)  # killed while writing (81 MB in the report)
    write_marker(tmp_path / ".ds.tmp", "dataset", "writing")  # marked from the start, as replaced_dir marks it
    write_dataset(ds, {"config": 1}, overwrite=True)
    assert not (tmp_path / ".ds.tmp").exists() and tree(ds) == before
    ds.rename(tmp_path / ".ds.old")  # killed between moving the old folder aside and moving the new one in
    with pytest.raises(OutputError, match="holds a gpuetl dataset already"):  # it comes back, and is not replaced
        write_dataset(ds, {"config": 2})
    assert tree(ds) == before and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.mark.parametrize("command", ["build", "graph", "synth"])
def test_an_out_that_is_a_file_or_foreign_fails_at_once_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    ds = tmp_path / "ds"
    write_dataset(ds, {"config": 1})
    extra = {"build": ["--lake", str(tmp_path / "nolake")],
             "graph": ["--dataset", str(ds), "--lake", str(tmp_path / "nolake")],
             "synth": ["--codes", "3"]}[command]
    outs = [tmp_path / "file", tmp_path / "file" / "sub"] + ([tmp_path / "mine"] if command != "synth" else [])
    for out in outs:
        assert main([command, "--backend", "cpu", *extra, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"gpuetl {command}: ") and err.count("\n") == 1 and str(out) in err, err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
