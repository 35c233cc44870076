"""The fetch pipeline against the real fake J-Quants server (gpuetl.fake) over the tiny market.

Server and client share one clock running 60x faster than the wall, so a "minute" of pacing takes a
second and the server's request log measures the plan limit in the same time the client paces in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from gpuetl.config import Settings, load_settings
from gpuetl.fake import FakeOptions, FakeServer, Faults
from gpuetl.fetch.pipeline import FetchError, FetchInputError, FetchSummary, fetch
from gpuetl.jquants import schema, spec
from gpuetl.jquants.env import Credentials
from gpuetl.jquants.errors import PlanError
from gpuetl.jquants.normalize import to_json
from gpuetl.jquants.ratelimit import ScaledClock
from gpuetl.lake import Manifest, manifest_hash, read
from gpuetl.lake.canonical import dedupe_sorted, sort
from tests.support.fake import market

START, END = dt.date(2024, 1, 4), dt.date(2024, 1, 31)
ALL = tuple(spec.datasets())
CREDS = Credentials(api_key="demo", mail="demo@example.com", password="demo")


def settings(*overrides: str) -> Settings:
    return load_settings(overrides=["jquants.cooldown_s=60", *overrides])


@contextlib.asynccontextmanager
async def fake(clock: ScaledClock, **options: Any) -> AsyncIterator[FakeServer]:
    opts = FakeOptions(**{"plan": "premium", "page_size": 50, **options})
    async with FakeServer(market(), opts, clock=clock.monotonic, sleep=clock.sleep) as server:
        yield server


async def run(server: FakeServer, lake: Path, clock: ScaledClock, datasets: Sequence[str] = ALL,
              cfg: Settings | None = None, **kw: Any) -> FetchSummary:
    kw = {"plan": server.options.plan, "credentials": CREDS, **kw}
    return await fetch(cfg or settings(), START, END, list(datasets), lake, server.url, kw.pop("plan"),
                       progress=False, clock=clock, today=server.state.today, **kw)


@pytest.fixture(scope="module")
def clean_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fault-free fetch of every dataset, shared read-only by the tests that compare lakes."""
    lake = tmp_path_factory.mktemp("clean")

    async def go() -> None:
        clock = ScaledClock(60)
        async with fake(clock) as server:
            await run(server, lake, clock)

    asyncio.run(go())
    return lake


def expected(name: str) -> pa.Table:
    """The market's rows of `name` in [START, END], in the lake's canonical order."""
    ds = spec.get(name)
    t = schema.to_table(ds, market().tables[name])
    for f in ds.fields:  # objects are stored as canonical JSON text (sorted keys, compact)
        if f.kind == "json":
            i = t.schema.get_field_index(f.name)
            t = t.set_column(i, f.name, pa.array([to_json(v) for v in t.column(i).to_pylist()], pa.string()))
    if ds.date_field and ds.fetch != "latest":
        d = t.column(ds.date_field)
        t = t.filter(pc.and_(pc.greater_equal(d, pa.scalar(START)), pc.less_equal(d, pa.scalar(END))))
    return dedupe_sorted(sort(t, ds.date_field))


def landed(lake: Path, name: str) -> pa.Table:
    t = read(lake, name)
    ds = spec.get(name)
    if ds.fetch == "latest":
        return dedupe_sorted(sort(t.drop_columns(["SnapshotDate"]), None))
    return t


def assert_same_lake(a: Path, b: Path, datasets: Sequence[str] = ALL) -> None:
    for name in datasets:
        assert read(a, name).equals(read(b, name)), name
    assert manifest_hash(a) == manifest_hash(b)


async def test_every_dataset_round_trips(tmp_path: Path) -> None:
    clock = ScaledClock(60)
    async with fake(clock, extra_keys=True) as server:  # undocumented keys (ExRT, MktCap, ProdCat) are ignored
        summary = await run(server, tmp_path, clock)
        served = {n: sum(r.rows for r in server.log.data_requests(n, statuses={200})) for n in ALL}
        dates = {r.query.get("date") for r in server.log.data_requests("bars_daily")}
    for name in ALL:
        got = landed(tmp_path, name)
        assert served[name] == summary.datasets[name].rows == read(tmp_path, name).num_rows, name
        assert got.equals(expected(name)), name
    # one request per business day, never per calendar day or per code
    assert dates == {d.isoformat() for d in market().business_days if START <= d <= END}
    assert summary.requests == summary.data_requests and summary.rate_limited == 0


async def test_pagination_is_followed_to_the_end(tmp_path: Path) -> None:
    clock = ScaledClock(60)
    async with fake(clock, page_size=2) as server:
        summary = await run(server, tmp_path, clock, ["bars_daily", "master"])
        paged = [r for r in server.log.data_requests("bars_daily") if "pagination_key" in r.query]
    assert paged and summary.datasets["bars_daily"].requests > summary.datasets["bars_daily"].units
    assert read(tmp_path, "bars_daily").equals(expected("bars_daily"))


async def test_a_second_run_makes_zero_requests(tmp_path: Path) -> None:
    clock = ScaledClock(60)
    async with fake(clock) as server:
        await run(server, tmp_path, clock)
        before = manifest_hash(tmp_path)
        server.log.clear()
        again = await run(server, tmp_path, clock)
        assert len(server.log) == 0
    assert again.requests == 0 and again.rows == 0 and manifest_hash(tmp_path) == before
    assert all(d.units == 0 and d.already > 0 for d in again.datasets.values())


async def test_the_server_never_sees_more_than_the_plan_limit(tmp_path: Path) -> None:
    """A small limit (30/min) measured at the server's log, on a clock 20x faster than the wall."""
    clock = ScaledClock(20)
    async with fake(clock, requests_per_minute=30) as server:
        summary = await run(server, tmp_path, clock, ["bars_daily"], settings("jquants.requests_per_minute=30"))
        log = server.log
        assert log.max_in_window(60) <= 30
        assert not log.data_requests(statuses={429})
        days = sorted(r.t for r in log.data_requests("bars_daily"))  # queued at once (the calendar comes first)
    assert summary.data_requests == len(log) == 20  # the calendar, then 19 business days
    assert 27 <= (len(days) - 1) / (days[-1] - days[0]) * 60 <= 30  # paced close to the limit


async def test_over_the_limit_the_client_backs_off_and_cools_down(tmp_path: Path) -> None:
    clock = ScaledClock(60)
    names = ["bars_daily", "master", "indices"]
    async with fake(clock, requests_per_minute=30, block_after=1000) as server:
        summary = await run(server, tmp_path, clock, names, settings("jquants.requests_per_minute=120"))
        assert len(server.log.data_requests(statuses={429})) == summary.rate_limited > 0
    assert summary.cooldowns >= 1
    for name in names:
        assert read(tmp_path, name).equals(expected(name))


async def test_faults_still_give_an_identical_lake(tmp_path: Path, clean_lake: Path) -> None:
    clock = ScaledClock(60)
    faults = Faults(error_rate=0.1, drop_rate=0.05, slow_rate=0.05, slow_s=1.0, seed=3)
    async with fake(clock, faults=faults) as server:
        summary = await run(server, tmp_path / "faulty", clock)
        injected = server.log.stats()["faults"]
    assert injected.get("error", 0) > 5 and sum(v for k, v in injected.items() if "drop" in k) > 2
    assert summary.retries >= injected.get("error", 0)
    assert_same_lake(clean_lake, tmp_path / "faulty")


async def test_v1_serves_the_same_lake(tmp_path: Path, clean_lake: Path) -> None:
    clock = ScaledClock(60)
    async with fake(clock) as server:
        summary = await run(server, tmp_path / "v1", clock, api_version="v1")
        assert any(r.path == "/v1/token/auth_user" for r in server.log)
        assert {r.path for r in server.log.data_requests("bars_daily")} == {"/v1/prices/daily_quotes"}
    assert summary.auth_requests == 2  # one login, one id token
    for name in ALL:  # the same rows; the fields only V2 serves (ROE, ProdCat, ...) are null columns from V1
        v2_only = [f.name for f in spec.get(name).fields if f.v1 is None]
        v1, v2 = read(tmp_path / "v1", name), read(clean_lake, name)
        assert v1.drop_columns(v2_only).equals(v2.drop_columns(v2_only)), name
        assert all(v1.column(c).null_count == v1.num_rows < v2.num_rows + 1 for c in v2_only), name


async def test_too_large_ranges_are_split_and_days_fail_clearly(tmp_path: Path) -> None:
    clock = ScaledClock(60)
    async with fake(clock, max_rows=4) as server:  # 413 for any query matching more than 4 rows
        with pytest.raises(FetchError) as info:
            await run(server, tmp_path, clock, ["topix", "investor_types", "bars_daily"],
                      settings("jquants.concurrency=1"))
        topix_queries = [r.query for r in server.log.data_requests("topix")]
    assert len(topix_queries) > 3 and topix_queries[0] == {"from": "2024-01-04", "to": "2024-01-31"}
    for name in ("topix", "investor_types"):  # halved until each piece fits, all rows landed
        assert read(tmp_path, name).equals(expected(name)), name
    s = info.value.summary
    assert "no range left to split" in (s.datasets["bars_daily"].error or "")


async def test_datasets_outside_the_plan(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = ScaledClock(60)
    async with fake(clock, plan="light") as server:
        with pytest.raises(PlanError, match=r"breakdown is not available on the light plan \(needs premium\)"):
            await run(server, tmp_path, clock, ["bars_daily", "breakdown"])
        assert len(server.log) == 0  # refused before any request
        summary = await fetch(settings("fetch.datasets=[bars_daily, breakdown, topix]"), START, END, None,
                              tmp_path, server.url, "light", progress=False, credentials=CREDS, clock=clock,
                              today=server.state.today)
    assert summary.skipped == {"breakdown": "not available on the light plan (needs premium)"}
    assert "skipping breakdown" in caplog.text and set(summary.datasets) == {"calendar", "bars_daily", "topix"}


async def test_server_side_gating_fails_only_that_dataset(tmp_path: Path) -> None:
    clock = ScaledClock(60)
    async with fake(clock, plan="light") as server:  # the user claims premium; the server knows better
        with pytest.raises(FetchError) as info:
            await run(server, tmp_path, clock, ["bars_daily", "breakdown"], plan="premium")
    s = info.value.summary
    assert "breakdown" in str(info.value) and "needs one of: premium" in (s.datasets["breakdown"].error or "")
    assert "set jquants.plan / --plan to your actual plan" in str(info.value)
    assert s.datasets["breakdown"].retries == 0 and s.datasets["breakdown"].done == 0  # not retried
    assert s.datasets["bars_daily"].error is None
    bars, base = spec.get("bars_daily"), [f.name for f in spec.get("bars_daily").fields if not f.premium_only]
    got = read(tmp_path, "bars_daily")
    assert got.select(base).equals(expected("bars_daily").select(base))
    # below Premium the morning/afternoon keys are omitted on the wire: null columns in the lake
    assert all(got.column(f.name).null_count == got.num_rows for f in bars.fields if f.premium_only)


async def test_dates_outside_the_window_are_a_clear_error(tmp_path: Path) -> None:
    clock = ScaledClock(60)
    async with fake(clock, plan="free") as server:  # Free lags 12 weeks: January 2024 is too recent
        with pytest.raises(FetchError) as info:
            await run(server, tmp_path, clock, ["bars_daily"], settings("jquants.concurrency=1"))
    msg = info.value.summary.datasets["bars_daily"].error or ""
    assert "your free plan covers" in msg and "light (5 years)" in msg
    assert info.value.summary.datasets["bars_daily"].retries == 0


async def test_an_empty_answer_for_an_open_day_is_asked_again(tmp_path: Path) -> None:
    """The API has no bars yet for one trading day: recorded as not final, requested again until it has them."""
    gap = market().business_days[3]
    bars = market().tables["bars_daily"]
    late = dataclasses.replace(market(), tables={**market().tables, "bars_daily": bars[bars["Date"].dt.date != gap]})
    clock = ScaledClock(60)
    async with FakeServer(late, FakeOptions(plan="premium"), clock=clock.monotonic, sleep=clock.sleep) as server:
        first = await run(server, tmp_path, clock, ["bars_daily"])
        again = await run(server, tmp_path, clock, ["bars_daily"])
    unit = Manifest.load(tmp_path).get("bars_daily", f"d{gap:%Y%m%d}")
    assert first.datasets["bars_daily"].empty == 1 and unit is not None and (unit.rows, unit.final) == (0, False)
    assert again.datasets["bars_daily"].units == 1 and again.datasets["bars_daily"].requests == 1
    async with fake(clock) as server:  # published now
        done = await run(server, tmp_path, clock, ["bars_daily"])
    assert done.datasets["bars_daily"].empty == 0 and read(tmp_path, "bars_daily").equals(expected("bars_daily"))
    async with fake(clock) as server:
        assert (await run(server, tmp_path, clock, ["bars_daily"])).requests == 0


async def test_dates_the_server_has_no_calendar_for_are_refused(tmp_path: Path) -> None:
    clock = ScaledClock(60)
    async with fake(clock) as server:  # the tiny market's calendar covers 2024
        with pytest.raises(FetchInputError, match=r"calendar has no day in 2023-03-01 \.\. 2023-03-31"):
            await fetch(settings(), "2023-03-01", "2023-03-31", ["bars_daily"], tmp_path, server.url, "premium",
                        progress=False, credentials=CREDS, clock=clock, today=server.state.today)
        assert [r.dataset for r in server.log] == ["calendar"]  # one question, then a refusal
    assert not Manifest.load(tmp_path).complete("calendar", "r20230301-20230331")


NO_SNAPSHOT = tuple(n for n in ALL if spec.get(n).fetch != "latest")  # a snapshot is stamped with the fetch day


def units(lake: Path, name: str) -> dict[str, tuple[int, str, bool]]:
    return {uid: (r.rows, r.hash, r.final) for uid, r in Manifest.load(lake).units(name).items()}


async def test_kill_9_mid_fetch_from_a_faulty_server_then_resume_gives_an_identical_lake(
        tmp_path: Path, clean_lake: Path) -> None:
    """`gpuetl fetch` (the command, in a child process) against a server answering 10 % errors and dropping 2 % of
    connections, killed with SIGKILL mid-way, then resumed: every unit's rows and content hash equal a clean fetch."""
    clock = ScaledClock(60)
    lake = tmp_path / "killed"
    faults = Faults(error_rate=0.1, drop_rate=0.02, seed=11)
    async with fake(clock, requests_per_minute=100_000, faults=faults) as server:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "JQUANTS_API_KEY": "demo"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gpuetl", "fetch", "--api-url", server.url, "--plan", "premium", "--lake", str(lake),
            "--start", START.isoformat(), "--end", END.isoformat(), "--datasets", ",".join(NO_SNAPSHOT),
            "--no-progress", "--set", "jquants.requests_per_minute=3000", "--set", "jquants.concurrency=2",
            "--set", "jquants.backoff_base_s=0.02", "--set", "jquants.backoff_max_s=0.1",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        for _ in range(600):  # poll (not timing): kill once some units are on disk and in the manifest
            if (lake / "_manifest.json").exists() and len(list(lake.rglob("*.parquet"))) >= 20:
                break
            if proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert proc.returncode is None, (await proc.communicate())[1].decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        killed_requests = len(server.log)
        server.log.clear()
        resumed = await run(server, lake, clock, NO_SNAPSHOT)
        injected = server.log.stats()["faults"]
    assert killed_requests > 0 and injected.get("error", 0) > 0 and resumed.retries > 0
    assert sum(d.already for d in resumed.datasets.values()) > 0  # what the killed run recorded was kept
    for name in NO_SNAPSHOT:
        assert units(lake, name) == units(clean_lake, name), name
        assert read(lake, name).equals(read(clean_lake, name)), name
    assert not [p for p in lake.rglob("*") if p.name.endswith(".tmp")]  # the resume cleared the killed run's


async def test_a_refused_key_or_a_dead_server_stops_the_run(tmp_path: Path) -> None:
    clock = ScaledClock(60)
    async with fake(clock) as server:
        with pytest.raises(FetchError, match="refused the credentials") as info:
            await run(server, tmp_path, clock, ["bars_daily"], credentials=Credentials(api_key="wrong"))
        assert len(server.log) == 1 and info.value.summary.stopped
    async with fake(clock, faults=Faults(error_rate=1.0)) as server:
        with pytest.raises(FetchError, match="gave up after 2 retries") as info:
            await run(server, tmp_path, clock, ["bars_daily"], settings("jquants.max_retries=2"))
        assert len(server.log) == 3
    assert "run the same command again to resume" in str(info.value)
