"""After `make demo`, bare `gpuetl build` / `gpuetl graph` find the demo lake and dataset (saying so on stderr),
results go to stdout, a user's folder survives `build --out` (with --overwrite too), a dataset is rebuilt only with
--overwrite, and a rebuilt dataset's graphs turn stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuetl.commands import main
from gpuetl.graphs.io import StaleGraphsError, check_graphs
from tests.support.lakes import SMALL

# the flow does not depend on which features are built: a small feature list and graph config, for time
SMALL_BUILD = [a for v in SMALL for a in ("--config-set", v)]
SMALL_GRAPH = [a for v in ("features.pagerank=false", "features.louvain=false", "window=20")
               for a in ("--config-set", v)]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_bare_build_and_graph_after_the_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    s = ["--backend", "cpu", "--set", f"paths.data={data}", "--set", f"paths.lake={data}/raw",
         "--set", f"paths.datasets={data}/datasets", "--set", "demo.codes=12", "--set", "demo.start=2023-06-01",
         "--set", "demo.end=2024-03-29"]
    code, out, err = run(capsys, "synth", *s, "--datasets", "calendar,master,bars_daily,topix", "--json")
    assert code == 0 and json.loads(out)["lake"] == str(data / "demo" / "raw")  # stdout: the result only

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, out, err = run(capsys, "build", *s, "--lake", str(data / "demo" / "raw"), "--out", str(mine))
    assert code == 2 and out == "" and err.startswith("gpuetl build: ") and err.count("\n") == 1
    assert f"{mine} is not empty (notes.txt) and gpuetl did not write it" in err
    assert (mine / "notes.txt").read_text() == "keep me"

    code, out, err = run(capsys, "build", *s, *SMALL_BUILD, "--json")
    demo = data / "datasets" / "demo"
    assert code == 0 and json.loads(out)["out"] == str(demo) and json.loads(out)["rows"] > 0
    assert f"using the demo lake {data / 'demo' / 'raw'}" in err

    code, out, err = run(capsys, "graph", *s, *SMALL_GRAPH, "--json")
    assert code == 0 and json.loads(out)["out"] == str(demo / "graphs") and "using the demo dataset" in err
    check_graphs(demo)

    code, out, err = run(capsys, "build", *s, "--config-set", "start=2023-12-01")  # not without --overwrite
    assert code == 2 and f"{demo} holds a gpuetl dataset already: pass --overwrite" in err
    code, out, err = run(capsys, "build", *s, *SMALL_BUILD, "--config-set", "start=2023-12-01",
                            "--overwrite")  # another dataset
    assert code == 0 and "built" in out and "stale" in err and (demo / "graphs" / "graphs.json").exists()
    assert "--overwrite" in err.split("stale")[-1]  # the command to run names the flag it needs
    with pytest.raises(StaleGraphsError):
        check_graphs(demo)
    code, out, err = run(capsys, "graph", *s, *SMALL_GRAPH, "--overwrite")
    assert code == 0 and "replacing the stale graphs" in err
    check_graphs(demo)
    assert not [p for p in tmp_path.rglob(".*.tmp")] and not [p for p in tmp_path.rglob(".*.lock")]

    code, out, err = run(capsys, "build", *s, "--overwrite", "--out", str(mine))  # never a user's folder
    assert code == 2 and (mine / "notes.txt").read_text() == "keep me" and "gpuetl did not write it" in err
