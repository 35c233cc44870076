"""Round trip over real HTTP: every row of a market comes back, decoded, equal to its canonical value.

Runs on the tiny hand-made market and on a real gpuetl.synth market (30 codes x 3 months) once that
package exists, so the server is held to whatever the synthetic market produces.
"""

from __future__ import annotations

import collections
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd
import pytest

from gpuetl.fake import FakeOptions, FakeServer
from gpuetl.fake.market import Market
from gpuetl.fake.params import Version
from gpuetl.jquants import spec
from tests.support.fake import market as tiny

SYNTH_READY = (Path(__file__).resolve().parents[1] / "gpuetl" / "synth" / "__init__.py").exists()


@functools.cache
def synth_market() -> Market:
    from gpuetl.synth import MarketConfig, build_market

    return build_market(MarketConfig(codes=30, start="2024-01-04", end="2024-03-29", seed=3))


MARKETS: dict[str, Callable[[], Market]] = {"tiny": tiny, "synth": synth_market}


@pytest.fixture(params=["tiny", pytest.param("synth", marks=pytest.mark.skipif(
    not SYNTH_READY, reason="gpuetl.synth is not there yet"))])
def market(request: pytest.FixtureRequest) -> Market:
    return MARKETS[request.param]()


def canonical(field: spec.Field, v: Any) -> Any:
    """A canonical frame value in the form `wire` decodes to."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return "{}" if field.kind == "json" else None
    if field.kind == "float":
        return float(v)
    if field.kind == "date":
        return pd.Timestamp(v).date().isoformat()
    if field.kind == "flag":
        return bool(v)
    if field.kind == "json":
        return json.dumps(json.loads(v), sort_keys=True)
    return str(v) or None


def wire(field: spec.Field, v: Any) -> Any:
    """A wire value decoded leniently, as the lake's normaliser must ("" -> missing; "-", "*" too in numbers/dates)."""
    if field.kind == "json":
        return json.dumps(v or {}, sort_keys=True)
    if v is None or v == "" or (field.kind in ("float", "date") and v in ("-", "*")):
        return None  # "-" is a real value of text fields (UndSSO, ScaleCat)
    if field.kind == "float":
        return float(v)
    if field.kind == "flag":
        return v in ("1", "true")
    return str(v)


async def fetch(http: aiohttp.ClientSession, url: str, headers: dict[str, str], key: str,
                params: dict[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        async with http.get(url, params=params, headers=headers) as r:
            body = await r.json()
            assert r.status == 200, (url, params, body)
        rows += body[key]
        if "pagination_key" not in body:
            return rows
        params = {**params, "pagination_key": body["pagination_key"]}


def queries(ds: spec.DatasetSpec, frame: pd.DataFrame) -> list[dict[str, str]]:
    """Queries that together cover every row once: no parameters, else one per code or per date."""
    if frozenset() in ds.patterns:
        return [{}]
    options = []
    if frozenset({"code"}) in ds.patterns:
        options.append([{"code": c} for c in sorted(frame["Code"].dropna().unique())])
    if ds.date_param and ds.date_field and frozenset({ds.date_param}) in ds.patterns:
        days = sorted(pd.to_datetime(frame[ds.date_field]).dropna().dt.date.unique())
        options.append([{ds.date_param: d.isoformat()} for d in days])
    return min(options, key=len)


@pytest.mark.parametrize("version", ["v2", "v1"])
async def test_every_row_round_trips(market: Market, http: aiohttp.ClientSession, version: Version) -> None:
    async with FakeServer(market, FakeOptions(page_size=500)) as s:
        headers = {"x-api-key": "demo"}
        if version == "v1":
            async with http.post(f"{s.url}/v1/token/auth_user",
                                 json={"mailaddress": "demo@example.com", "password": "demo"}) as r:
                refresh = (await r.json())["refreshToken"]
            async with http.post(f"{s.url}/v1/token/auth_refresh", params={"refreshtoken": refresh}) as r:
                headers = {"Authorization": f"Bearer {(await r.json())['idToken']}"}
        for ds in spec.datasets().values():
            if ds.name == "master":  # served as of a day (restamped), checked below
                continue
            frame = market.tables[ds.name]
            path, key = (ds.path, "data") if version == "v2" else (ds.v1_path, ds.v1_key)
            assert path and key
            rows: list[dict[str, Any]] = []
            for q in queries(ds, frame):
                rows += await fetch(http, f"{s.url}/{version}{path}", headers, key,
                                    {ds.v2_to_v1_params().get(k, k) if version == "v1" else k: v for k, v in q.items()})
            fields = [f for f in ds.fields if version == "v2" or f.v1]  # V1 has no V2-only field
            names = [(f, f.v1 if version == "v1" else f.name) for f in fields]
            got = collections.Counter(tuple(wire(f, r[n]) for f, n in names) for r in rows)
            want = collections.Counter(tuple(canonical(f, v) for f, v in zip(fields, t, strict=True))
                                       for t in frame[[f.name for f in fields]].itertuples(index=False))
            assert got == want, ds.name
        assert s.log.stats()["by_status"].keys() == {200}


async def test_master_as_of_each_day(market: Market, http: aiohttp.ClientSession) -> None:
    master = market.tables["master"]
    async with FakeServer(market) as s:
        days = s.state.index.business_days
        first = pd.Timestamp(master["Date"].min()).date()
        for d in [first, s.state.index.last_date()]:
            body = await fetch(http, f"{s.url}/v2/equities/master", {"x-api-key": "demo"}, "data",
                               {"date": d.isoformat()})
            assert body and {r["Date"] for r in body} == {d.isoformat()}
            codes = [r["Code"] for r in body]
            assert codes == sorted(codes) and len(set(codes)) == len(codes)
            listed = master[pd.to_datetime(master["Date"]).dt.date <= d].groupby("Code").size().index
            assert set(codes) <= set(listed)
        assert len(days) > 0
