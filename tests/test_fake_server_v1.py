"""The fake server's V1 face: token flow, Bearer auth, V1 paths, list keys, field names and parameters."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gpuetl.fake import FakeOptions, FakeServer
from gpuetl.jquants import spec
from tests.support.fake import Clock, day, market

LOGIN = {"mailaddress": "demo@example.com", "password": "demo"}


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)


@pytest.fixture
async def server(clock: Clock) -> AsyncIterator[FakeServer]:
    async with FakeServer(market(), FakeOptions(id_ttl_s=60, refresh_ttl_s=600, page_size=3), clock=clock) as s:
        yield s


async def id_token(http: aiohttp.ClientSession, server: FakeServer) -> str:
    async with http.post(f"{server.url}/v1/token/auth_user", json=LOGIN) as r:
        assert r.status == 200
        refresh = (await r.json())["refreshToken"]
    async with http.post(f"{server.url}/v1/token/auth_refresh", params={"refreshtoken": refresh}) as r:
        assert r.status == 200
        return str((await r.json())["idToken"])


async def get(http: aiohttp.ClientSession, server: FakeServer, path: str, token: str | None,
              **params: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(f"{server.url}/v1{path}", params=params, headers=headers) as r:
        return r.status, await r.json()


async def test_token_flow_errors(server: FakeServer, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{server.url}/v1/token/auth_user", json={**LOGIN, "password": "x"}) as r:
        assert (r.status, await r.json()) == (400, {"message": "'mailaddress' or 'password' is incorrect."})
    # the official sample posts `data=json.dumps(...)` without a JSON content type
    async with http.post(f"{server.url}/v1/token/auth_user", data=json.dumps(LOGIN)) as r:
        assert r.status == 200 and set(await r.json()) == {"refreshToken"}
    async with http.post(f"{server.url}/v1/token/auth_refresh") as r:
        assert (r.status, await r.json()) == (400, {"message": "'refreshtoken' is required."})
    async with http.post(f"{server.url}/v1/token/auth_refresh", params={"refreshtoken": "bogus"}) as r:
        assert r.status == 400
    assert all(not r.is_data for r in server.log)


async def test_data_with_bearer_token_uses_v1_names(server: FakeServer, http: aiohttp.ClientSession) -> None:
    token = await id_token(http, server)
    status, body = await get(http, server, "/prices/daily_quotes", token, code="7203", date=day(0))
    assert status == 200 and set(body) == {"daily_quotes"}
    row = body["daily_quotes"][0]
    assert set(row) == {f.v1 for f in spec.get("bars_daily").fields}
    assert row["Code"] == "72030" and row["UpperLimit"] == "0" and isinstance(row["AdjustmentClose"], float)
    _, fins = await get(http, server, "/fins/statements", token, code="86970")
    assert fins["statements"][0]["LocalCode"] == "86970" and fins["statements"][0]["OrdinaryProfit"] == ""


async def test_v1_pagination_and_parameter_spelling(server: FakeServer, http: aiohttp.ClientSession) -> None:
    token = await id_token(http, server)
    rows: list[dict[str, Any]] = []
    params = {"date": day(5)}
    while True:
        _, body = await get(http, server, "/prices/daily_quotes", token, **params)
        rows += body["daily_quotes"]
        if "pagination_key" not in body:
            break
        params["pagination_key"] = body["pagination_key"]
    assert len(rows) == len(market().codes)
    _, cal = await get(http, server, "/markets/trading_calendar", token, holidaydivision="3")
    assert cal == {"trading_calendar": [{"Date": "2024-02-12", "HolidayDivision": "3"}]}
    status, err = await get(http, server, "/markets/trading_calendar", token, hol_div="3")
    assert status == 400 and err == {"message": "'hol_div' is not a valid parameter."}
    _, short = await get(http, server, "/markets/short_selling", token, sector33code="0050", date=day(0))
    assert short["short_selling"][0]["Sector33Code"] == "0050"
    status, err = await get(http, server, "/markets/short_selling_positions", token)
    assert err == {"message": "This API requires at least 1 parameter as follows; "
                              "'code','disclosed_date','calculated_date'."}


async def test_expired_missing_and_unknown(server: FakeServer, http: aiohttp.ClientSession, clock: Clock) -> None:
    token = await id_token(http, server)
    assert (await get(http, server, "/prices/daily_quotes", token, date=day(0)))[0] == 200
    clock.now += 61  # the ID token lives 60 s here
    assert await get(http, server, "/prices/daily_quotes", token, date=day(0)) == (
        401, {"message": "The incoming token is invalid or expired."})
    assert (await get(http, server, "/prices/daily_quotes", None, date=day(0)))[0] == 401
    status, body = await get(http, server, "/prices/weekly", await id_token(http, server))
    assert status == 403 and body["message"].startswith("Missing Authentication Token")
    clock.now += 601  # the refresh token has expired too: auth_refresh answers 400, as observed
    async with http.post(f"{server.url}/v1/token/auth_user", json=LOGIN) as r:
        refresh = (await r.json())["refreshToken"]
    clock.now += 601
    async with http.post(f"{server.url}/v1/token/auth_refresh", params={"refreshtoken": refresh}) as r:
        assert r.status == 400


async def test_v1_plan_omissions() -> None:
    async with FakeServer(market(), FakeOptions(plan="light")) as s, aiohttp.ClientSession() as http:
        token = await id_token(http, s)
        _, info = await get(http, s, "/listed/info", token, code="72030")
        assert "MarginCode" not in info["info"][0] and info["info"][0]["CompanyName"] == "テスト72030"
        _, bars = await get(http, s, "/prices/daily_quotes", token, code="72030", date=day(0))
        assert "MorningOpen" not in bars["daily_quotes"][0]
        status, body = await get(http, s, "/fins/fs_details", token, code="72030")
        assert (status, body) == (403, {"message": "This API is not available on your subscription."})
