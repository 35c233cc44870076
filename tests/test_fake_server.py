"""The fake J-Quants server over real HTTP (V2): auth, envelope, pagination, parameters, encodings, plans."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import pytest

from gpuetl.fake import FakeOptions, FakeServer
from gpuetl.fake.encode import EXTRA_KEYS
from gpuetl.fake.tiny import LATE_LISTED, NO_TRADE
from gpuetl.jquants import spec
from tests.support.fake import day, market

KEY = {"x-api-key": "demo"}
Start = Callable[..., Awaitable[FakeServer]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    servers: list[FakeServer] = []

    async def _start(**options: Any) -> FakeServer:
        server = await FakeServer(market(), FakeOptions(**options)).start()
        servers.append(server)
        return server

    yield _start
    for s in servers:
        await s.close()


async def get(http: aiohttp.ClientSession, server: FakeServer, path: str, headers: Mapping[str, str] | None = None,
              /, **params: str) -> tuple[int, Any]:
    async with http.get(f"{server.url}/v2{path}", params=params, headers=KEY if headers is None else headers) as r:
        return r.status, await r.json()


async def get_all(http: aiohttp.ClientSession, server: FakeServer, path: str, **params: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        status, body = await get(http, server, path, **params)
        assert status == 200, body
        rows += body["data"]
        if "pagination_key" not in body:
            return rows
        params = {**params, "pagination_key": body["pagination_key"]}


# ------------------------------------------------------------------------------------------ auth and paths


async def test_api_key_missing_wrong_and_unknown_paths(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start()
    assert await get(http, s, "/equities/bars/daily", {}, date=day(0)) == (
        403, {"message": "The api key is required"})
    assert await get(http, s, "/equities/bars/daily", {"x-api-key": "nope"}, date=day(0)) == (
        403, {"message": "The incoming api key is invalid or expired."})
    assert await get(http, s, "/equities/bars/weekly", date=day(0)) == (
        403, {"message": "The requested endpoint does not exist."})
    async with http.post(f"{s.url}/v2/equities/bars/daily", headers=KEY) as r:
        assert r.status == 403


async def test_endpoint_outside_the_plan_is_403(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start(plan="light")
    assert await get(http, s, "/fins/details", date=day(3)) == (
        403, {"message": "This API is not available on your subscription."})
    assert (await get(http, s, "/indices/bars/daily/topix"))[0] == 200


# ------------------------------------------------------------------------------------ envelope, pagination


async def test_pages_follow_pagination_key_to_the_last_page(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start(page_size=2)
    status, first = await get(http, s, "/equities/bars/daily", date=day(5))
    assert status == 200 and len(first["data"]) == 2 and first["pagination_key"]
    rows = await get_all(http, s, "/equities/bars/daily", date=day(5))
    assert [r["Code"] for r in rows] == sorted(market().codes)  # all issues that day, by code
    keys = [r.query.get("pagination_key") for r in s.log.records[1:]]
    assert len(set(keys)) == len(keys) == 3  # a new key for every page
    assert s.log.records[-1].rows == 1 and len(s.log.data_requests("bars_daily")) == 1 + 3


async def test_pagination_key_is_bound_to_its_query(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start(page_size=2)
    _, body = await get(http, s, "/equities/bars/daily", date=day(5))
    pk = body["pagination_key"]
    # the same query spelled differently (YYYYMMDD) is the same query
    assert (await get(http, s, "/equities/bars/daily", date=day(5).replace("-", ""), pagination_key=pk))[0] == 200
    for other in ({"date": day(6)}, {"code": "72030"}):
        status, err = await get(http, s, "/equities/bars/daily", pagination_key=pk, **other)
        assert status == 400 and "pagination_key" in err["message"]
    status, _ = await get(http, s, "/markets/breakdown", date=day(5), pagination_key=pk)
    assert status == 400
    assert (await get(http, s, "/equities/bars/daily", date=day(5), pagination_key=pk[:-3] + "x."))[0] == 400


async def test_empty_result_and_non_business_day(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start()
    assert await get(http, s, "/equities/bars/daily", date="2024-01-06") == (200, {"data": []})  # Saturday
    assert await get(http, s, "/equities/bars/daily", date="2024-01-08") == (200, {"data": []})  # holiday
    assert await get(http, s, "/equities/bars/daily", code="99990") == (200, {"data": []})


async def test_calendar_is_not_paginated(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start(page_size=5)
    status, body = await get(http, s, "/markets/calendar", **{"from": "2024-01-01", "to": "20240131"})
    assert status == 200 and len(body["data"]) == 31 and "pagination_key" not in body
    assert body["data"][7] == {"Date": "2024-01-08", "HolDiv": "0"}
    _, hol = await get(http, s, "/markets/calendar", hol_div="3")
    assert hol["data"] == [{"Date": "2024-02-12", "HolDiv": "3"}]
    _, alias = await get(http, s, "/markets/calendar", holidayDivision="3")  # the official CLI's spelling
    assert alias == hol
    assert (await get(http, s, "/markets/calendar", pagination_key="x"))[0] == 400


# -------------------------------------------------------------------------------------------- parameters


async def test_date_formats_and_code_lengths(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start()
    _, dashed = await get(http, s, "/equities/bars/daily", date=day(4))
    _, compact = await get(http, s, "/equities/bars/daily", date=day(4).replace("-", ""))
    assert dashed == compact and len(dashed["data"]) == len(market().codes)
    _, common = await get(http, s, "/equities/bars/daily", code="8697", date=day(4))
    assert [r["Code"] for r in common["data"]] == ["86970"]  # 4 digits: the common stock only
    _, pref = await get(http, s, "/equities/bars/daily", code="86975", date=day(4))
    assert [r["Code"] for r in pref["data"]] == ["86975"]
    _, alnum = await get(http, s, "/equities/bars/daily", code="130a", date=day(4))
    assert [r["Code"] for r in alnum["data"]] == ["130A0"]


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/equities/bars/daily", {}, "This API requires at least 1 parameter as follows; 'code','date'."),
    ("/equities/bars/daily", {"from": "20240104", "to": "20240110"},
     "This API requires at least 1 parameter as follows; 'code','date'."),
    ("/markets/short-sale-report", {},
     "This API requires at least 1 parameter as follows; 'code','disc_date','calc_date'."),
    ("/equities/bars/daily", {"code": "720"}, "'code' must be 4 or 5 digits."),
    ("/equities/bars/daily", {"code": "720301"}, "'code' must be 4 or 5 digits."),
    ("/equities/bars/daily", {"code": "72030", "from": "20240110", "to": "20240104"}, "'from' must be older than 'to'"),
    ("/equities/bars/daily", {"date": "2024-13-01"}, "'date' must be a date (YYYYMMDD or YYYY-MM-DD)."),
    ("/equities/bars/daily", {"date": "20240104", "from": "20240104", "to": "20240110"},
     "This API does not accept this combination of parameters; 'date','from','to'."),
    ("/equities/bars/daily", {"date": "20240104", "foo": "1"}, "'foo' is not a valid parameter."),
    ("/markets/calendar", {"hol_div": "7"}, "'hol_div' must be one of 0, 1, 2, 3."),
])
async def test_parameter_errors_are_400(start: Start, http: aiohttp.ClientSession, path: str,
                                        params: dict[str, str], message: str) -> None:
    s = await start()
    assert await get(http, s, path, **params) == (400, {"message": message})


async def test_empty_values_are_absent_and_ranges_are_inclusive(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start()
    _, body = await get(http, s, "/fins/summary", code="", date=day(3))  # the official V1 client's style
    assert body["data"] and all(r["DiscDate"] == day(3) for r in body["data"])
    _, rng = await get(http, s, "/equities/bars/daily", code="72030", **{"from": day(1), "to": day(3)})
    assert [r["Date"] for r in rng["data"]] == [day(1), day(2), day(3)]
    _, open_ended = await get(http, s, "/equities/bars/daily", code="72030", **{"from": day(30)})
    assert open_ended["data"][0]["Date"] == day(30) and open_ended["data"][-1]["Date"] == day(-1)
    _, s33 = await get(http, s, "/markets/short-ratio", s33="50", date=day(0))
    assert [r["S33"] for r in s33["data"]] == ["0050"]


async def test_master_as_of_a_day(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start()
    _, holiday = await get(http, s, "/equities/master", date="2024-01-08")  # a holiday -> next business day
    assert {r["Date"] for r in holiday["data"]} == {"2024-01-09"}
    assert LATE_LISTED not in {r["Code"] for r in holiday["data"]}  # listed from the 5th business day
    _, today = await get(http, s, "/equities/master")
    assert {r["Date"] for r in today["data"]} == {s.state.today.isoformat()}
    assert {r["Code"] for r in today["data"]} == set(market().codes)
    _, one = await get(http, s, "/equities/master", code="8697")
    assert [r["Code"] for r in one["data"]] == ["86970"]


# --------------------------------------------------------------------------------------------- encodings


async def test_bars_encoding_and_premium_only_keys(start: Start, http: aiohttp.ClientSession) -> None:
    code, i = NO_TRADE
    premium = await start()
    _, body = await get(http, premium, "/equities/bars/daily", code=code, date=day(i))
    row = body["data"][0]
    assert row["O"] is None and row["Vo"] is None and row["AdjC"] is None  # no trade: null, not 0
    assert row["UL"] == "0" and row["LL"] == "0" and isinstance(row["AdjFactor"], float)
    assert "MO" in row and "AAdjVo" in row
    standard = await start(plan="standard")
    _, body = await get(http, standard, "/equities/bars/daily", code=code, date=day(i + 1))
    row = body["data"][0]
    premium_only = {f.name for f in spec.get("bars_daily").fields if f.premium_only}
    assert not premium_only & set(row) and isinstance(row["C"], float)
    assert set(row) == set(spec.get("bars_daily").columns) - premium_only | {"ExRT", "MktCap"}


async def test_statements_are_all_strings(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start()
    _, body = await get(http, s, "/fins/summary", code="86970")
    row = body["data"][0]
    assert all(isinstance(v, str) for v in row.values())
    assert row["EPS"] == "66.76" and row["OdP"] == "" and row["DEPS"] == ""
    assert row["MatChgSub"] == "false" and row["ChgAcEst"] == "true" and row["SigChgInC"] == ""
    _, details = await get(http, s, "/fins/details", code="86970")
    assert details["data"][0]["FS"]["Goodwill (IFRS)"] == "67374000000"


async def test_mixed_encodings(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start()
    _, div = await get(http, s, "/fins/dividend", code="13010")
    assert div["data"][0]["DivRate"] == "-" and div["data"][0]["PayDate"] == "-" and div["data"][0]["DistAmt"] == ""
    _, div2 = await get(http, s, "/fins/dividend", code="72030")
    assert div2["data"][0]["DivRate"] == 25.0
    _, alert = await get(http, s, "/markets/margin-alert", date=day(1))
    etf = next(r for r in alert["data"] if r["Code"] == "13010")
    assert etf["ShrtOutChg"] == "-" and etf["ShrtOutRatio"] == "*" and etf["LongOutRatio"] == "*"
    assert etf["PubReason"]["PrecautionByJSF"] == "1" and isinstance(etf["ShrtOut"], float)
    _, fut = await get(http, s, "/derivatives/bars/daily/futures", date=day(0))
    assert fut["data"][0]["MO"] == "" and fut["data"][0]["EO"] == "" and isinstance(fut["data"][0]["AO"], float)
    _, ssr = await get(http, s, "/markets/short-sale-report", disc_date=day(1))
    assert ssr["data"][0]["PrevRptDate"] == "" and ssr["data"][0]["PrevRptRatio"] == ""
    _, cal = await get(http, s, "/equities/earnings-calendar")
    assert cal["data"][0]["Date"] == "" and cal["data"][1]["Date"] == day(-1)


async def test_keys_the_real_api_sends_are_sent_by_default(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start()
    _, bars = await get(http, s, "/equities/bars/daily", code="72030", date=day(0))
    assert bars["data"][0]["ExRT"] == "" and bars["data"][0]["MktCap"] is None  # beyond the schema, ignored
    _, master = await get(http, s, "/equities/master", code="72030")
    assert master["data"][0]["ProdCat"] == "011"  # in the schema (the official client needs it)
    _, summary = await get(http, s, "/fins/summary", code="86970")
    assert {"ShEq", "NCShEq", "ROE", "NCROE"} <= set(summary["data"][0])
    spec_only = await start(extra_keys=False)
    _, bars = await get(http, spec_only, "/equities/bars/daily", code="72030", date=day(0))
    assert not {"ExRT", "MktCap"} & set(bars["data"][0])


async def test_derivative_filters(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start()
    _, central = await get(http, s, "/derivatives/bars/daily/futures", date=day(0), contract_flag="1")
    assert [r["Code"] for r in central["data"]] == ["169090005"]
    _, eqop = await get(http, s, "/derivatives/bars/daily/options", date=day(0), category="EQOP", code="7203")
    assert [r["UndSSO"] for r in eqop["data"]] == ["72030"]
    assert (await get(http, s, "/derivatives/bars/daily/options", code="7203", date=day(0)))[0] == 400


async def test_every_dataset_answers_in_its_catalogue_shape(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start()
    for ds in spec.datasets().values():
        params = {}
        if ds.date_param and ds.date_field and frozenset({ds.date_param}) in ds.patterns:
            params[ds.date_param] = market().tables[ds.name][ds.date_field].min().date().isoformat()
        rows = await get_all(http, s, ds.path, **params)
        assert rows, ds.name
        assert set(rows[0]) == set(ds.columns) | set(EXTRA_KEYS.get(ds.name, ())), ds.name


# ------------------------------------------------------------------------------------------ plan windows


async def test_free_plan_window_lags_twelve_weeks(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start(plan="free", today=dt.date(2024, 4, 15))
    end = dt.date(2024, 4, 15) - dt.timedelta(weeks=12)  # 2024-01-22
    message = ("Your subscription covers the following dates: 2022-01-22 ~ 2024-01-22. "
               "If you want more data, please check other plans:https://jpx-jquants.com/#dataset")
    assert await get(http, s, "/equities/bars/daily", date="2024-02-01") == (400, {"message": message})
    assert await get(http, s, "/equities/bars/daily", date="2021-12-01") == (400, {"message": message})
    status, _ = await get(http, s, "/equities/bars/daily", code="72030", **{"from": "2024-01-04", "to": "2024-02-01"})
    assert status == 400
    rows = await get_all(http, s, "/equities/bars/daily", code="72030")  # code only: clipped silently
    assert rows and max(r["Date"] for r in rows) == end.isoformat()
    _, master = await get(http, s, "/equities/master")  # today's master lies in the embargo: the last one before
    assert {r["Date"] for r in master["data"]} == {end.isoformat()}


async def test_paid_plan_window_is_open_ended(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start(plan="light", today=dt.date(2029, 2, 1))
    message = ("Your subscription covers the following dates: 2024-02-01 ~ . "
               "If you want more data, please check other plans:https://jpx-jquants.com/#dataset")
    assert await get(http, s, "/equities/bars/daily", date=day(0)) == (400, {"message": message})
    rows = await get_all(http, s, "/equities/bars/daily", code="72030")
    assert rows and min(r["Date"] for r in rows) >= "2024-02-01"


async def test_default_today_is_the_business_day_after_the_market(start: Start) -> None:
    s = await start()
    assert s.state.today == dt.date(2024, 3, 1) and day(-1) == "2024-02-29"


# ----------------------------------------------------------------------------------------------------- gzip


async def test_gzip_when_asked(start: Start, http: aiohttp.ClientSession) -> None:
    s = await start()
    url = f"{s.url}/v2/equities/bars/daily?date={day(0)}"
    async with http.get(url, headers={**KEY, "Accept-Encoding": "gzip"}) as r:
        assert r.headers["Content-Encoding"] == "gzip" and (await r.json())["data"]
    async with http.get(url, headers={**KEY, "Accept-Encoding": "identity"}) as r:
        assert "Content-Encoding" not in r.headers and (await r.json())["data"]
