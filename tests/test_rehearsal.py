"""The multi-node rehearsal (issue 29, `make rehearsal`): a Dask scheduler and 3 worker processes that share
nothing but a real S3 server (moto's) build a dataset and its graphs, one worker is killed with SIGKILL while the
build runs, and the result equals the single-process build, frame for frame (benchmarks/rehearsal.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.lakes import SMALL

pytest.importorskip("moto.server", reason="moto[server] (the dev extra) runs the S3 test server")
pytest.importorskip("distributed", reason="the cluster extra (dask.distributed)")

SETTINGS = ("demo.codes=12", "demo.start=2023-06-01", "demo.end=2024-02-29",
            "cluster.partition_rows=400", "build.day_rows=2000")  # many small tasks: the kill lands mid-build


def test_three_workers_sharing_only_s3_build_what_one_process_builds_though_one_is_killed(tmp_path: Path) -> None:
    from benchmarks.rehearsal import rehearse

    r = rehearse(tmp_path / "rehearsal", sets=SETTINGS, build_sets=tuple(SMALL),
                 graph_sets=("features.pagerank=false", "window=20"), datasets="calendar,master,bars_daily,topix")
    assert r["killed"] is not None, "the build ended before a worker could be killed"
    assert r["differences"] == []
    # every worker read the lake from its own mirror (pulled from S3 into its own folder) ...
    assert all(any("_lake-" in m for m in mirrors) for mirrors in r["mirrors"].values()), r["mirrors"]
    # ... and what the run passed between tasks is gone from the workers that are left
    assert not any(r["leftovers"].values()), r["leftovers"]
    assert len(r["peaks"]) == 4 and all(v > 0 for v in r["peaks"].values())
