"""Inputs are never outputs: every command that writes, pointed at each of its own inputs, at a folder above or
inside one, at a user's folder, at another command's output, at a file and at the current folder, with and without
--overwrite, refuses in one line with exit 2, and every file under the test's root is byte-identical afterwards."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from gpuetl.commands import main
from gpuetl.lake.outputs import MARKER, output_kind, write_marker
from tests.support.lakes import SMALL
from tests.support.train import TINY_XGB

RAW = "calendar,bars_daily,topix,master"
GRAPH = ["features.pagerank=false", "features.louvain=false", "window=20"]
XGB = [*TINY_XGB, "data.horizons=[1, 5]", "splits.embargo_days=5"]  # the dataset's horizons


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under `root`: a file by its content's hash."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


def sets(flag: str, values: list[str]) -> list[str]:
    return [a for v in values for a in (flag, v)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake, a dataset with graphs, a baseline run, a user's folder, a file and the config files, all under one
    root; made once (about 30 s), then only read."""
    root = tmp_path_factory.mktemp("world")
    shutil.copytree("configs", root / "cfg")
    settings = ["--settings", str(root / "cfg" / "gpuetl.yaml"), "--backend", "cpu"]
    assert main(["synth", *settings, "--codes", "8", "--start", "2023-01-04", "--end", "2024-06-28", "--datasets", RAW,
                 "--out", str(root / "data" / "lake"), "--no-progress"]) == 0
    assert main(["build", *settings, "--lake", str(root / "data" / "lake"), "--out", str(root / "data" / "ds"),
                 "--config", str(root / "cfg" / "dataset" / "default.yaml"), *sets("--config-set", SMALL),
                 "--no-progress"]) == 0
    assert main(["graph", *settings, "--dataset", str(root / "data" / "ds"), "--lake", str(root / "data" / "lake"),
                 "--config", str(root / "cfg" / "graph" / "default.yaml"), *sets("--config-set", GRAPH),
                 "--no-progress"]) == 0
    assert main(["baseline", *settings, "--dataset", str(root / "data" / "ds"), "--out", str(root / "runs" / "xgb"),
                 "--config", str(root / "cfg" / "train" / "xgb.yaml"), *sets("--config-set", XGB),
                 "--no-progress"]) == 0
    (root / "mine" / "sub").mkdir(parents=True)
    (root / "mine" / "notes.txt").write_text("keep me")
    (root / "mine" / "sub" / "x.csv").write_text("1,2")
    (root / "mine" / "prices").mkdir()  # daily bars a user holds (what `import` reads)
    (root / "mine" / "prices" / "7203.csv").write_text("Date,Open,High,Low,Close,Volume\n2024-01-04,1,2,0.5,1.5,10\n")
    (root / "file.txt").write_text("a file")
    (root / "results").mkdir()
    write_marker(root / "results", "bench")
    (root / "results" / "results.json").write_text("{}")
    return root


@pytest.fixture(scope="module")
def pristine(world: Path) -> dict[str, str]:
    """The world's snapshot as made: every test only reads it, so each compares with this one (hashed once)."""
    return snapshot(world)


def command_line(command: str, root: Path, target: Path) -> list[str]:
    """`command` reading the world's inputs, with its output (or lake) at `target`."""
    cfg, data = root / "cfg", root / "data"
    settings = ["--settings", str(cfg / "gpuetl.yaml"), "--backend", "cpu"]
    return {
        "fetch": ["fetch", *settings, "--demo", "--lake", str(target), "--no-progress"],
        "import": ["import", *settings, "--dataset", "bars_daily", "--lake", str(target), "--no-progress",
                   str(root / "mine" / "prices")],  # the files it imports
        "synth": ["synth", *settings, "--codes", "3", "--out", str(target), "--no-progress"],
        "build": ["build", *settings, "--lake", str(data / "lake"), "--config", str(cfg / "dataset" / "default.yaml"),
                  "--out", str(target), "--no-progress"],
        "graph": ["graph", *settings, "--dataset", str(data / "ds"), "--lake", str(data / "lake"),
                  "--config", str(cfg / "graph" / "default.yaml"), "--out", str(target), "--no-progress"],
        "update": ["update", *settings, "--lake", str(data / "lake"), "--config", str(cfg / "dataset" / "default.yaml"),
                   "--dataset", str(target), "--no-fetch", "--no-progress"],  # the dataset it rewrites
        "train": ["train", *settings, "--dataset", str(data / "ds"), "--config", str(cfg / "train" / "gat.yaml"),
                  "--out", str(target), "--no-progress"],
        "baseline": ["baseline", *settings, "--dataset", str(data / "ds"), "--config", str(cfg / "train" / "xgb.yaml"),
                     "--out", str(target), "--no-progress"],
        "bench": ["bench", *settings, "--lake", str(data / "lake"), "--backends", "cpu", "--stages", "read",
                  "--out", str(target)],
        "predict": ["predict", *settings, "--run", str(root / "runs" / "xgb"), "--dataset", str(data / "ds"),
                    "--out", str(target), "--no-progress"],
    }[command]


# per command: where its output may not go (relative to the world's root); "." is the current folder
COMMON = ["cfg/gpuetl.yaml", "cfg", "mine", "file.txt", "file.txt/sub", "."]
TARGETS = {
    "fetch": [*COMMON, "data/ds", "data/ds/graphs", "data/ds/data", "runs/xgb", "results", "data"],
    "import": [*COMMON, "mine/prices", "mine/prices/7203.csv", "mine/prices/new", "data/ds", "data/ds/graphs",
               "runs/xgb", "results", "data", "data/lake"],
    "synth": [*COMMON, "data/ds", "data/ds/graphs", "runs/xgb", "results", "data"],
    "build": [*COMMON, "cfg/dataset/default.yaml", "cfg/dataset", "data/lake", "data", "data/lake/bars_daily",
              "data/lake/new", "data/ds/graphs", "runs/xgb", "results"],
    "graph": [*COMMON, "cfg/graph", "data/ds", "data/ds/data", "data/ds/new", "data", "data/lake",
              "data/lake/bars_daily", "runs/xgb", "results"],
    "update": [*COMMON, "cfg/dataset/default.yaml", "cfg/dataset", "data/lake", "data", "data/lake/bars_daily",
               "data/ds/graphs", "data/ds/data", "runs/xgb", "results"],
    "train": [*COMMON, "cfg/train", "data/ds", "data/ds/graphs", "data/ds/data", "data/ds/runs", "data", "data/lake",
              "runs/xgb", "results"],
    "baseline": [*COMMON, "cfg/train", "data/ds", "data/ds/graphs", "data/ds/new", "data", "data/lake", "results"],
    "bench": [*COMMON, "data/lake", "data/lake/results", "data", "data/ds", "runs/xgb"],
    "predict": [*COMMON, "runs/xgb", "runs/xgb/checkpoints", "runs/xgb/new", "runs", "data/ds", "data/ds/graphs",
                "data/ds/new", "data", "data/lake", "results"],
}
CASES = [(c, t) for c, targets in TARGETS.items() for t in targets]


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize(("command", "target"), CASES, ids=[f"{c}-{t}" for c, t in CASES])
def test_no_output_lands_on_an_input_or_what_is_not_its_own(world: Path, pristine: dict[str, str], command: str,
                                                            target: str, overwrite: bool,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(world / "mine")  # "." is a user's folder
    path = world / "mine" if target == "." else world / target
    argv = command_line(command, world, Path(".") if target == "." else path) + (["--overwrite"] if overwrite else [])
    before = pristine
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gpuetl {command}: ") and err.count("\n") == 1, err
    assert snapshot(world) == before
    if not overwrite:
        assert "--overwrite" not in err, err  # never the suggested fix: none of these is the command's own kind


def test_the_current_folder_is_refused_even_when_empty(world: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert main(command_line("build", world, Path("."))) == 2
    err = capsys.readouterr().err
    assert "is the current folder" in err and err.count("\n") == 1
    assert list(empty.iterdir()) == []


def test_own_kind_is_replaced_only_with_overwrite(world: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "xgb"
    shutil.copytree(world / "runs" / "xgb", run)
    argv = command_line("baseline", world, run) + sets("--config-set", XGB)
    assert main(argv) == 2
    assert "holds a gpuetl xgb-run already: pass --overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert output_kind(run) == "xgb-run" and (run / "metrics.json").is_file()
    assert main([*command_line("train", world, run), "--overwrite"]) == 2  # a GAT run never replaces an XGBoost one
    assert "holds a gpuetl xgb-run, not a gat-run" in capsys.readouterr().err


def test_a_refused_build_leaves_user_folders_beside_the_output(world: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`.<out>.old` / `.<out>.tmp` are removed only when gpuetl's marker says they are its own."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for what in ("old", "tmp"):
        (tmp_path / f".mine.{what}").mkdir()
        (tmp_path / f".mine.{what}" / "user.txt").write_text(what)
    before = snapshot(tmp_path)
    assert main(command_line("build", world, out)) == 2
    assert main([*command_line("build", world, out), "--overwrite"]) == 2
    assert snapshot(tmp_path) == before
    empty = tmp_path / "new"
    (tmp_path / ".new.tmp").mkdir()
    (tmp_path / ".new.tmp" / "user.txt").write_text("mine")
    capsys.readouterr()
    assert main(command_line("build", world, empty)) == 2  # in the way of the swap, and not gpuetl's
    assert "is in the way and gpuetl did not write it" in capsys.readouterr().err
    assert (tmp_path / ".new.tmp" / "user.txt").read_text() == "mine"


def test_a_second_writer_is_refused_in_one_line(world: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import fcntl

    out = tmp_path / "ds"
    with open(tmp_path / ".ds.lock", "w") as held:  # another process writing the same output holds this
        fcntl.flock(held, fcntl.LOCK_EX)
        capsys.readouterr()
        assert main(command_line("build", world, out) + sets("--config-set", SMALL)) == 2
        err = capsys.readouterr().err
        assert "another gpuetl process is writing --out" in err and err.count("\n") == 1
    assert not out.exists()


def test_two_builds_at_once_give_one_dataset_and_one_refusal(world: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "ds"
    argv = [sys.executable, "-m", "gpuetl", *command_line("build", world, out), *sets("--config-set", SMALL)]
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(), p.stderr.read() if p.stderr else "") for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert refused.count("\n") == 1 and ("another gpuetl process is writing" in refused or "already" in refused)
    assert output_kind(out) == "dataset" and (out / "metadata.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no lock, temporary or set-aside folder left


def test_graph_writes_only_into_its_own_place_in_the_dataset(world: Path, tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(world / "data" / "ds", ds)
    argv = command_line("graph", world, ds / "graphs")
    argv[argv.index("--dataset") + 1] = str(ds)
    own = {k: v for k, v in snapshot(ds).items() if not k.startswith("graphs")}
    assert main([*argv, *sets("--config-set", GRAPH), "--overwrite"]) == 0
    assert {k: v for k, v in snapshot(ds).items() if not k.startswith("graphs")} == own
    assert output_kind(ds / "graphs") == "graphs" and (ds / "graphs" / MARKER).is_file()
    meta = json.loads((ds / "graphs" / "graphs.json").read_text())  # where they came from, from any folder
    assert meta["dataset"] == str(ds) and meta["lake"] == str(world / "data" / "lake")


def test_fetch_and_synth_never_mix_a_synthetic_market_into_a_real_lake(world: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "real"
    shutil.copytree(world / "data" / "lake", real)
    write_marker(real, "lake", source="jquants")
    legacy = tmp_path / "legacy"  # a lake from before markers: known by its manifest
    shutil.copytree(world / "data" / "lake", legacy)
    os.unlink(legacy / MARKER)
    before = snapshot(tmp_path)
    for lake in (real, legacy):
        assert main([*command_line("synth", world, lake), "--overwrite"]) == 2
        assert "never replaces it" in capsys.readouterr().err
    assert main(command_line("fetch", world, real)) == 2
    assert "never mixes into it" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_a_lake_whose_manifest_is_lost_is_never_taken_for_leftovers(world: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(world / "data" / "lake", lake)
    manifest = (lake / "_manifest.json").read_text()
    (lake / "_manifest.json").unlink()
    before = snapshot(tmp_path)
    assert main(command_line("fetch", world, lake)) == 1  # a fetch would vacuum every unit file as unclaimed
    err = capsys.readouterr().err
    assert "is missing, though the lake holds unit files" in err and "gpuetl lake verify --repair" in err
    assert main(["lake", "verify", "--lake", str(lake)]) == 1
    assert "is missing" in capsys.readouterr().err
    assert snapshot(tmp_path) == before
    main(["lake", "verify", "--lake", str(lake), "--repair", "--no-progress", "--json"])  # rebuilt, then refetched
    assert "rebuilt the manifest from" in capsys.readouterr().out
    rebuilt = json.loads((lake / "_manifest.json").read_text())["datasets"]
    assert rebuilt.keys() == json.loads(manifest)["datasets"].keys()
