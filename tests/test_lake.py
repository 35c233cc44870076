"""The raw lake: layout, atomic unit writes, the manifest, crash safety, dedupe rules, the reader."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from gpuetl.jquants import normalize, spec
from gpuetl.lake import Lake, Manifest, Unit, manifest_hash, read, read_frame
from gpuetl.lake.units import chunks, gaps

BARS = spec.get("bars_daily")
D = dt.date


def bars(day: str, codes: list[str], close: float = 1.0) -> pa.Table:
    return normalize.to_table(BARS, [{"Date": day, "Code": c, "C": close, "UL": "0"} for c in codes])


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_a_unit_lands_in_its_month_partition_and_the_manifest(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    rec = lake.write(BARS, Unit.day(D(2024, 1, 5)), bars("2024-01-05", ["72030", "13010"]))
    lake.flush()
    assert files(tmp_path) == ["_manifest.json", "bars_daily/year=2024/month=01/part-d20240105.parquet"]
    data = json.loads((tmp_path / "_manifest.json").read_text())
    unit = data["datasets"]["bars_daily"]["d20240105"]
    assert unit["rows"] == 2 and unit["hash"] == rec.hash and unit["final"] is True
    assert (unit["first"], unit["last"], unit["spills"]) == ("2024-01-05", "2024-01-05", False)
    assert Lake(tmp_path).complete(BARS, Unit.day(D(2024, 1, 5)))
    t = read(tmp_path, "bars_daily")
    assert t.column("Code").to_pylist() == ["13010", "72030"]  # sorted by date, then every column


def test_rewriting_a_unit_replaces_it(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    unit = Unit.day(D(2024, 1, 5))
    first = lake.write(BARS, unit, bars("2024-01-05", ["72030", "13010"]))
    again = lake.write(BARS, unit, bars("2024-01-05", ["13010", "72030"]))  # other order, same rows
    lake.flush()
    assert first.hash == again.hash and read(tmp_path, "bars_daily").num_rows == 2


def test_a_crash_before_the_manifest_flush_does_not_duplicate_rows(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.write(BARS, Unit.day(D(2024, 1, 4)), bars("2024-01-04", ["72030"]))
    lake.flush()
    lake.write(BARS, Unit.day(D(2024, 1, 5)), bars("2024-01-05", ["72030"]))  # written, never flushed: "kill -9"
    resumed = Lake(tmp_path)
    assert not resumed.complete(BARS, Unit.day(D(2024, 1, 5)))
    assert read(tmp_path, "bars_daily").num_rows == 1  # the unclaimed file is not read
    resumed.write(BARS, Unit.day(D(2024, 1, 5)), bars("2024-01-05", ["72030"]))
    resumed.flush()
    assert read(tmp_path, "bars_daily").num_rows == 2
    assert not [f for f in files(tmp_path) if ".tmp" in f]


def test_vacuum_removes_files_no_unit_claims(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.write(BARS, Unit.day(D(2024, 1, 5)), bars("2024-01-05", ["72030"]))  # never flushed
    assert Lake(tmp_path).vacuum() == ["bars_daily/year=2024/month=01/part-d20240105.parquet"]


def test_corrections_are_kept_exact_duplicates_are_not(tmp_path: Path) -> None:
    ds = spec.get("investor_types")
    row = {"PubDate": "2023-04-06", "StDate": "2023-03-27", "EnDate": "2023-03-31", "Section": "TSEPrime",
           "PropSell": 100}
    correction = {**row, "PubDate": "2023-04-13", "PropSell": 101}
    lake = Lake(tmp_path)
    lake.write(ds, Unit.span(D(2023, 4, 1), D(2023, 4, 30)), normalize.to_table(ds, [row, row, correction]))
    lake.flush()
    t = read(tmp_path, "investor_types")
    assert t.column("PropSell").to_pylist() == [100.0, 101.0]


def test_rows_spanning_months_are_split_and_filtered_on_read(tmp_path: Path) -> None:
    ds = spec.get("topix")
    recs = [{"Date": d, "C": i} for i, d in enumerate(["2024-01-30", "2024-01-31", "2024-02-01"])]
    lake = Lake(tmp_path)
    lake.write(ds, Unit.span(D(2024, 1, 30), D(2024, 2, 1)), normalize.to_table(ds, recs))
    lake.flush()
    assert [f for f in files(tmp_path) if f.endswith(".parquet")] == [
        "topix/year=2024/month=01/part-r20240130-20240201.parquet",
        "topix/year=2024/month=02/part-r20240130-20240201.parquet"]
    assert read(tmp_path, "topix", "2024-01-31", "2024-02-01", columns=["Date", "C"]).to_pylist() == [
        {"Date": D(2024, 1, 31), "C": 1.0}, {"Date": D(2024, 2, 1), "C": 2.0}]


def test_range_gaps_and_superseded_provisional_ranges(tmp_path: Path) -> None:
    ds = spec.get("topix")
    lake = Lake(tmp_path)

    def rows(a: D, b: D) -> pa.Table:
        n = (b - a).days + 1
        return normalize.to_table(ds, [{"Date": (a + dt.timedelta(days=i)).isoformat(), "C": 1} for i in range(n)])

    lake.write(ds, Unit.span(D(2024, 1, 1), D(2024, 1, 10)), rows(D(2024, 1, 1), D(2024, 1, 10)))
    lake.write(ds, Unit.span(D(2024, 1, 11), D(2024, 1, 15)), rows(D(2024, 1, 11), D(2024, 1, 15)), final=False)
    assert lake.missing_ranges(ds, D(2023, 12, 30), D(2024, 1, 20)) == [
        (D(2023, 12, 30), D(2023, 12, 31)), (D(2024, 1, 11), D(2024, 1, 20))]
    # the next run fetches the gap in one piece; the provisional unit it covers goes away
    lake.write(ds, Unit.span(D(2024, 1, 11), D(2024, 1, 20)), rows(D(2024, 1, 11), D(2024, 1, 20)))
    lake.flush()
    assert sorted(lake.manifest.units("topix")) == ["r20240101-20240110", "r20240111-20240120"]
    assert read(tmp_path, "topix").num_rows == 20
    assert not any("20240115" in f for f in files(tmp_path))


def test_snapshots_are_stamped_and_kept_apart(tmp_path: Path) -> None:
    ds = spec.get("earnings_calendar")
    lake = Lake(tmp_path)
    rec = [{"Date": "2024-02-14", "Code": "43760", "CoName": "くふうカンパニー"}]
    lake.write(ds, Unit.snapshot(D(2024, 2, 13)), normalize.to_table(ds, rec))
    lake.write(ds, Unit.snapshot(D(2024, 2, 14)), normalize.to_table(ds, rec))
    lake.flush()
    t = read(tmp_path, "earnings_calendar")
    assert t.column("SnapshotDate").to_pylist() == [D(2024, 2, 13), D(2024, 2, 14)]
    assert read(tmp_path, "earnings_calendar", start="2024-02-14").num_rows == 1
    frame = read_frame(tmp_path, "earnings_calendar")
    assert str(frame["SnapshotDate"].dtype) == "datetime64[ns]" and frame["CoName"][0] == "くふうカンパニー"


def test_rows_a_neighbouring_unit_repeats_are_deduped_on_read(tmp_path: Path) -> None:
    fut = spec.get("futures")
    row: dict[str, Any] = {"Date": "2024-05-07", "Code": "169090005", "O": 1.0}
    lake = Lake(tmp_path)
    # a holiday-trading day (HolDiv 3) answers with rows dated the next weekday, which repeat there
    lake.write(fut, Unit.day(D(2024, 5, 6)), normalize.to_table(fut, [row]))
    lake.write(fut, Unit.day(D(2024, 5, 7)), normalize.to_table(fut, [row]))
    lake.flush()
    assert lake.manifest.get("futures", "d20240506").spills  # type: ignore[union-attr]
    assert read(tmp_path, "futures").num_rows == 1


def test_same_content_same_hash_whatever_the_write_order(tmp_path: Path) -> None:
    days = ["2024-01-04", "2024-01-05", "2024-01-09"]
    a, b = Lake(tmp_path / "a"), Lake(tmp_path / "b")
    for d in days:
        a.write(BARS, Unit.day(D.fromisoformat(d)), bars(d, ["72030", "13010"]))
    for d in reversed(days):
        b.write(BARS, Unit.day(D.fromisoformat(d)), bars(d, ["13010", "72030"]))
    a.flush()
    b.flush()
    assert manifest_hash(tmp_path / "a") == manifest_hash(tmp_path / "b")
    assert read(tmp_path / "a", "bars_daily").equals(read(tmp_path / "b", "bars_daily"))
    b.write(BARS, Unit.day(D(2024, 1, 9)), bars("2024-01-09", ["13010", "72030"], close=2.0))
    b.flush()
    assert manifest_hash(tmp_path / "a") != manifest_hash(tmp_path / "b")


def test_reader_errors_and_empty_reads(tmp_path: Path) -> None:
    assert read(tmp_path, "bars_daily").num_rows == 0
    with pytest.raises(KeyError, match="no column"):
        read(tmp_path, "bars_daily", columns=["Nope"])
    with pytest.raises(KeyError, match="known: calendar"):
        read(tmp_path, "prices")
    (tmp_path / "_manifest.json").write_text("{broken")
    with pytest.raises(ValueError, match="not a readable manifest"):
        Manifest.load(tmp_path)


def test_gap_and_chunk_arithmetic() -> None:
    assert gaps(D(2024, 1, 1), D(2024, 1, 31), []) == [(D(2024, 1, 1), D(2024, 1, 31))]
    assert gaps(D(2024, 1, 1), D(2024, 1, 31), [(D(2023, 1, 1), D(2024, 2, 1))]) == []
    assert gaps(D(2024, 1, 1), D(2024, 1, 31), [(D(2024, 1, 5), D(2024, 1, 9)), (D(2024, 1, 10), D(2024, 1, 12))]
                ) == [(D(2024, 1, 1), D(2024, 1, 4)), (D(2024, 1, 13), D(2024, 1, 31))]
    assert chunks(D(2024, 1, 1), D(2024, 1, 10), 4) == [
        (D(2024, 1, 1), D(2024, 1, 4)), (D(2024, 1, 5), D(2024, 1, 8)), (D(2024, 1, 9), D(2024, 1, 10))]
    assert Unit.parse("r20240101-20240110") == Unit.span(D(2024, 1, 1), D(2024, 1, 10))
    assert Unit.parse(Unit.snapshot(D(2024, 1, 1)).id).kind == "snapshot"


def test_content_hash_depends_on_rows_not_on_buffer_layout() -> None:
    from gpuetl.lake.canonical import content_hash

    # a slice of a string column keeps offsets that do not start at zero: the same rows, another layout
    full = pa.table({"s": pa.array(["aa", "b", "ccc", None, "ee"]), "x": pa.array([1.0, None, 3.0, 4.0, 5.0])})
    fresh = pa.table({"s": pa.array(["ccc", None]), "x": pa.array([3.0, 4.0])})
    assert full.slice(2, 2).equals(fresh)
    assert content_hash(full.slice(2, 2)) == content_hash(fresh)
    assert content_hash(full.slice(2, 2)) != content_hash(full.slice(1, 2))


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    from gpuetl.lake.outputs import OutputError

    busy = pytest.raises(OutputError, match="another gpuetl process is writing the lake")
    with Lake(tmp_path).exclusive(), busy, Lake(tmp_path).exclusive():
        pass
    with Lake(tmp_path).exclusive():  # released
        pass


def test_vacuum_removes_a_killed_writers_temporary_files(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.write(BARS, Unit.day(D(2024, 1, 5)), bars("2024-01-05", ["72030"]))
    lake.flush()
    stray = [tmp_path / "bars_daily/year=2024/month=01/.part-d20240108.parquet.x1.tmp",
             tmp_path / "._manifest.json.x2.tmp"]
    for f in stray:
        f.write_bytes(b"half")
    assert sorted(Lake(tmp_path).vacuum()) == sorted(f.relative_to(tmp_path).as_posix() for f in stray)
    assert read(tmp_path, "bars_daily").num_rows == 1
