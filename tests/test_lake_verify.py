"""A corrupt lake is found and repaired: `lake verify` hashes every unit against the manifest, `--repair` and
`fetch --verify` fetch bad units again, and readers name a bad file in one line with the repair command."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gpuetl.commands import main
from gpuetl.jquants import normalize, spec
from gpuetl.lake import Lake, Manifest, Unit, read
from gpuetl.lake.verify import CorruptLakeError, verify

BARS = spec.get("bars_daily")


def small_lake(root: Path) -> Lake:
    lake = Lake(root)
    for day in ("2024-01-04", "2024-01-05"):
        rows = [{"Date": day, "Code": c, "C": 100.0 + i, "UL": "0"} for i, c in enumerate(["72030", "13010"])]
        lake.write(BARS, Unit.day(dt.date.fromisoformat(day)), normalize.to_table(BARS, rows))
    lake.flush()
    return lake


def part(root: Path, day: str) -> Path:
    return root / f"bars_daily/year=2024/month=01/part-d{day.replace('-', '')}.parquet"


def test_verify_finds_truncated_changed_and_missing_files(tmp_path: Path) -> None:
    small_lake(tmp_path)
    assert verify(tmp_path).bad == [] and verify(tmp_path).units == 2
    data = part(tmp_path, "2024-01-04").read_bytes()
    part(tmp_path, "2024-01-04").write_bytes(data[: len(data) // 2])  # a truncated download
    t = pq.read_table(part(tmp_path, "2024-01-05"))
    pq.write_table(t.set_column(t.schema.get_field_index("C"), "C", pc.multiply(t["C"], 2.0)),
                   part(tmp_path, "2024-01-05"))  # readable, other values
    report = verify(tmp_path)
    assert [(b.unit, b.problem.split(":")[0]) for b in report.bad] == [
        ("d20240104", "bars_daily/year=2024/month=01/part-d20240104.parquet"),
        ("d20240105", "content differs from the hash the manifest recorded")]
    with pytest.raises(CorruptLakeError, match=r"part-d20240104.parquet is not a readable Parquet file .*"
                                               r"`gpuetl lake verify --repair --lake "):
        read(tmp_path, "bars_daily")
    part(tmp_path, "2024-01-04").unlink()
    missing = verify(tmp_path, start=dt.date(2024, 1, 4), end=dt.date(2024, 1, 4)).bad
    assert [b.problem for b in missing] == ["bars_daily/year=2024/month=01/part-d20240104.parquet: missing"]
    with pytest.raises(CorruptLakeError, match=r"part-d20240104\.parquet is missing"):
        read(tmp_path, "bars_daily")


def test_a_corrupt_demo_lake_is_named_by_build_and_repaired(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    s = ["--backend", "cpu", "--set", f"paths.data={data}", "--set", "demo.codes=4", "--set",
         "demo.start=2024-01-04", "--set", "demo.end=2024-01-31"]
    lake = data / "demo" / "raw"
    assert main(["fetch", "--demo", *s, "--datasets", "calendar,master,bars_daily,topix", "--no-progress"]) == 0
    clean = Manifest.load(lake).digest()
    hashes = {f: pq.read_table(lake / f).equals for f in Manifest.load(lake).files("bars_daily")}
    bad = part(lake, "2024-01-10")
    bad.write_bytes(bad.read_bytes()[:300])
    capsys.readouterr()

    assert main(["build", *s, "--lake", str(lake), "--out", str(tmp_path / "ds")]) == 1
    err = capsys.readouterr().err
    assert err == (f"gpuetl build: {bad} is not a readable Parquet file (Parquet magic bytes not found in footer. "
                   f"Either the file is corrupted or this is not a parquet file.); check and repair the lake with "
                   f"`gpuetl lake verify --repair --lake {lake}`\n")

    assert main(["fetch", "--demo", *s, "--datasets", "bars_daily", "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == 0  # a plain fetch trusts the manifest

    assert main(["lake", "verify", *s, "--demo", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(b["dataset"], b["unit"]) for b in report["bad"]] == [("bars_daily", "d20240110")]
    assert report["units"] == sum(len(Manifest.load(lake).units(n)) for n in Manifest.load(lake).datasets())

    # the demo lake: demo server
    assert main(["lake", "verify", *s, "--demo", "--repair", "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["repaired"] == ["bars_daily/d20240110"] and report["remaining"] == 0
    assert Manifest.load(lake).digest() == clean and all(same(pq.read_table(lake / f)) for f, same in hashes.items())

    t = pq.read_table(part(lake, "2024-01-11"))  # fetch --verify does the same within its window
    pq.write_table(t.slice(1), part(lake, "2024-01-11"))
    assert main(["fetch", "--demo", *s, "--datasets", "bars_daily", "--verify", "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary["refetched"]) == ["bars_daily/d20240111"] and summary["requests"] == 1
    assert Manifest.load(lake).digest() == clean and verify(lake).bad == []


def test_the_empty_table_of_a_unit_with_no_rows_verifies(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.write(BARS, Unit.day(dt.date(2024, 1, 8)), normalize.to_table(BARS, []))
    lake.flush()
    assert verify(tmp_path).bad == [] and read(tmp_path, "bars_daily").num_rows == 0
    assert isinstance(read(tmp_path, "bars_daily"), pa.Table)
