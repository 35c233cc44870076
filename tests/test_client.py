"""The async client against small aiohttp servers on 127.0.0.1, each reproducing one API behaviour.

Time is virtual (ManualClock): backoff and cool-down waits advance the clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gpuetl.jquants import errors as E
from gpuetl.jquants import spec
from gpuetl.jquants.client import Client
from gpuetl.jquants.env import Credentials
from gpuetl.jquants.ratelimit import ManualClock

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BARS = spec.get("bars_daily")


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[TestServer]]]:
    servers: list[TestServer] = []

    async def start(routes: dict[str, Handler]) -> TestServer:
        """Routes are GET unless the path starts with "POST "."""
        app = web.Application()
        for path, handler in routes.items():
            method = "POST" if path.startswith("POST ") else "GET"
            app.router.add_route(method, path.removeprefix("POST "), handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for s in servers:
        await s.close()


def client_for(server: TestServer, **kw: Any) -> Client:
    defaults: dict[str, Any] = dict(plan="premium", requests_per_minute=6000, clock=ManualClock(),
                                    rng=random.Random(0), max_retries=5, backoff_base_s=1.0, backoff_max_s=30.0,
                                    cooldown_s=300.0, timeout_s=5.0)
    defaults.update(kw)
    creds = defaults.pop("credentials", Credentials(api_key="k"))
    return Client(str(server.make_url("")).rstrip("/"), creds, **defaults)


def ok(records: list[dict[str, Any]], key: str | None = None) -> web.Response:
    body: dict[str, Any] = {"data": records}
    if key:
        body["pagination_key"] = key
    return web.json_response(body)


def fail(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


async def test_headers_gzip_and_one_page(serve: Any) -> None:
    seen: dict[str, str] = {}

    async def bars(request: web.Request) -> web.Response:
        seen.update(request.headers)
        seen["query"] = request.query_string
        payload = gzip.compress(json.dumps({"data": [{"Date": "2024-01-05", "Code": "72030", "C": 1.0}]}).encode())
        return web.Response(body=payload, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    server = await serve({"/v2/equities/bars/daily": bars})
    async with client_for(server) as c:
        recs = await c.day_records(BARS, dt.date(2024, 1, 5))
    assert recs == [{"Date": "2024-01-05", "Code": "72030", "C": 1.0}]
    assert seen["x-api-key"] == "k" and "gpuetl/" in seen["User-Agent"]
    assert seen["Accept-Encoding"] == "gzip" and seen["query"] == "date=2024-01-05"


async def test_pagination_repeats_the_same_query_with_the_key(serve: Any) -> None:
    queries: list[dict[str, str]] = []

    async def bars(request: web.Request) -> web.Response:
        queries.append(dict(request.query))
        page = int(request.query.get("pagination_key", "0"))
        return ok([{"Code": f"{page}"}], key=str(page + 1) if page < 2 else None)

    server = await serve({"/v2/equities/bars/daily": bars})
    async with client_for(server) as c:
        pages = [p async for p in c.pages(BARS, {"date": "2024-01-05"})]
    assert [r["Code"] for p in pages for r in p] == ["0", "1", "2"]
    assert queries == [{"date": "2024-01-05"}, {"date": "2024-01-05", "pagination_key": "1"},
                       {"date": "2024-01-05", "pagination_key": "2"}]
    assert c.stats["bars_daily"].pages == 3


async def test_transient_failures_are_retried_with_jittered_backoff(serve: Any) -> None:
    script = ["500", "503", "drop", "truncated", "ok"]
    calls = 0

    async def bars(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        what = script[calls]
        calls += 1
        if what in ("500", "503"):
            return fail(int(what), "Unexpected error. Please try again later.")
        if what == "drop":  # headers and part of the body, then the connection goes away
            resp = web.StreamResponse(headers={"Content-Length": "100", "Content-Type": "application/json"})
            await resp.prepare(request)
            await resp.write(b'{"data": [')
            assert request.transport is not None
            request.transport.close()
            return resp
        if what == "truncated":
            return web.Response(body=b'{"data": [{"Code": "7203', content_type="application/json")
        return ok([{"Code": "72030"}])

    server = await serve({"/v2/equities/bars/daily": bars})
    clock = ManualClock()
    async with client_for(server, clock=clock) as c:
        recs = await c.day_records(BARS, dt.date(2024, 1, 5))
    assert recs == [{"Code": "72030"}] and calls == 5
    s = c.stats["bars_daily"]
    assert (s.requests, s.retries, s.transient) == (5, 4, 4)
    backoffs = [t for t in clock.slept if t > 0.0001]
    # full jitter: each wait lies in [0, base * 2**attempt]
    assert len(backoffs) <= 4 and all(0 <= t <= 2**i for i, t in enumerate(backoffs))


async def test_retries_give_up_after_max_retries(serve: Any) -> None:
    async def bars(request: web.Request) -> web.Response:
        return fail(502, "bad gateway")

    server = await serve({"/v2/equities/bars/daily": bars})
    async with client_for(server, max_retries=2) as c:
        with pytest.raises(E.ServerError, match="gave up after 2 retries"):
            await c.day_records(BARS, dt.date(2024, 1, 5))
    assert c.stats["bars_daily"].requests == 3


async def test_persistent_429_cools_the_whole_client_down(serve: Any) -> None:
    calls = 0
    times: list[float] = []
    clock = ManualClock()

    async def bars(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        times.append(clock.monotonic())
        return fail(429, "Too Many Requests") if calls <= 3 else ok([])

    server = await serve({"/v2/equities/bars/daily": bars})
    async with client_for(server, clock=clock, cooldown_s=300.0) as c:
        assert await c.day_records(BARS, dt.date(2024, 1, 5)) == []
        assert c.cooldowns == 1 and c.stats["bars_daily"].rate_limited == 3
        assert times[3] >= times[2] + 300.0  # the 4th request waited out the cool-down
        # every other task waits too: the limiter holds all permits until the pause ends
        assert c.limiter.paused_until >= times[2] + 300.0


@pytest.mark.parametrize(
    ("status", "message", "cls", "match"),
    [(403, "This API is not available on your subscription.", E.PlanError, "needs one of: premium"),
     (403, "The incoming api key is invalid or expired.", E.AuthError, "JQUANTS_API_KEY"),
     (401, "The incoming token is invalid or expired.", E.AuthError, "refused the credentials"),
     (400, "This API requires at least 1 parameter as follows; 'date','code'.", E.BadRequestError, "requires"),
     (403, "The requested endpoint does not exist.", E.BadRequestError, "no such endpoint")],
)
async def test_gating_and_auth_errors_are_typed_and_not_retried(
    serve: Any, status: int, message: str, cls: type[E.JQuantsError], match: str
) -> None:
    calls = 0

    async def details(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return fail(status, message)

    server = await serve({"/v2/fins/details": details})
    async with client_for(server, plan="standard") as c:
        with pytest.raises(cls, match=match) as info:
            await c.day_records(spec.get("fins_details"), dt.date(2024, 1, 5))
    assert calls == 1 and info.value.server_message == message and info.value.status == status


async def test_window_error_parses_the_subscription_window(serve: Any) -> None:
    msg = ("Your subscription covers the following dates: 2015-06-01 ~ 2025-06-01. If you want more data, "
           "please check other plans:https://jpx-jquants.com/#dataset")

    async def bars(request: web.Request) -> web.Response:
        return fail(400, msg)

    server = await serve({"/v2/equities/bars/daily": bars})
    async with client_for(server, plan="standard") as c:
        with pytest.raises(E.WindowError) as info:
            await c.day_records(BARS, dt.date(2010, 1, 5))
    err = info.value
    assert err.window == (dt.date(2015, 6, 1), dt.date(2025, 6, 1))
    assert "standard plan covers 2015-06-01 ~ 2025-06-01" in str(err) and "premium (20 years)" in str(err)
    assert "--start 2015-06-01" in str(err)
    assert E.parse_window("Your subscription covers the following dates: 2006-08-15 ~ .") == (
        dt.date(2006, 8, 15), None)


async def test_413_splits_a_range_in_half_until_it_fits(serve: Any) -> None:
    asked: list[tuple[str, str]] = []

    async def topix(request: web.Request) -> web.Response:
        a, b = dt.date.fromisoformat(request.query["from"]), dt.date.fromisoformat(request.query["to"])
        asked.append((a.isoformat(), b.isoformat()))
        if (b - a).days + 1 > 3:
            return fail(413, "Response data is too large. Specify parameters to reduce the acquired data range.")
        return ok([{"Date": (a + dt.timedelta(days=i)).isoformat()} for i in range((b - a).days + 1)])

    server = await serve({"/v2/indices/bars/daily/topix": topix})
    async with client_for(server) as c:
        recs = await c.range_records(spec.get("topix"), dt.date(2024, 1, 1), dt.date(2024, 1, 10))
    assert [r["Date"] for r in recs] == [f"2024-01-{d:02d}" for d in range(1, 11)]
    assert asked[0] == ("2024-01-01", "2024-01-10") and len(asked) > 3


async def test_413_on_a_single_day_is_a_clear_error(serve: Any) -> None:
    async def bars(request: web.Request) -> web.Response:
        return fail(413, "Response data is too large.")

    server = await serve({"/v2/equities/bars/daily": bars})
    async with client_for(server) as c:
        with pytest.raises(E.TooLargeError, match="no range left to split"):
            await c.day_records(BARS, dt.date(2024, 1, 5))


async def test_210_no_content_is_an_empty_answer(serve: Any) -> None:
    async def bars(request: web.Request) -> web.Response:
        return web.json_response({"message": "No content due to outside the target time."}, status=210)

    server = await serve({"/v2/equities/bars/daily": bars})
    async with client_for(server) as c:
        assert await c.day_records(BARS, dt.date(2024, 1, 5)) == []


async def test_a_timeout_is_retried(serve: Any) -> None:
    calls = 0

    async def bars(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()  # never answers; the client's timeout fires
        return ok([{"Code": "72030"}])

    server = await serve({"/v2/equities/bars/daily": bars})
    async with client_for(server, timeout_s=0.2) as c:
        assert await c.day_records(BARS, dt.date(2024, 1, 5)) == [{"Code": "72030"}]
    assert c.stats["bars_daily"].transient == 1


# ----------------------------------------------------------------------------- V1 token flow


class V1Server:
    """auth_user -> refresh token, auth_refresh -> id token, data with Bearer; tokens revocable."""

    def __init__(self) -> None:
        self.refresh_ok: set[str] = set()
        self.id_ok: set[str] = set()
        self.logins = 0
        self.refreshes = 0
        self.data_calls: list[str] = []

    async def auth_user(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body != {"mailaddress": "me@example.com", "password": "pw"}:
            return fail(400, "'mailaddress' or 'password' is incorrect.")
        self.logins += 1
        token = f"r{self.logins}"
        self.refresh_ok.add(token)
        return web.json_response({"refreshToken": token})

    async def auth_refresh(self, request: web.Request) -> web.Response:
        token = request.query.get("refreshtoken", "")
        if token not in self.refresh_ok:
            return fail(400, "'refreshtoken' is required.")
        self.refreshes += 1
        idt = f"i{self.refreshes}"
        self.id_ok.add(idt)
        return web.json_response({"idToken": idt})

    async def quotes(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        self.data_calls.append(auth)
        if auth.removeprefix("Bearer ") not in self.id_ok:
            return fail(401, "The incoming token is invalid or expired.")
        return web.json_response({"daily_quotes": [{"Date": request.query["date"], "Code": "86970"}]})

    def routes(self) -> dict[str, Handler]:
        return {"POST /v1/token/auth_user": self.auth_user, "POST /v1/token/auth_refresh": self.auth_refresh,
                "/v1/prices/daily_quotes": self.quotes}


async def test_v1_login_refresh_and_renewal(serve: Any) -> None:
    v1 = V1Server()
    server = await serve(v1.routes())
    clock = ManualClock()
    creds = Credentials(mail="me@example.com", password="pw")
    async with client_for(server, api_version="v1", credentials=creds, clock=clock) as c:
        assert await c.day_records(BARS, dt.date(2024, 1, 5)) == [{"Date": "2024-01-05", "Code": "86970"}]
        assert (v1.logins, v1.refreshes) == (1, 1)
        # the server revokes the id token: one 401, one renewal, then success
        v1.id_ok.clear()
        await c.day_records(BARS, dt.date(2024, 1, 9))
        assert (v1.logins, v1.refreshes) == (1, 2)
        # 23 h later the id token is renewed before use, without a 401
        clock.now += 23 * 3600 + 1
        before = len(v1.data_calls)
        await c.day_records(BARS, dt.date(2024, 1, 10))
        assert (v1.logins, v1.refreshes) == (1, 3) and len(v1.data_calls) == before + 1
        # the refresh token is revoked: auth_refresh answers 400 and the client logs in again
        v1.refresh_ok.clear()
        v1.id_ok.clear()
        await c.day_records(BARS, dt.date(2024, 1, 11))
        assert (v1.logins, v1.refreshes) == (2, 4)


async def test_v1_bad_password_is_an_auth_error(serve: Any) -> None:
    server = await serve(V1Server().routes())
    creds = Credentials(mail="me@example.com", password="wrong")
    async with client_for(server, api_version="v1", credentials=creds) as c:
        with pytest.raises(E.AuthError, match="JQUANTS_API_PASSWORD"):
            await c.day_records(BARS, dt.date(2024, 1, 5))
