"""The fake server's rate limit and block, injected faults, the 413 cap and the request log (time injected)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from gpuetl.fake import FakeOptions, FakeServer, Faults
from gpuetl.fake.limits import RateLimiter
from gpuetl.fake.options import parse_faults
from gpuetl.fake.request_log import LoggedRequest, RequestLog
from tests.support.fake import Clock, day, market

KEY = {"x-api-key": "demo"}


async def bars(http: aiohttp.ClientSession, server: FakeServer, **params: str) -> tuple[int, Any, Any]:
    async with http.get(f"{server.url}/v2/equities/bars/daily", params=params or {"date": day(0)},
                        headers=KEY) as r:
        return r.status, r.headers, await r.json()


# ------------------------------------------------------------------------------------------- rate limit


async def test_plan_limit_sliding_window_and_429(http: aiohttp.ClientSession) -> None:
    clock = Clock()
    async with FakeServer(market(), FakeOptions(plan="free", today=market().business_days[-1]), clock=clock) as s:
        # Free: 5 requests per minute, whatever their answer (a 400 counts too)
        for i in range(5):
            clock.now = i * 10.0
            assert (await bars(http, s, date="2000-01-04"))[0] == 400
        clock.now = 59.0
        status, headers, body = await bars(http, s)
        assert (status, body) == (429, {"message": "Too Many Requests"}) and "Retry-After" not in headers
        clock.now = 60.0  # the first request left the window
        assert (await bars(http, s, date="2000-01-04"))[0] == 400
        assert (await bars(http, s))[0] == 429
    assert s.log.max_in_window(60, statuses=(200, 400)) == 5
    assert s.log.max_in_window(60) == 7 and s.log.max_in_window(1) == 2


async def test_a_client_that_keeps_going_is_blocked(http: aiohttp.ClientSession) -> None:
    clock = Clock()
    opts = FakeOptions(requests_per_minute=2, block_after=3, block_s=100)
    async with FakeServer(market(), opts, clock=clock) as s:
        statuses = [(await bars(http, s))[0] for _ in range(6)]
        assert statuses == [200, 200, 429, 429, 429, 429]  # the 4th refusal in a minute starts a block
        clock.now = 61.0  # the window is clear, but the block holds
        assert (await bars(http, s))[0] == 429
        clock.now = 99.0
        assert (await bars(http, s))[0] == 429
        clock.now = 100.0
        assert (await bars(http, s))[0] == 200
        assert s.stats["blocks"] == 1


def test_rate_limiter_counts_per_caller() -> None:
    clock = Clock()
    limiter = RateLimiter(1, block_after=10, block_s=1, clock=clock)
    limiter.admit("a")
    limiter.admit("b")
    with pytest.raises(Exception, match="429"):
        limiter.admit("a")


# ---------------------------------------------------------------------------------------------- faults


async def test_injected_errors_carry_the_api_messages(http: aiohttp.ClientSession) -> None:
    async with FakeServer(market(), FakeOptions(faults=Faults(error_rate=1.0, seed=3))) as s:
        answers = {}
        for _ in range(12):
            status, _, body = await bars(http, s)
            answers[status] = body["message"]
    assert answers == {500: "Unexpected error. Please try again later.", 502: "Bad Gateway",
                       503: "Service Unavailable"}
    assert s.stats["faults"] == {"error": 12}


async def test_dropped_connection_is_a_payload_error_at_the_client(http: aiohttp.ClientSession) -> None:
    async with FakeServer(market(), FakeOptions(faults=Faults(drop_rate=1.0))) as s:
        for _ in range(2):
            with pytest.raises(aiohttp.ClientPayloadError):
                async with http.get(f"{s.url}/v2/equities/bars/daily", params={"date": day(0)}, headers=KEY) as r:
                    assert r.status == 200
                    await r.read()
        # the connection is gone, not the server: a fresh request still gets a (dropped) answer logged
    assert [r.fault for r in s.log] == ["drop", "drop"] and {r.status for r in s.log} == {200}


async def test_slow_answers_wait_through_the_injected_sleep(http: aiohttp.ClientSession) -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    opts = FakeOptions(faults=Faults(slow_rate=0.5, slow_s=7.0, seed=11))
    async with FakeServer(market(), opts, sleep=sleep) as s:
        for _ in range(20):
            assert (await bars(http, s))[0] == 200
    assert waits and set(waits) == {7.0} and len(waits) == sum(r.fault == "slow" for r in s.log)
    assert 0 < len(waits) < 20


async def test_faults_replay_with_the_same_seed(http: aiohttp.ClientSession) -> None:
    runs = []
    for _ in range(2):
        async with FakeServer(market(), FakeOptions(faults=Faults(error_rate=0.3, seed=5))) as s:
            runs.append([(await bars(http, s))[0] for _ in range(15)])
    assert runs[0] == runs[1] and 200 in runs[0] and set(runs[0]) - {200}


def test_parse_faults() -> None:
    assert parse_faults("error=0.1, slow=0.05,drop=0.02,slow_s=2") == {
        "error_rate": 0.1, "slow_rate": 0.05, "drop_rate": 0.02, "slow_s": 2.0}
    for bad in ("error=2", "oops=0.1", "error", "slow=x"):
        with pytest.raises(ValueError):
            parse_faults(bad)


# ------------------------------------------------------------------------------------------ 413 and log


async def test_too_large_query_is_413_until_narrowed(http: aiohttp.ClientSession) -> None:
    async with FakeServer(market(), FakeOptions(max_rows=10)) as s:
        status, _, body = await bars(http, s, code="72030")
        assert (status, body) == (413, {"message": "Response data is too large. Specify parameters to reduce "
                                                   "the acquired data range."})
        assert (await bars(http, s, code="72030", **{"from": day(0), "to": day(9)}))[0] == 200


def test_request_log_windows_and_stats() -> None:
    log = RequestLog()
    for t, status in ((0.0, 200), (30.0, 200), (59.9, 429), (60.0, 200), (61.0, 500)):
        log.add(LoggedRequest(t, "GET", "/v2/x", {}, status, dataset="bars_daily", rows=2))
    log.add(LoggedRequest(45.0, "POST", "/v1/token/auth_user", {}, 200))
    assert log.max_in_window(60) == 4 and log.max_in_window(60, data_only=False) == 5
    assert log.max_in_window(60, statuses=(200,)) == 2
    assert len(log.data_requests(statuses=(200,))) == 3
    assert log.stats()["by_status"] == {200: 4, 429: 1, 500: 1} and log.stats()["rows"] == 10
    log.clear()
    assert len(log) == 0 and log.max_in_window() == 0
