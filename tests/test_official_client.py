"""The official J-Quants client (jquants-api-client, ClientV2) reads the fake server: every dataset it has a V2
getter for, each into its own column set (the client selects `df[COLUMNS_V2]` for several endpoints, so a key
the real API sends and the fake did not would fail here), with the rows the market holds."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from gpuetl.fake import FakeOptions, FakeServer
from gpuetl.jquants import spec
from tests.support.fake import day, market

jquantsapi = pytest.importorskip("jquantsapi")
from jquantsapi import constants as C  # noqa: E402

D0, D1 = day(0), day(1)
# the client's own pandas calls (sort_values(inplace=True)) are deprecated in pandas 3.1: not ours to fix
pytestmark = [pytest.mark.filterwarnings("ignore:The inplace keyword:Warning"),
              pytest.mark.filterwarnings("ignore:get_fin_.*cursor:DeprecationWarning")]


def on(name: str, column: str, value: str) -> int:
    """Rows of the market's `name` whose `column` (a date) equals `value`: the reference row count."""
    frame = market().tables[name]
    return int((frame[column].dt.date == dt.date.fromisoformat(value)).sum())


def between(name: str, column: str, first: str, last: str) -> int:
    return int(market().tables[name][column].dt.date.between(*map(dt.date.fromisoformat, (first, last))).sum())


def listed(value: str) -> int:
    return len(set(market().tables["master"].pipe(lambda f: f[f["Date"].dt.date == dt.date.fromisoformat(value)])
                   ["Code"]))


# dataset -> (the getter's call, the client's column set for it (None: it returns the keys it got), expected rows)
CASES: dict[str, tuple[Callable[[Any], pd.DataFrame], list[str] | None, Callable[[], int]]] = {
    "calendar": (lambda c: c.get_mkt_calendar(from_yyyymmdd=D0, to_yyyymmdd=D1),
                 C.MARKETS_TRADING_CALENDAR_COLUMNS_V2, lambda: between("calendar", "Date", D0, D1)),
    "master": (lambda c: c.get_eq_master(date=D1), C.EQ_MASTER_COLUMNS_V2, lambda: listed(D1)),
    "bars_daily": (lambda c: c.get_eq_bars_daily(date_yyyymmdd=D0), C.EQ_BARS_DAILY_COLUMNS_V2,
                   lambda: on("bars_daily", "Date", D0)),
    "fins_summary": (lambda c: c.get_fin_summary(code="86970"), C.FIN_SUMMARY_COLUMNS_V2,
                     lambda: int((market().tables["fins_summary"]["Code"] == "86970").sum())),
    "fins_details": (lambda c: c.get_fin_details(code="86970"), C.FINS_FS_DETAILS_COLUMNS_V2,
                     lambda: int((market().tables["fins_details"]["Code"] == "86970").sum())),
    "dividend": (lambda c: c.get_fin_dividend(code="72030"), C.FINS_DIVIDEND_COLUMNS_V2,
                 lambda: int((market().tables["dividend"]["Code"] == "72030").sum())),
    "earnings_calendar": (lambda c: c.get_eq_earnings_cal(), C.FINS_ANNOUNCEMENT_COLUMNS_V2,
                          lambda: len(market().tables["earnings_calendar"])),
    "investor_types": (lambda c: c.get_eq_investor_types(section="TSEPrime"), C.EQ_INVESTOR_TYPES_COLUMNS_V2,
                       lambda: int((market().tables["investor_types"]["Section"] == "TSEPrime").sum())),
    "margin_interest": (lambda c: c.get_mkt_margin_interest(code="72030"), C.MKT_MARGIN_INTEREST_COLUMNS_V2,
                        lambda: int((market().tables["margin_interest"]["Code"] == "72030").sum())),
    "margin_alert": (lambda c: c.get_mkt_margin_alert(date_yyyymmdd=D1), C.DAILY_MARGIN_INTEREST_COLUMNS_V2,
                     lambda: on("margin_alert", "PubDate", D1)),
    "short_ratio": (lambda c: c.get_mkt_short_ratio(date_yyyymmdd=D0), C.MKT_SHORT_RATIO_COLUMNS_V2,
                    lambda: on("short_ratio", "Date", D0)),
    "short_sale_report": (lambda c: c.get_mkt_short_sale_report(disclosed_date=D1),
                          C.SHORT_SELLING_POSITIONS_COLUMNS_V2, lambda: on("short_sale_report", "DiscDate", D1)),
    "breakdown": (lambda c: c.get_mkt_breakdown(date_yyyymmdd=D0), C.MKT_BREAKDOWN_COLUMNS_V2,
                  lambda: on("breakdown", "Date", D0)),
    "topix": (lambda c: c.get_idx_bars_daily_topix(from_yyyymmdd=D0, to_yyyymmdd=D1), C.INDICES_TOPIX_COLUMNS_V2,
              lambda: between("topix", "Date", D0, D1)),
    "indices": (lambda c: c.get_idx_bars_daily(date_yyyymmdd=D0), C.INDICES_COLUMNS_V2,
                lambda: on("indices", "Date", D0)),
    "options_225": (lambda c: c.get_drv_bars_daily_opt_225(date_yyyymmdd=D0), None,
                    lambda: on("options_225", "Date", D0)),
    "futures": (lambda c: c.get_drv_bars_daily_fut(date_yyyymmdd=D0), C.DERIVATIVES_FUTURES_COLUMNS_V2,
                lambda: on("futures", "Date", D0)),
    "options": (lambda c: c.get_drv_bars_daily_opt(date_yyyymmdd=D0), C.DERIVATIVES_OPTIONS_COLUMNS_V2,
                lambda: on("options", "Date", D0)),
}


@pytest.fixture(scope="module")
def client_on_fake() -> Any:
    """ClientV2 pointed at a fake server running in a background loop (the client is synchronous)."""
    loop = asyncio.new_event_loop()
    server = FakeServer(market(), FakeOptions(plan="premium", page_size=7))  # small pages: the client follows them
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    client = jquantsapi.ClientV2(api_key="demo")
    client.JQUANTS_API_BASE = f"{server.url}/v2"
    yield client
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=30)
    loop.close()


def test_every_dataset_the_official_client_has_a_getter_for_is_covered() -> None:
    assert set(CASES) == set(spec.datasets())


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_official_client_reads_the_fake_server(client_on_fake: Any, name: str) -> None:
    call, columns, rows = CASES[name]
    df = call(client_on_fake)
    assert len(df) == rows() > 0, name
    if columns is not None:  # its own column set, in its order where it selects one
        assert set(columns) <= set(df.columns), sorted(set(columns) - set(df.columns))
    assert set(spec.get(name).columns) <= set(df.columns) | ({"PubDate"} if name == "margin_interest" else set())
