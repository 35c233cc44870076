"""`gpuetl update` (issue 26): a dataset built to T and updated day by day to T+20 business days is the dataset
and graphs a full build to T+20 makes, file for file and value for value (metadata apart from run details); a raw
unit J-Quants rewrote (a corrected close at T-100) rewrites only the years from there, and gives the full build of
the corrected lake; a changed config rebuilds everything, saying so; nothing new writes nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gpuetl.commands import main
from gpuetl.graphs.io import check_graphs
from gpuetl.jquants import spec
from gpuetl.lake import Lake, Manifest, Unit
from tests.support.lakes import SMALL, synthetic_tables, write_tables

RAW = "calendar,bars_daily,topix,master"
T = "2023-12-08"  # the first build's last date; T+20 business days crosses into 2024
CPU = ["--backend", "cpu", "--no-progress"]
RUN_DETAILS = {"created_at", "timings_s", "peak_device_bytes", "peak_host_bytes", "backend", "device", "parts",
               "runner", "tasks", "dataset", "lake"}


def sets(flag: str, values: list[str]) -> list[str]:
    return [a for v in values for a in (flag, v)]


def build(lake: Path, out: Path, *overrides: str) -> None:
    """The full build and its graphs, as the commands make them."""
    assert main(["build", *CPU, "--lake", str(lake), "--out", str(out), *sets("--config-set", [*SMALL, *overrides]),
                 "--json"]) == 0
    assert main(["graph", *CPU, "--dataset", str(out), "--lake", str(lake), "--json"]) == 0


def update(dataset: Path, lake: Path, *args: str) -> None:
    assert main(["update", *CPU, "--dataset", str(dataset), "--lake", str(lake), "--no-fetch", "--json", *args]) == 0


def bars_days(lake: Path) -> list[str]:
    return sorted(Unit.parse(u).start.isoformat() for u in Manifest.load(lake).units("bars_daily"))


def parquet(folder: Path) -> dict[str, pd.DataFrame]:
    """Every Parquet folder under `folder` (a year partition, codes.parquet's): its rows, in file order."""
    found: dict[str, list[Path]] = {}
    for f in sorted(folder.rglob("*.parquet")):
        found.setdefault(f.parent.relative_to(folder).as_posix(), []).append(f)
    return {k: pd.concat([pq.read_table(f).to_pandas() for f in fs], ignore_index=True) for k, fs in found.items()}


def made(path: Path) -> dict[str, object]:
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in RUN_DETAILS}


def assert_same(a: Path, b: Path) -> None:
    """The same dataset and graphs: every Parquet folder's values and schema, metadata apart from run details."""
    pa_, pb = parquet(a), parquet(b)
    assert pa_.keys() == pb.keys()
    for key in pa_:
        pd.testing.assert_frame_equal(pa_[key], pb[key], check_exact=True, obj=key)
    for key in ("data/year=2023", "graphs/edges/year=2023", "graphs/features/year=2023"):
        fa, fb = (next((p / key).glob("*.parquet")) for p in (a, b))
        assert pq.read_schema(fa).remove_metadata() == pq.read_schema(fb).remove_metadata(), key
    assert made(a / "metadata.json") == made(b / "metadata.json")
    assert made(a / "graphs" / "graphs.json") == made(b / "graphs" / "graphs.json")
    check_graphs(a)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake of 8 codes from 2022-07 to 2024-01, and the dataset (SMALL features) and its graphs built to T."""
    root = tmp_path_factory.mktemp("update")
    assert main(["synth", *CPU, "--codes", "8", "--start", "2022-07-01", "--end", "2024-01-31", "--datasets", RAW,
                 "--out", str(root / "lake")]) == 0
    build(root / "lake", root / "at_t", f"end={T}")
    return root


@pytest.fixture(scope="module")
def updated(world: Path) -> tuple[Path, list[str]]:
    """The dataset at T updated one business day at a time to T+20; the days."""
    ds = world / "updated"
    shutil.copytree(world / "at_t", ds)
    days = [d for d in bars_days(world / "lake") if d > T][:20]
    for d in days:
        update(ds, world / "lake", "--end", d)
    return ds, days


def test_day_by_day_to_t_plus_20_equals_a_full_build(world: Path, updated: tuple[Path, list[str]]) -> None:
    ds, days = updated
    assert days[-1].startswith("2024-")
    build(world / "lake", world / "full", f"end={days[-1]}")
    assert_same(ds, world / "full")


def test_a_corrected_unit_rewrites_the_years_from_it(world: Path, updated: tuple[Path, list[str]], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    ds, days = tmp_path / "ds", updated[1]
    lake = tmp_path / "lake"
    shutil.copytree(updated[0], ds)
    shutil.copytree(world / "lake", lake)
    kept = next((ds / "data" / "year=2022").glob("*.parquet")).stat().st_ino
    day = [d for d in bars_days(lake) if d <= T][-100]  # T-100: J-Quants rewrote a close
    unit = Unit.day(pd.Timestamp(day).date())
    rec = Manifest.load(lake).get("bars_daily", unit.id)
    assert rec is not None and len(rec.files) == 1
    table = pq.read_table(lake / rec.files[0])
    table = table.set_column(table.schema.get_field_index("C"), "C", pc.multiply(table["C"], 1.01))
    target = Lake(lake)
    target.write(spec.get("bars_daily"), unit, table)
    target.flush()
    capsys.readouterr()
    update(ds, lake, "--end", days[-1])
    err = capsys.readouterr().err
    assert f"the lake's bars_daily {day[:7]} changed since the build" in err and "2022 kept" in err, err
    assert next((ds / "data" / "year=2022").glob("*.parquet")).stat().st_ino == kept  # the year before: a link
    build(lake, tmp_path / "full", f"end={days[-1]}")
    assert_same(ds, tmp_path / "full")


def test_a_listing_recomputes_every_graph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A code new to the graph window after T (a listing) moves every edge's code index: the graphs are computed
    whole, the dataset still only from T's targets on; the statements, flows and events of every dataset join in."""
    tables = synthetic_tables(codes=8, start="2022-07-01", end="2024-01-31", split=False)
    listed = sorted(tables["bars_daily"]["Code"].unique())[3]
    for name in ("bars_daily", "master"):
        df = tables[name]
        tables[name] = df[(df["Code"] != listed) | (df["Date"] >= pd.Timestamp("2023-12-13"))].reset_index(drop=True)
    write_tables(tmp_path / "lake", tables)
    build(tmp_path / "lake", tmp_path / "ds", f"end={T}")
    capsys.readouterr()
    update(tmp_path / "ds", tmp_path / "lake", "--end", "2023-12-22")
    err = capsys.readouterr().err
    assert "recomputing the rows from 2023-11-" in err and f"1 code(s) new to the graph window ({listed})" in err, err
    build(tmp_path / "lake", tmp_path / "full", "end=2023-12-22")
    assert_same(tmp_path / "ds", tmp_path / "full")


def test_a_changed_config_rebuilds_everything(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(world / "at_t", ds)
    capsys.readouterr()
    update(ds, world / "lake", "--end", T, "--config-set", "normalize.clip=2.5")
    captured = capsys.readouterr()
    assert "the dataset config differs from the one it was built with (normalize.clip): rebuilding it whole" \
        in captured.err
    assert json.loads(captured.out)["years_kept"] == []
    build(world / "lake", tmp_path / "full", f"end={T}", "normalize.clip=2.5")
    assert_same(ds, tmp_path / "full")


def test_nothing_new_writes_nothing(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(world / "at_t", ds)
    before = {p: p.stat().st_mtime_ns for p in ds.rglob("*")}
    capsys.readouterr()
    update(ds, world / "lake", "--end", T)
    captured = capsys.readouterr()
    assert "up to date" in captured.err and json.loads(captured.out)["action"] == "current"
    assert {p: p.stat().st_mtime_ns for p in ds.rglob("*")} == before
    assert sorted(os.listdir(tmp_path)) == ["ds"]  # no lock, temporary or set-aside folder left


def test_errors_are_one_line(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(world / "at_t", ds)
    capsys.readouterr()
    argv = ["update", *CPU, "--dataset", str(ds), "--lake", str(world / "lake"), "--no-fetch"]
    assert main([*argv, "--end", "2023-11-01"]) == 2
    err = capsys.readouterr().err
    assert "is before the dataset's last date 2023-12-08: update only adds days" in err and err.count("\n") == 1
    assert main([*argv, "--end", "soon"]) == 2
    assert "is not a date" in capsys.readouterr().err
    missing = ["update", *CPU, "--dataset", str(tmp_path / "none"), "--lake", str(world / "lake"), "--no-fetch"]
    assert main(missing) == 1
    err = capsys.readouterr().err
    assert "no dataset at" in err and err.count("\n") == 1


def test_the_evening_job_fetches_the_new_days_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gpuetl update --demo`: the days from the dataset's last date are fetched from the built-in server, then the
    dataset goes to the lake's new last day."""
    demo = [*CPU, *sets("--set", ["demo.codes=6", "demo.start=2023-06-01", "demo.end=2024-01-31"])]
    lake, ds = tmp_path / "lake", tmp_path / "ds"
    assert main(["fetch", *demo, "--demo", "--lake", str(lake), "--start", "2023-06-01", "--end", "2024-01-15",
                 "--datasets", RAW, "--json"]) == 0
    assert main(["build", *demo, "--lake", str(lake), "--out", str(ds), *sets("--config-set", SMALL), "--json"]) == 0
    capsys.readouterr()
    assert main(["update", *demo, "--demo", "--lake", str(lake), "--dataset", str(ds), "--json"]) == 0
    captured = capsys.readouterr()
    assert "gpuetl update: fetched 2024-01-15 .. 2024-01-31:" in captured.err
    assert json.loads(captured.out)["last_date"] == bars_days(lake)[-1] > "2024-01-29"
    assert main(["update", *demo, "--demo", "--lake", str(lake), "--dataset", str(ds), "--json"]) == 0
    assert "nothing to fetch" in capsys.readouterr().err
