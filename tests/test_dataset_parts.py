"""The split of the work never changes the result (issue 15): a dataset built as one code part or as many, a
year as one day chunk or as many (issue 29), in this process or on a Dask LocalCluster of 2 worker processes, and
its graphs built as one task or as several, are the same rows, bit for bit."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from gpuetl.cluster import InProcess, OnDask
from gpuetl.commands import main
from gpuetl.config import load_settings
from gpuetl.dataset.build import build_dataset
from gpuetl.dataset.config import load_dataset_config
from gpuetl.graphs.config import load_graph_config
from gpuetl.graphs.dataset import graph_dataset
from tests._testing import CPU
from tests.support.lakes import CONFIG, edge_tables, read_dataset, write_tables

EXACT = dict(check_exact=True, check_dtype=True)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parts") / "lake"
    write_tables(root, edge_tables(start="2023-06-01", end="2025-03-31", codes=12, seed=5))
    return root


@pytest.fixture(scope="module")
def reference(lake: Path) -> Path:
    """The default dataset (universe prime_standard: rows not written still count in the per-day ops) and its
    graphs, as one part and one task in this process."""
    out = lake.parent / "one"
    cfg = load_dataset_config(CONFIG, ["universe=prime_standard"])
    res = build_dataset(CPU, cfg, lake, out, progress=False, partition_rows=10**9, day_rows=10**9)
    assert res.parts == 1 and all(len(list(y.iterdir())) == 1 for y in (out / "data").iterdir())
    graph_dataset(CPU, load_graph_config(), out, lake, progress=False)
    return out


@pytest.fixture(scope="module")
def cluster() -> Iterator[OnDask]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GB",
                      dashboard_address=None) as made, Client(made) as client:
        yield OnDask(client, dataclasses.replace(load_settings(), backend="cpu"))


def read_graphs(ds: Path) -> dict[str, pd.DataFrame]:
    g = ds / "graphs"
    edges = pd.read_parquet(g / "edges").sort_values(["Date", "src", "dst"]).reset_index(drop=True)
    feats = pd.read_parquet(g / "features").sort_values(["Code", "Date"]).reset_index(drop=True)
    return {"edges": edges, "features": feats, "codes": pd.read_parquet(g / "codes.parquet")}


def assert_same(a: Path, b: Path) -> None:
    pd.testing.assert_frame_equal(read_dataset(a), read_dataset(b), **EXACT)
    ga, gb = read_graphs(a), read_graphs(b)
    for name in ga:
        pd.testing.assert_frame_equal(ga[name], gb[name], **EXACT, obj=name)
    ma, mb = (json.loads((p / "metadata.json").read_text()) for p in (a, b))
    assert ma["coverage"] == mb["coverage"] and ma["rows"] == mb["rows"] and ma["codes"] == mb["codes"]
    assert ma["years"] == mb["years"]  # rows, dates, values and first days per year, whatever the chunks


def test_many_code_parts_and_graph_tasks_in_this_process(lake: Path, reference: Path, tmp_path: Path) -> None:
    cfg = load_dataset_config(CONFIG, ["universe=prime_standard"])
    res = build_dataset(CPU, cfg, lake, tmp_path / "many", progress=False, partition_rows=1500)
    assert res.parts >= 4
    out = graph_dataset(CPU, load_graph_config(), tmp_path / "many", lake, progress=False,
                        runner=InProcess(CPU, workers=3))
    assert json.loads((out.out / "graphs.json").read_text())["tasks"] == 6
    assert_same(reference, tmp_path / "many")


def test_a_code_part_per_code_reads_only_its_own_rows_and_changes_no_value(tmp_path: Path) -> None:
    """The enrichment groups that read only their codes' rows (the master, statements, margin data) give each
    code the values it gets beside every other code: a code listed after the master's first day counts its
    days since listing from the master's first day over every code, not its part's (where it would be the
    first day, and the count censored)."""
    tables = edge_tables(start="2023-06-01", end="2025-03-31", codes=6, seed=5)
    late, listed_on = sorted(tables["master"]["Code"].unique())[0], pd.Timestamp("2024-03-01")
    for name, col in (("master", "Date"), ("bars_daily", "Date")):
        t = tables[name]
        tables[name] = t[(t["Code"] != late) | (t[col] >= listed_on)].reset_index(drop=True)
    write_tables(tmp_path / "lake", tables)
    cfg = load_dataset_config(CONFIG)
    one = build_dataset(CPU, cfg, tmp_path / "lake", tmp_path / "one", progress=False, partition_rows=10**9)
    each = build_dataset(CPU, cfg, tmp_path / "lake", tmp_path / "each", progress=False, partition_rows=1)
    assert one.parts == 1 and each.parts == 6
    a, b = read_dataset(tmp_path / "one"), read_dataset(tmp_path / "each")
    pd.testing.assert_frame_equal(a, b, **EXACT)
    days = b.loc[b["Code"] == late, "lst_bdays_listed"]
    assert days.notna().all() and (days.diff().dropna() == 1).all()  # counted from its listing, in its own part


def test_day_chunks_cut_years_anywhere_and_change_no_value(lake: Path, reference: Path, tmp_path: Path) -> None:
    """Chunks of a few days: per-day ops read their overlap across chunk and year boundaries (the spill of the same
    year and of the year before); the universe leaves rows unwritten that the per-day ops still count."""
    cfg = load_dataset_config(CONFIG, ["universe=prime_standard"])
    build_dataset(CPU, cfg, lake, tmp_path / "chunks", progress=False, partition_rows=3000, day_rows=40)
    files = {y.name: sorted(f.name for f in y.iterdir()) for y in (tmp_path / "chunks" / "data").iterdir()}
    assert all(len(f) >= 5 for f in files.values()), files  # 12 codes: 40 rows are about 4 days
    graph_dataset(CPU, load_graph_config(), tmp_path / "chunks", lake, progress=False)
    assert_same(reference, tmp_path / "chunks")


def test_a_dask_cluster_builds_the_same_dataset_and_graphs(lake: Path, reference: Path, cluster: OnDask,
                                                           tmp_path: Path) -> None:
    cfg = load_dataset_config(CONFIG, ["universe=prime_standard"])
    res = build_dataset(CPU, cfg, lake, tmp_path / "dask", progress=False, runner=cluster, partition_rows=3000,
                        day_rows=300)
    assert res.parts >= 2 and res.runner == "dask"
    graph_dataset(CPU, load_graph_config(), tmp_path / "dask", lake, progress=False, runner=cluster)
    assert_same(reference, tmp_path / "dask")


def test_the_commands_take_a_scheduler_address(lake: Path, reference: Path, cluster: OnDask, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    address = cluster.client.scheduler.address
    s = ["--backend", "cpu", "--set", "build.partition_rows=3000", "--config-set", "universe=prime_standard"]
    assert main(["build", *s, "--lake", str(lake), "--out", str(tmp_path / "cli"), "--cluster", address,
                 "--no-progress"]) == 0
    assert main(["graph", "--backend", "cpu", "--dataset", str(tmp_path / "cli"), "--lake", str(lake), "--cluster",
                 address, "--no-progress"]) == 0
    assert f"dask: {address} with 2 worker(s)" in capsys.readouterr().err
    assert_same(reference, tmp_path / "cli")
    assert main(["build", "--backend", "cpu", "--lake", str(lake), "--out", str(tmp_path / "x"), "--cluster",
                 "nowhere"]) == 1
    assert "--cluster 'nowhere': expected one of local, local-cuda, tcp://host:port" in capsys.readouterr().err


def test_a_local_clusters_tasks_run_their_kernels_on_their_share_of_the_cores() -> None:
    """Two workers on two cores ran four Numba threads (the 4,000 x 10-year build: 647 s against 507 s)."""
    from concurrent.futures import ThreadPoolExecutor

    import numba

    from gpuetl.cluster import _on_worker, task_threads

    assert task_threads(2, 1, 2) == 1 and task_threads(2, 1, 16) == 8 and task_threads(None, 1, 8) == 1
    assert task_threads(4, 2, 4) == 1  # never none
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one Numba thread on this machine: nothing to share")
    settings = dataclasses.replace(load_settings(), backend="cpu")

    def threads(**kw: int) -> int:  # in a fresh thread, as a worker's: the setting is per thread
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(_on_worker, settings, lambda b, _: numba.get_num_threads(), 0, **kw).result()

    assert threads() == numba.config.NUMBA_NUM_THREADS  # no share given: every core, as before
    assert threads(kernel_threads=1) == 1
