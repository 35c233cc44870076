"""`gpuetl import`: files a user holds -> the raw lake, unit for unit as `fetch` writes it.

A lake fetched from the demo server is exported to each file layout users hold (per-code CSV with V1 names,
4-digit codes and YYYYMMDD dates; long gzipped CSV with V2 names; Parquet in several files), imported into new
lakes: every unit's content hash equals the fetched one's and a build of either lake gives the same dataset, bit
for bit. Then the calendar derived from the bars, reruns and interrupted imports, planted bad rows and unknown
columns, and bad inputs (one line, exit 2, nothing written)."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from gpuetl.commands import main
from gpuetl.dataset.registry import REGISTRY
from gpuetl.fetch.files.provenance import derived_units
from gpuetl.fetch.files.read import InputError
from gpuetl.fetch.files.rows import RowError
from gpuetl.fetch.files.run import import_files
from gpuetl.fetch.plan import plan_dataset
from gpuetl.jquants import spec
from gpuetl.lake import Lake, read
from gpuetl.lake.manifest import FILENAME as MANIFEST
from gpuetl.lake.units import business_days
from gpuetl.lake.verify import HOLE, verify
from tests.support.lakes import SMALL

DATASETS = ("calendar", "bars_daily", "topix", "master", "fins_summary")
START, END = "2023-11-01", "2024-03-29"  # five months: the SMALL warm-up (69 days) and a month written
PER_CODE = ("bars_daily", "master")


def sets(flag: str, values: list[str]) -> list[str]:
    return [a for v in values for a in (flag, v)]


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake fetched from the demo server (12 codes, five months), and its dataset built beside it."""
    root = tmp_path_factory.mktemp("fetched")
    assert main(["fetch", "--demo", "--set", "demo.codes=12", "--set", f"demo.start={START}", "--set",
                 f"demo.end={END}", "--datasets", ",".join(DATASETS), "--lake", str(root / "lake"), "--no-progress",
                 "--json"]) == 0
    build(root / "lake", root / "ds")
    return root / "lake"


def build(lake: Path, out: Path) -> None:
    assert main(["build", "--backend", "cpu", "--lake", str(lake), "--out", str(out), "--no-progress", "--json",
                 *sets("--config-set", SMALL)]) == 0


def units(lake: Path, dataset: str) -> dict[str, tuple[int, str, bool]]:
    """A dataset's units as the manifest records them: rows, content hash, final."""
    data = json.loads((lake / MANIFEST).read_text())["datasets"].get(dataset, {})
    return {uid: (r["rows"], r["hash"], r["final"]) for uid, r in data.items()}


def same_datasets(a: Path, b: Path, *, same_lake: bool = True) -> None:
    """Every Parquet file of two built datasets holds the same columns, bit for bit (and, with `same_lake`, the
    datasets record the same raw lake hash)."""
    files = sorted(p.relative_to(a) for p in (a / "data").rglob("*.parquet"))
    assert files and files == sorted(p.relative_to(b) for p in (b / "data").rglob("*.parquet"))
    for rel in files:
        x, y = pq.read_table(a / rel), pq.read_table(b / rel)
        assert x.schema == y.schema, rel
        for name in x.column_names:
            assert same_values(x.column(name), y.column(name)), (rel, name)
    meta = [json.loads((d / "metadata.json").read_text()) for d in (a, b)]
    assert (meta[0]["raw_manifest_hash"] == meta[1]["raw_manifest_hash"]) == same_lake


def same_values(x: pa.ChunkedArray, y: pa.ChunkedArray) -> bool:
    """Equal columns, bit for bit (NaN equal to NaN)."""
    x, y = x.combine_chunks(), y.combine_chunks()
    if pa.types.is_floating(x.type) and x.type == y.type:
        return x.is_null().equals(y.is_null()) and (
            x.to_numpy(zero_copy_only=False).tobytes() == y.to_numpy(zero_copy_only=False).tobytes())
    return x.equals(y)


# ---------------------------------------------------------------------------------------------- layouts


def v1_names(dataset: str, table: pa.Table) -> pa.Table:
    names = {f.name: f.v1 or f.name for f in spec.get(dataset).fields}
    return table.rename_columns([names[c] for c in table.column_names])


def yyyymmdd(table: pa.Table) -> pa.Table:
    """Every date column as YYYYMMDD text."""
    for i, field in enumerate(table.schema):
        if pa.types.is_date32(field.type):
            text = pc.strftime(pc.cast(table.column(i), pa.timestamp("s")), format="%Y%m%d")
            table = table.set_column(i, field.name, text)
    return table


def per_code_v1_csv(lake: Path, out: Path) -> dict[str, Path]:
    """Bars and master as one CSV per code named by its 4-character code, without a code column; the other datasets
    in one CSV each; V1 names and YYYYMMDD dates throughout."""
    paths = {}
    for name in DATASETS:
        table = yyyymmdd(read(lake, name))
        folder = out / name
        folder.mkdir(parents=True)
        if name in PER_CODE:
            for code in pc.unique(table.column("Code")).to_pylist():
                part = table.filter(pc.equal(table.column("Code"), code)).drop_columns(["Code"])
                pacsv.write_csv(v1_names(name, part), folder / f"{code[:4] if code.endswith('0') else code}.csv")
        else:
            pacsv.write_csv(v1_names(name, table), folder / f"{name}.csv")
        paths[name] = folder
    return paths


def long_v2_csv_gz(lake: Path, out: Path) -> dict[str, Path]:
    """One gzipped CSV per dataset, V2 names."""
    out.mkdir(parents=True)
    paths = {}
    for name in DATASETS:
        paths[name] = out / f"{name}.csv.gz"
        with pa.CompressedOutputStream(str(paths[name]), "gzip") as stream:
            pacsv.write_csv(read(lake, name), stream)
    return paths


def parquet_by_year(lake: Path, out: Path) -> dict[str, Path]:
    """Parquet files, one per dataset and year, V2 names and types (the official client's DataFrames saved)."""
    paths = {}
    for name in DATASETS:
        table = read(lake, name)
        folder = out / name
        folder.mkdir(parents=True)
        years = pc.year(table.column(spec.get(name).date_field or "Date"))
        for year in pc.unique(years).to_pylist():
            pq.write_table(table.filter(pc.equal(years, year)), folder / f"{name}-{year}.parquet")
        paths[name] = folder
    return paths


LAYOUTS: dict[str, Callable[[Path, Path], dict[str, Path]]] = {
    "per-code-v1-csv": per_code_v1_csv, "long-v2-csv-gz": long_v2_csv_gz, "parquet": parquet_by_year}


def import_all(paths: dict[str, Path], lake: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    """Import every dataset (the calendar first), the statements over the fetch's window; their JSON summaries."""
    out = {}
    for name in DATASETS:
        window = ["--start", START, "--end", END] if name == "fins_summary" else []
        capsys.readouterr()
        assert main(["import", "--dataset", name, "--lake", str(lake), *window, "--json", "--no-progress",
                     str(paths[name])]) == 0, capsys.readouterr().err
        out[name] = json.loads(capsys.readouterr().out)
    return out


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_an_exported_lake_imports_to_the_same_units_and_the_same_dataset(fetched: Path, tmp_path: Path, layout: str,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    paths = LAYOUTS[layout](fetched, tmp_path / "files")
    lake = tmp_path / "lake"
    summaries = import_all(paths, lake, capsys)
    for name in DATASETS:
        assert units(lake, name) == units(fetched, name), name
        s = summaries[name]
        assert s["units_written"] == len(units(fetched, name)) and s["units_already"] == 0
        assert s["bad_rows"] == {} and s["unknown_columns"] == {} and s["missing_days"] == 0, s
    assert summaries["bars_daily"]["derived_calendar"] is None  # the calendar was imported first
    assert verify(lake).bad == []
    assert json.loads((lake / ".gpuetl-output.json").read_text())["source"] == "jquants"
    # a fetch of the same window finds nothing to request
    store = Lake(lake)
    days = {k: business_days(read(lake, "calendar"), k) for k in ("equity", "derivatives")}
    today = dt.date.fromisoformat(END) + dt.timedelta(days=3)
    for name in DATASETS:
        plan = plan_dataset(spec.get(name), store, dt.date.fromisoformat(START), dt.date.fromisoformat(END), days,
                            today, 366)
        assert plan.units == (), name
    build(lake, tmp_path / "ds")
    same_datasets(fetched.parent / "ds", tmp_path / "ds")
    if layout != "per-code-v1-csv":
        return
    # the same import again writes nothing: every file as it was
    before = snapshot(lake)
    again = import_all(paths, lake, capsys)
    assert all(s["units_written"] == 0 and s["units_already"] == len(units(fetched, n)) for n, s in again.items())
    assert snapshot(lake) == before


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


# ---------------------------------------------------------------------------------------------- derived calendar


def test_bars_without_a_calendar_derive_one_that_builds_and_a_fetch_replaces(fetched: Path, tmp_path: Path) -> None:
    paths = parquet_by_year(fetched, tmp_path / "files")
    lake = tmp_path / "lake"
    summary = import_files("bars_daily", [str(paths["bars_daily"])], lake)
    assert units(lake, "bars_daily") == units(fetched, "bars_daily")
    derived = summary.derived_calendar
    assert derived is not None and derived.units == len(units(lake, "calendar")) and derived.start == START
    assert business_days(read(lake, "calendar"), "equity") == business_days(read(fetched, "calendar"), "equity")
    assert derived.open_days == len(business_days(read(fetched, "calendar"), "equity"))
    assert all(not final for _, _, final in units(lake, "calendar").values())  # a fetch asks for the real one
    assert derived_units(lake) == {"calendar": sorted(units(lake, "calendar"))}
    for name in ("topix", "master"):
        import_files(name, [str(paths[name])], lake)
    import_files("fins_summary", [str(paths["fins_summary"])], lake, start=dt.date.fromisoformat(START),
                 end=dt.date.fromisoformat(END))  # on the derived calendar's days
    assert units(lake, "fins_summary") == units(fetched, "fins_summary")
    assert verify(lake).bad == []
    build(lake, tmp_path / "ds")  # the build takes a derived calendar (here: the same open days, the same data)
    same_datasets(fetched.parent / "ds", tmp_path / "ds", same_lake=False)  # the calendars differ (HolDiv "3")
    before = snapshot(lake)
    again = import_files("bars_daily", [str(paths["bars_daily"])], lake)
    assert again.units_written == 0 and again.units_already == len(units(fetched, "bars_daily"))
    assert snapshot(lake) == before
    store = Lake(lake)
    days = {k: business_days(read(lake, "calendar"), k) for k in ("equity", "derivatives")}
    plan = plan_dataset(spec.get("calendar"), store, dt.date.fromisoformat(START), dt.date.fromisoformat(END), days,
                        dt.date(2025, 1, 6), 366)
    assert plan.units  # the derived calendar is fetched again, then replaced
    import_files("calendar", [str(paths["calendar"])], lake)  # ... as a calendar imported from a file replaces it
    assert units(lake, "calendar") == units(fetched, "calendar") and derived_units(lake) == {}


def test_more_bars_later_derive_the_calendar_again_from_every_bar(fetched: Path, tmp_path: Path) -> None:
    bars = read(fetched, "bars_daily")
    cut = pa.scalar(dt.date(2023, 12, 1), pa.date32())
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(bars.filter(pc.less(bars.column("Date"), cut)), first)
    pq.write_table(bars.filter(pc.greater_equal(bars.column("Date"), cut)), second)
    lake = tmp_path / "lake"
    import_files("bars_daily", [str(first)], lake)
    import_files("bars_daily", [str(second)], lake)
    assert units(lake, "bars_daily") == units(fetched, "bars_daily")
    assert business_days(read(lake, "calendar"), "equity") == business_days(read(fetched, "calendar"), "equity")
    assert verify(lake).bad == []


def test_prices_without_a_master_build_with_only_the_sector_features_missing(fetched: Path, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Prices only (bars and TOPIX imported, the calendar derived): the build runs; the features that read a sector
    are missing (NaN), every other column is that of the same lake with its master, bit for bit; a universe chosen
    by market segment is refused in one line."""
    paths = parquet_by_year(fetched, tmp_path / "files")
    for lake, names in (("prices", ("bars_daily", "topix")), ("with_master", ("bars_daily", "topix", "master"))):
        for name in names:
            import_files(name, [str(paths[name])], tmp_path / lake)
        assert main(["build", "--backend", "cpu", "--lake", str(tmp_path / lake), "--out", str(tmp_path / f"ds_{lake}"),
                     "--no-progress", "--json", *sets("--config-set", [*SMALL, "enrich.listing=false"])]) == 0
    op = REGISTRY.get("sector_relative")
    sector = set(op.outputs(op.params({"horizons": [1]})))
    differ = set()
    for rel in sorted(p.relative_to(tmp_path / "ds_prices") for p in (tmp_path / "ds_prices").rglob("*.parquet")):
        a, b = pq.read_table(tmp_path / "ds_prices" / rel), pq.read_table(tmp_path / "ds_with_master" / rel)
        assert a.schema == b.schema, rel
        differ |= {c for c in a.column_names if not same_values(a.column(c), b.column(c))}
        assert all(np.isnan(a.column(c).to_numpy(zero_copy_only=False)).all() for c in sector), rel  # missing, never
        # a made-up sector
    assert sector and differ == sector | {f"{c}_z" for c in sector} | {f"{c}_missing" for c in sector}
    capsys.readouterr()
    assert main(["build", "--backend", "cpu", "--lake", str(tmp_path / "prices"), "--out", str(tmp_path / "prime"),
                 "--no-progress", *sets("--config-set", [*SMALL, "universe=prime"])]) == 1
    err = capsys.readouterr().err
    assert "universe 'prime' selects codes by their market segment" in err and "has no master" in err
    assert err.count("\n") == 1 and not (tmp_path / "prime").exists()


# ---------------------------------------------------------------------------------------------- resuming


def test_an_interrupted_import_resumes_to_the_same_lake(fetched: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    paths = long_v2_csv_gz(fetched, tmp_path / "files")
    lake = tmp_path / "lake"
    import_files("calendar", [str(paths["calendar"])], lake)
    real = Lake.write
    calls = []

    def dies(self: Lake, *args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) > 40:
            raise KeyboardInterrupt  # as a user's Ctrl-C
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Lake, "write", dies)
    with pytest.raises(KeyboardInterrupt):
        import_files("bars_daily", [str(paths["bars_daily"])], lake)
    monkeypatch.setattr(Lake, "write", real)
    held = units(lake, "bars_daily")
    assert 0 < len(held) <= 40
    assert [b for b in verify(lake).bad if b.problem != HOLE] == []  # what was recorded is whole
    # what a killed process leaves: a unit's file written, never recorded
    stray = lake / "bars_daily" / "year=2024" / "month=03" / "part-d20240329.parquet"
    stray.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"x": [1]}), stray)
    summary = import_files("bars_daily", [str(paths["bars_daily"])], lake)
    assert summary.units_already == len(held) and summary.units_written == len(units(fetched, "bars_daily")) - len(held)
    assert units(lake, "bars_daily") == units(fetched, "bars_daily") and verify(lake).bad == []


# ---------------------------------------------------------------------------------------------- bad rows


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


HEADER = "Date,Code,Open,High,Low,Close,Volume,TurnoverValue,AdjustmentFactor,RowId,Target\n"


def test_bad_rows_and_unknown_columns_are_counted_and_reported(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    files = tmp_path / "files"
    write_csv(files / "a.csv", HEADER
              + "2024-01-04,7203,100,110,90,105,1000,105000,1,r1,0.1\n"
              + "2024-01-04,6758,200,210,190,abc,2000,410000,1,r2,0.2\n"  # an unparseable close
              + "2024-01-05,7203,0,0,0,0,0,0,1,r3,0.3\n"  # no trades, written as zeros
              + "2024-01-05,6758,201,\"2,150\",199,205,3000,615000,1,r4,0.4\n")  # a thousands separator
    write_csv(files / "b.csv", HEADER
              + "2024-01-04,7203,100,110,90,105,1000,105000,1,r1,0.1\n"  # the same row as in a.csv
              + "20240108,72030,102,112,92,107,1100,117700,1,r5,\n")
    lake = tmp_path / "lake"
    assert main(["import", "--dataset", "bars_daily", "--lake", str(lake), "--json", "--no-progress",
                 str(files)]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["bad_rows"] == {"unparseable": 1, "zero_price": 1, "duplicate": 1}
    assert s["unparseable"] == {"C": 1}
    assert s["unknown_columns"] == {"RowId": 2, "Target": 2}
    assert s["rows_read"] == 6 and s["rows"] == 5 and s["units_written"] == 3 and s["rows_written"] == 5
    assert s["derived_calendar"]["open_days"] == 3 and s["derived_calendar"]["closed_weekdays"] == 0
    rows = read(lake, "bars_daily", columns=["Date", "Code", "O", "H", "C", "Vo"]).to_pylist()
    assert {(r["Code"], r["Date"].isoformat()) for r in rows} == {
        ("72030", "2024-01-04"), ("67580", "2024-01-04"), ("72030", "2024-01-05"), ("67580", "2024-01-05"),
        ("72030", "2024-01-08")}
    bad = next(r for r in rows if r["Code"] == "67580" and r["Date"] == dt.date(2024, 1, 4))
    assert bad["C"] is None and bad["O"] == 200.0
    quiet = next(r for r in rows if r["Code"] == "72030" and r["Date"] == dt.date(2024, 1, 5))
    assert quiet["O"] is None and quiet["C"] is None and quiet["Vo"] == 0.0  # volume 0 is a value
    assert next(r for r in rows if r["Code"] == "67580" and r["Date"] == dt.date(2024, 1, 5))["H"] == 2150.0
    assert main(["import", "--dataset", "bars_daily", "--lake", str(lake), "--no-progress", str(files)]) == 0
    table = capsys.readouterr().out
    for text in ("unparseable", "C 1", "zero_price", "duplicate", "unknown columns", "RowId, Target",
                 "units already there", "derived calendar"):
        assert text in table, table


def test_a_unit_the_lake_holds_with_other_rows_is_kept_and_listed(tmp_path: Path) -> None:
    first = write_csv(tmp_path / "a" / "7203.csv", "Date,Close\n2024-01-04,100\n2024-01-05,101\n")
    lake = tmp_path / "lake"
    import_files("bars_daily", [str(first)], lake)
    before = snapshot(lake)
    changed = write_csv(tmp_path / "b" / "7203.csv", "Date,Close\n2024-01-04,100\n2024-01-05,102\n")
    summary = import_files("bars_daily", [str(changed)], lake, today=dt.date(2025, 1, 6))
    assert summary.units_differ == ["d20240105"] and summary.units_already == 1 and summary.units_written == 0
    assert snapshot(lake) == before


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], code: int, *expect: str) -> None:
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"gpuetl {argv[0]}: "), err
    assert all(e in err for e in expect), err


def test_rows_that_cannot_be_placed_are_refused_in_one_line_with_nothing_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    imp = ["import", "--dataset", "bars_daily", "--lake", str(lake), "--no-progress"]
    conflict = write_csv(tmp_path / "c" / "a.csv", HEADER + "2024-01-04,7203,100,110,90,105,1000,1,1,,\n")
    write_csv(tmp_path / "c" / "b.csv", HEADER + "2024-01-04,7203,100,110,90,106,1000,1,1,,\n")
    refused(capsys, [*imp, str(conflict.parent)], 1, "two different rows for Date 2024-01-04, Code 72030",
            str(conflict), "differ in C")
    bad_date = write_csv(tmp_path / "d.csv", HEADER + "2024-01-04,7203,1,1,1,1,1,1,1,,\n"
                                                      "2024-02-30,7203,1,1,1,1,1,1,1,,\n")
    refused(capsys, [*imp, str(bad_date)], 1, f"{bad_date}: data row 2: Date '2024-02-30' is not a date")
    no_code = write_csv(tmp_path / "e.csv", HEADER + "2024-01-04,,1,1,1,1,1,1,1,,\n")
    refused(capsys, [*imp, str(no_code)], 1, "data row 1: Code is empty")
    weekend = write_csv(tmp_path / "f.csv", HEADER + "2024-01-05,7203,1,1,1,1,1,1,1,,\n"
                                                     "2024-01-06,7203,1,1,1,1,1,1,1,,\n")
    refused(capsys, [*imp, str(weekend)], 1, "has rows on 2024-01-06, a day the trading calendar says is closed")
    assert not lake.exists()


def test_statements_on_a_closed_day_are_kept_and_rows_outside_the_window_counted(
        fetched: Path, tmp_path: Path) -> None:
    paths = parquet_by_year(fetched, tmp_path / "files")
    lake = tmp_path / "lake"
    import_files("calendar", [str(paths["calendar"])], lake)
    fins = read(fetched, "fins_summary").slice(0, 3)
    sunday = fins.slice(0, 1).set_column(0, "DiscDate", pa.array([dt.date(2023, 12, 3)], pa.date32()))
    sunday = sunday.set_column(3, "DiscNo", pa.array(["sunday-1"]))
    path = tmp_path / "fins.parquet"
    pq.write_table(pa.concat_tables([fins, sunday]), path)
    summary = import_files("fins_summary", [str(path)], lake, start=dt.date(2023, 12, 1), end=dt.date(2024, 3, 29))
    assert summary.bad_rows.get("closed_day") == 1
    assert summary.bad_rows.get("outside_window", 0) == sum(1 for d in fins.column("DiscDate").to_pylist()
                                                            if d < dt.date(2023, 12, 1))
    assert units(lake, "fins_summary")["d20231203"][0] == 1


def test_a_kaggle_jpx_export_imports_with_its_names_and_four_digit_codes(tmp_path: Path) -> None:
    kaggle = write_csv(tmp_path / "stock_prices.csv",
                       "RowId,Date,SecuritiesCode,Open,High,Low,Close,Volume,AdjustmentFactor,ExpectedDividend,"
                       "SupervisionFlag,Target\n"
                       "20170104_1301,2017-01-04,1301,2734.0,2755.0,2730.0,2742.0,31400,1.0,,False,0.0007\n"
                       "20170104_1332,2017-01-04,1332,568.0,576.0,563.0,571.0,2798500,1.0,,False,0.0125\n"
                       "20170105_1301,2017-01-05,1301,2743.0,2747.0,2735.0,2738.0,17900,1.0,,False,0.0028\n"
                       "20170105_1332,2017-01-05,1332,,,,,0,1.0,,False,\n")
    summary = import_files("bars_daily", [str(kaggle)], tmp_path / "lake")
    assert summary.unknown_columns == {"ExpectedDividend": 1, "RowId": 1, "SupervisionFlag": 1, "Target": 1}
    assert summary.bad_rows == {} and summary.units_written == 2
    rows = read(tmp_path / "lake", "bars_daily", columns=["Date", "Code", "C", "Vo", "AdjFactor"]).to_pylist()
    assert [(r["Date"].isoformat(), r["Code"]) for r in rows] == [
        ("2017-01-04", "13010"), ("2017-01-04", "13320"), ("2017-01-05", "13010"), ("2017-01-05", "13320")]
    assert rows[3]["C"] is None and rows[3]["Vo"] == 0.0 and rows[0]["AdjFactor"] == 1.0


def test_columns_maps_names_the_import_does_not_know(tmp_path: Path) -> None:
    odd = write_csv(tmp_path / "prices.csv", "day,ticker,o,h,l,close_price,qty\n2024-01-04,7203,1,2,0.5,1.5,10\n")
    summary = import_files("bars_daily", [str(odd)], tmp_path / "lake",
                           mappings=["Date=day", "Code=ticker", "Close=close_price", "Vo=qty"])
    assert summary.unknown_columns == {}  # o, h, l match O, H, L by themselves
    row = read(tmp_path / "lake", "bars_daily", columns=["Code", "O", "H", "L", "C", "Vo"]).to_pylist()[0]
    assert row == {"Code": "72030", "O": 1.0, "H": 2.0, "L": 0.5, "C": 1.5, "Vo": 10.0}


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_input_is_one_line_exit_2_before_anything_is_written(fetched: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    good = write_csv(tmp_path / "in" / "7203.csv", "Date,Open,Close\n2024-01-04,1,2\n")
    imp = ["import", "--dataset", "bars_daily", "--lake", str(lake), "--no-progress"]
    refused(capsys, [*imp, str(tmp_path / "nope.csv")], 2, "nope.csv: no such file or folder")
    refused(capsys, [*imp, str(tmp_path / "in" / "*.parquet")], 2, "no .csv, .csv.gz, .parquet, .pq file matches")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    refused(capsys, [*imp, str(broken)], 2, f"{broken}: cannot be read")
    refused(capsys, [*imp, str(write_csv(tmp_path / "n.csv", "Code,Close\n7203,1\n"))], 2,
            "n.csv: no date column (Date)", "--columns Date=COLUMN")
    refused(capsys, [*imp, str(write_csv(tmp_path / "prices.csv", "Date,Close\n2024-01-04,1\n"))], 2,
            "no code column", "the file name is not a code")
    refused(capsys, [*imp, str(write_csv(tmp_path / "g.gz.csv", ""))], 2, "has no header line")
    refused(capsys, ["import", "--dataset", "prices", "--lake", str(lake), str(good)], 2,
            "unknown dataset 'prices'; importable: calendar, bars_daily")
    refused(capsys, ["import", "--dataset", "indices", "--lake", str(lake), str(good)], 2,
            "indices cannot be imported (yet)")
    refused(capsys, [*imp, "--columns", "Price=Close", str(good)], 2, "bars_daily has no field 'Price'")
    refused(capsys, [*imp, "--columns", "C=close_price", str(good)], 2, "'close_price', which no input file has")
    refused(capsys, [*imp, "--start", "2024-13-01", str(good)], 2, "--start '2024-13-01' is not a date")
    both = write_csv(tmp_path / "both.csv", "Date,Code,Close,C\n2024-01-04,7203,1,1\n")
    refused(capsys, [*imp, str(both)], 2, "columns 'Close' and 'C' both name bars_daily.C")
    master = write_csv(tmp_path / "m.csv", "Date,Code,CompanyName\n2024-01-04,7203,Toyota\n")
    refused(capsys, ["import", "--dataset", "master", "--lake", str(lake), str(master)], 2,
            "master needs the lake's trading calendar over 2024-01-04 .. 2024-01-04", "has none")
    refused(capsys, ["import", "--dataset", "bars_daily", "--lake", str(fetched), str(good)], 2,
            "holds a lake of a synthetic market")  # imported data is J-Quants' data: never mixed into a synthetic lake
    assert not lake.exists()


@pytest.mark.parametrize("where", ["the input folder", "inside it", "above it", "the input file", "a file"])
def test_the_lake_is_never_an_input_above_or_inside_one(tmp_path: Path, where: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    files = tmp_path / "data" / "files"
    write_csv(files / "7203.csv", "Date,Open,Close\n2024-01-04,1,2\n")
    (tmp_path / "data" / "note.txt").write_text("mine")
    lake = {"the input folder": files, "inside it": files / "lake", "above it": tmp_path / "data",
            "the input file": files / "7203.csv", "a file": tmp_path / "data" / "note.txt"}[where]
    before = snapshot(tmp_path)
    refused(capsys, ["import", "--dataset", "bars_daily", "--lake", str(lake), "--no-progress", str(files)], 2,
            f"--lake {lake}")
    assert snapshot(tmp_path) == before


def test_gzip_csv_and_encodings(tmp_path: Path) -> None:
    path = tmp_path / "72030.csv.gz"
    with gzip.open(path, "wt", encoding="cp932") as fh:
        fh.write("日付,Date,Close\n,2024-01-04,3\n")
    summary = import_files("bars_daily", [str(path)], tmp_path / "lake", encoding="cp932")
    assert summary.unknown_columns == {"日付": 1} and summary.units_written == 1
    assert read(tmp_path / "lake", "bars_daily", columns=["Code", "C"]).to_pylist() == [{"Code": "72030", "C": 3.0}]
    with pytest.raises(InputError, match="cannot be read"):
        import_files("bars_daily", [str(path)], tmp_path / "lake2")  # cp932 is not UTF-8
    assert not (tmp_path / "lake2").exists()
    assert np.isscalar(summary.seconds)
    with pytest.raises(RowError):
        import_files("bars_daily", [str(write_csv(tmp_path / "x" / "7203.csv", "Date,Close\nsoon,1\n"))],
                     tmp_path / "lake3")
