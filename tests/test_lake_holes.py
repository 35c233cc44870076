"""A lake with a hole never builds (issue 24): `lake verify` and the build check every `date` dataset's units against
the lake's trading calendar; `lake verify --repair` and `fetch --verify` fetch bad units again while the manifest
still records them, so a repair that fails changes nothing; a truncated manifest is rebuilt from the unit files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gpuetl.commands import main
from gpuetl.fetch.plan import plan_dataset
from gpuetl.jquants import env, normalize, spec
from gpuetl.lake import Lake, Manifest, Unit
from gpuetl.lake.manifest import ManifestError
from gpuetl.lake.verify import EMPTY, HOLE, NO_CALENDAR, holes, rebuild_manifest, require_no_holes, verify

BARS, CAL = spec.get("bars_daily"), spec.get("calendar")
DEMO = ["--backend", "cpu", "--set", "demo.codes=4", "--set", "demo.start=2024-01-04", "--set", "demo.end=2024-03-29"]
BUILD = ["--config-set", "features=[{op: returns, params: {horizons: [1, 5]}}]",
         "--config-set", "normalize.ts_min_periods=5"]  # a warm-up of 5 business days
FAIL = ["--set", "demo.faults.error_rate=1.0", "--set", "jquants.max_retries=0"]  # every data request: 500
HOLE_DAY = "2024-02-14"


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo lake (calendar, master, daily bars, TOPIX; January to March 2024), copied by each test."""
    data = tmp_path_factory.mktemp("fetched")
    assert main(["fetch", "--demo", *DEMO, "--set", f"paths.data={data}", "--datasets",
                 "calendar,master,bars_daily,topix", "--no-progress", "--json"]) == 0
    return data / "demo" / "raw"


@pytest.fixture
def demo(fetched: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """This test's copy of the demo lake, and the settings that make it the demo lake."""
    shutil.copytree(fetched, tmp_path / "data" / "demo" / "raw")
    return tmp_path / "data" / "demo" / "raw", [*DEMO, "--set", f"paths.data={tmp_path / 'data'}"]


def unit_id(day: str) -> str:
    return Unit.day(dt.date.fromisoformat(day)).id


def punch(lake: Path, day: str = HOLE_DAY) -> None:
    """Drop a day's bars from the manifest, as the old `lake verify --repair` did before a refetch that failed."""
    lk = Lake(lake)
    with lk.exclusive():
        lk.forget("bars_daily", unit_id(day))
        lk.flush()


def bars_file(lake: Path, day: str) -> Path:
    d = dt.date.fromisoformat(day)
    return lake / f"bars_daily/year={d.year}/month={d.month:02d}/part-{unit_id(day)}.parquet"


def verify_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code = main(["lake", "verify", *argv, "--json", "--no-progress"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def build(capsys: pytest.CaptureFixture[str], lake: Path, out: Path, settings: list[str],
          *extra: str) -> tuple[int, str]:
    code = main(["build", *settings, *BUILD, *extra, "--lake", str(lake), "--out", str(out), "--no-progress"])
    return code, capsys.readouterr().err


def test_a_missing_open_day_fails_verify_and_build(demo: tuple[Path, list[str]], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    lake, s = demo
    punch(lake)
    capsys.readouterr()
    code, report, err = verify_json(capsys, *s, "--demo")
    assert code == 1 and report["bad"] == [{"dataset": "bars_daily", "unit": "d20240214", "problem": HOLE}]
    assert f"gpuetl lake verify --repair --lake {lake}" in err and report["notes"] == []

    code, err = build(capsys, lake, tmp_path / "ds", s, "--config-set", "start=2024-02-01")
    assert code == 1 and err.count("\n") == 1 and not (tmp_path / "ds").exists()
    assert err == (f"gpuetl build: the lake at {lake} has no bars_daily for 1 open trading day(s) between its units: "
                   f"{HOLE_DAY}; a build would join the days around them; fetch them with "
                   f"`gpuetl lake verify --repair --lake {lake}`\n")

    # a hole before the days a build reads (its start less the warm-up) does not block it
    code, err = build(capsys, lake, tmp_path / "later", s, "--config-set", "start=2024-03-01")
    assert code == 0, err


def test_the_build_names_the_first_three_missing_days(demo: tuple[Path, list[str]]) -> None:
    lake, _ = demo
    for day in ("2024-01-10", "2024-01-11", "2024-01-12", "2024-01-15", "2024-01-16"):
        punch(lake, day)
    with pytest.raises(ValueError, match=r"no bars_daily for 5 open trading day\(s\) between its units: 2024-01-10, "
                                         r"2024-01-11, 2024-01-12 and 2 more;"):
        require_no_holes(Manifest.load(lake), ["bars_daily", "topix"], None, None, ValueError)
    require_no_holes(Manifest.load(lake), ["bars_daily"], "2024-01-17", None, ValueError)  # outside the window
    require_no_holes(Manifest.load(lake), ["topix", "calendar"], None, None, ValueError)  # range datasets


def test_a_failed_repair_changes_nothing(demo: tuple[Path, list[str]], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    lake, s = demo
    punch(lake)
    bad = bars_file(lake, "2024-02-15")
    bad.write_bytes(bad.read_bytes()[:300])  # and a truncated file
    truncated = bad.read_bytes()
    before = (lake / "_manifest.json").read_bytes()
    capsys.readouterr()

    code, report, err = verify_json(capsys, *s, "--demo", "--repair", *FAIL)  # the demo server answers 500
    assert code == 1 and report["repaired"] == [] and report["remaining"] == 2 and "500" in report["error"]
    assert "the repair fetch failed" in err and f"`gpuetl lake verify --repair --lake {lake}` again" in err
    assert (lake / "_manifest.json").read_bytes() == before and bad.read_bytes() == truncated
    code, report, _ = verify_json(capsys, *s, "--demo")
    assert code == 1 and [b["unit"] for b in report["bad"]] == ["d20240215", "d20240214"]
    assert build(capsys, lake, tmp_path / "ds", s, "--config-set", "start=2024-02-01")[0] == 1


def test_a_repair_without_credentials_changes_nothing(demo: tuple[Path, list[str]], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"  # not the demo lake: repaired from the J-Quants API, which needs a key
    shutil.copytree(demo[0], lake)
    punch(lake)
    before = (lake / "_manifest.json").read_bytes()
    monkeypatch.delenv(env.API_KEY, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./.env
    capsys.readouterr()
    code, report, err = verify_json(capsys, *demo[1], "--lake", str(lake), "--repair")
    assert code == 1 and "JQUANTS_API_KEY" in report["error"] and report["remaining"] == 1
    assert f"`gpuetl lake verify --repair --lake {lake}` again" in err
    assert (lake / "_manifest.json").read_bytes() == before
    assert [b.unit for b in verify(lake).bad] == ["d20240214"]


def test_a_repair_fills_the_hole_replaces_bad_files_and_the_build_succeeds(
        demo: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake, s = demo
    clean = Manifest.load(lake).digest()
    good = {f: pq.read_table(lake / f) for f in Manifest.load(lake).files("bars_daily")}
    punch(lake)
    bad = bars_file(lake, "2024-02-15")
    bad.write_bytes(bad.read_bytes()[:300])
    # a unit that claims a file of another month: its refetch writes one file, and the stale one goes at the flush
    stale = lake / "bars_daily/year=2024/month=03/part-d20240216.parquet"
    shutil.copy(bars_file(lake, "2024-02-19"), stale)  # other rows: the unit no longer hashes
    data = json.loads((lake / "_manifest.json").read_text())
    rec = data["datasets"]["bars_daily"]["d20240216"]
    rec["files"].append(stale.relative_to(lake).as_posix())
    (lake / "_manifest.json").write_text(json.dumps(data))
    capsys.readouterr()

    code, report, _ = verify_json(capsys, *s, "--demo", "--repair")
    assert code == 0 and report["remaining"] == 0
    assert sorted(report["repaired"]) == ["bars_daily/d20240214", "bars_daily/d20240215", "bars_daily/d20240216"]
    assert Manifest.load(lake).digest() == clean and not stale.exists() and verify(lake).bad == []
    assert all(pq.read_table(lake / f).equals(t) for f, t in good.items())

    code, err = build(capsys, lake, tmp_path / "ds", s, "--config-set", "start=2024-02-01")
    assert code == 0, err
    dates = pq.read_table(tmp_path / "ds" / "data", columns=["Date"]).column("Date").to_pylist()
    assert dt.date.fromisoformat(HOLE_DAY) in {d.date() if isinstance(d, dt.datetime) else d for d in dates}


def test_fetch_verify_with_a_failing_server_changes_nothing(demo: tuple[Path, list[str]],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    lake, s = demo
    punch(lake)
    bad = bars_file(lake, "2024-02-15")
    bad.write_bytes(bad.read_bytes()[:300])
    before = (lake / "_manifest.json").read_bytes()
    code = main(["fetch", "--demo", *s, *FAIL, "--datasets", "bars_daily", "--verify", "--no-progress", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1 and sorted(summary["refetched"]) == ["bars_daily/d20240214", "bars_daily/d20240215"]
    assert (lake / "_manifest.json").read_bytes() == before
    assert sorted(b.unit for b in verify(lake).bad) == ["d20240214", "d20240215"]

    code = main(["fetch", "--demo", *s, "--datasets", "bars_daily", "--verify", "--no-progress", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["requests"] == 2 and verify(lake).bad == []


def test_a_truncated_manifest_is_named_and_rebuilt(demo: tuple[Path, list[str]], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    lake, s = demo
    original = Manifest.load(lake)
    text = (lake / "_manifest.json").read_bytes()
    (lake / "_manifest.json").write_bytes(text[: len(text) // 2])
    fix = f"rebuild it from the lake's files with `gpuetl lake verify --repair --lake {lake}`"
    capsys.readouterr()

    assert main(["lake", "verify", *s, "--demo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"gpuetl lake: {lake / '_manifest.json'} is not a readable manifest (") and fix in err
    assert err.count("\n") == 1
    assert build(capsys, lake, tmp_path / "ds", s)[1].count(fix) == 1
    assert main(["fetch", "--demo", *s, "--datasets", "bars_daily", "--no-progress"]) != 0
    assert fix in capsys.readouterr().err

    code, report, _ = verify_json(capsys, *s, "--demo", "--repair")
    files = sum(len(original.files(n)) for n in original.datasets())
    assert code == 0 and report["rebuilt"]["files"] == files and report["rebuilt"]["left_out"] == []
    assert f"rebuilt the manifest from {files} unit files" in report["rebuilt"]["message"]
    assert (lake / "_manifest.json.bad").read_bytes() == text[: len(text) // 2]  # never deleted
    rebuilt = Manifest.load(lake)
    for name in original.datasets():
        assert rebuilt.units(name).keys() == original.units(name).keys()
        for uid, rec in original.units(name).items():
            new = rebuilt.get(name, uid)
            assert new is not None and dataclasses.replace(new, fetched_at="", final=True) == dataclasses.replace(
                rec, fetched_at="", final=True)
            # a range of several months may be one a killed writer left half written: asked for again
            months = {f.rsplit("/", 1)[0] for f in rec.files}
            assert new.final == (rec.final and not (uid.startswith("r") and len(months) > 1))
    assert not rebuilt.get("calendar", "r20240104-20240329").final  # three months

    assert main(["fetch", "--demo", *s, "--datasets", "calendar,topix", "--no-progress"]) == 0
    assert Manifest.load(lake).digest() == original.digest()


def test_rebuild_leaves_out_unreadable_units_and_keeps_every_bad_manifest(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    for day in (dt.date(2024, 1, 4), dt.date(2024, 1, 5)):
        lake.write(BARS, Unit.day(day),
                   normalize.to_table(BARS, [{"Date": day.isoformat(), "Code": "72030", "C": 1.0}]))
    lake.write(BARS, Unit.day(dt.date(2024, 1, 9)), normalize.to_table(BARS, []))  # no rows: no files
    lake.flush()
    original = Manifest.load(tmp_path)
    part = tmp_path / "bars_daily/year=2024/month=01/part-d20240105.parquet"
    part.write_bytes(b"not parquet")
    (tmp_path / "_manifest.json").write_text("{")
    with pytest.raises(ManifestError, match="is not a readable manifest"):
        Manifest.load(tmp_path)
    done = rebuild_manifest(tmp_path, dt.date(2024, 1, 5))
    assert done is not None and (done.units, done.files) == (1, 1) and done.kept.endswith("_manifest.json.bad")
    assert [x.split(":")[0] for x in done.left_out] == ["bars_daily/year=2024/month=01/part-d20240105.parquet"]
    rebuilt = Manifest.load(tmp_path)
    assert list(rebuilt.units("bars_daily")) == ["d20240104"]
    assert rebuilt.get("bars_daily", "d20240104") == dataclasses.replace(
        original.get("bars_daily", "d20240104"), fetched_at=rebuilt.units("bars_daily")["d20240104"].fetched_at)
    assert rebuild_manifest(tmp_path) is None  # it reads now: nothing to do

    (tmp_path / "_manifest.json").write_text('{"format": 1, "datasets": {"bars_daily": {"d20240104": 7}}}')
    done = rebuild_manifest(tmp_path, dt.date(2024, 1, 4))  # a malformed record; today: not final yet
    assert done is not None and done.kept.endswith("_manifest.json.bad2") and (tmp_path / "_manifest.json.bad").exists()
    rec = Manifest.load(tmp_path).get("bars_daily", "d20240104")
    assert rec is not None and not rec.final


def calendar_lake(root: Path, days: list[str], holidays: tuple[str, ...] = ()) -> Lake:
    """Bars on `days` (one unit each; "-" before a day: recorded with no rows), a calendar open on weekdays except
    `holidays`, January 2024."""
    lake = Lake(root)
    cal = [{"Date": f"2024-01-{d:02d}", "HolDiv": "0" if dt.date(2024, 1, d).weekday() >= 5
            or f"2024-01-{d:02d}" in holidays else "1"} for d in range(1, 32)]
    lake.write(CAL, Unit.span(dt.date(2024, 1, 1), dt.date(2024, 1, 31)), normalize.to_table(CAL, cal))
    for day in days:
        empty = day.startswith("-")
        d = dt.date.fromisoformat(day.lstrip("-"))
        rows = [] if empty else [{"Date": d.isoformat(), "Code": "72030", "C": 1.0}]
        lake.write(BARS, Unit.day(d), normalize.to_table(BARS, rows), final=not empty)
    lake.flush()
    return lake


def test_holes_are_open_days_between_units(tmp_path: Path) -> None:
    lake = calendar_lake(tmp_path, ["2024-01-04", "2024-01-05", "-2024-01-09", "2024-01-11", "2024-01-12",
                                    "-2024-01-15"], holidays=("2024-01-08",))
    found, notes = holes(lake.manifest)
    # 01-08 is a holiday, 01-09 has no rows (bars have rows every open day), 01-10 has no unit; 01-15 is the last
    # unit, with no rows yet: not between units
    assert [(b.unit, b.problem) for b in found] == [("d20240109", EMPTY), ("d20240110", HOLE)] and notes == []
    assert holes(lake.manifest, start=dt.date(2024, 1, 10))[0] == [found[1]]
    assert holes(lake.manifest, ["topix"]) == ([], [])
    report = verify(tmp_path)
    assert [b.unit for b in report.bad] == ["d20240109", "d20240110"]


def test_a_lake_without_a_calendar_is_not_checked_for_holes(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    for day in (dt.date(2024, 1, 4), dt.date(2024, 1, 10)):
        lake.write(BARS, Unit.day(day), normalize.to_table(BARS, [{"Date": day.isoformat(), "Code": "72030"}]))
    lake.flush()
    report = verify(tmp_path)
    assert report.bad == [] and report.notes == [NO_CALENDAR]
    require_no_holes(lake.manifest, ["bars_daily"], None, None, ValueError)


def test_a_repair_plan_asks_for_recorded_units_again(tmp_path: Path) -> None:
    lake = calendar_lake(tmp_path, ["2024-01-04", "2024-01-05"])
    days = {"equity": [dt.date(2024, 1, 4), dt.date(2024, 1, 5)], "derivatives": []}
    window = (dt.date(2024, 1, 4), dt.date(2024, 1, 5))
    today = dt.date(2024, 2, 1)
    assert plan_dataset(BARS, lake, *window, days, today, 366).units == ()
    plan = plan_dataset(BARS, lake, *window, days, today, 366, {"d20240105"})
    assert [u.id for u in plan.units] == ["d20240105"] and plan.complete == 1
    cal = plan_dataset(CAL, lake, *window, days, today, 366, {"r20240101-20240131"})
    assert [u.id for u in cal.units] == ["r20240101-20240131"] and cal.complete == 0
    earnings = spec.get("earnings_calendar")  # a past snapshot cannot be fetched again; today's is
    assert [u.id for u in plan_dataset(earnings, lake, *window, days, today, 366, {"s20240105"}).units] == ["s20240201"]


def test_the_outage_day_is_no_hole_for_the_data_the_api_has_none_of(tmp_path: Path) -> None:
    """2020-10-01 (the arrowhead outage) is an open day without trading: the API returns daily bars (null prices)
    but no short-selling data. Fetched from the demo server, the empty short_ratio unit is final and no hole; an
    empty daily-bars unit that day is one, and so is a short_ratio day never fetched."""
    days = ["--set", "demo.codes=4", "--set", "demo.start=2020-09-01", "--set", "demo.end=2020-10-30"]
    lake = tmp_path / "lake"
    assert main(["fetch", "--demo", "--backend", "cpu", *days, "--start", "2020-09-28", "--end", "2020-10-06",
                 "--datasets", "calendar,bars_daily,short_ratio", "--lake", str(lake), "--no-progress",
                 "--json"]) == 0
    outage = Manifest.load(lake).get("short_ratio", unit_id("2020-10-01"))
    assert outage is not None and outage.rows == 0 and outage.final  # not asked for again by the next fetch
    assert Manifest.load(lake).get("bars_daily", unit_id("2020-10-01")).rows > 0
    assert verify(lake).bad == []
    require_no_holes(Manifest.load(lake), ["bars_daily", "short_ratio"], "2020-09-28", "2020-10-06", ValueError)
    lk = Lake(lake)
    with lk.exclusive():
        lk.forget("short_ratio", unit_id("2020-10-01"))
        lk.write(BARS, Unit.day(dt.date(2020, 10, 1)), normalize.to_table(BARS, []), final=False)
        lk.flush()
    found = {(b.dataset, b.unit, b.problem) for b in holes(Manifest.load(lake))[0]}
    assert found == {("bars_daily", "d20201001", EMPTY), ("short_ratio", "d20201001", HOLE)}
