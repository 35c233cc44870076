"""The synthetic market as a whole: every dataset in canonical form, deterministic, dated inside the range."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gpuetl.jquants import schema, spec
from gpuetl.synth import MarketConfig, SyntheticMarket, build_market, cached_market

# ~80 issues over 4.5 years: the 2020-10-01 outage, the 2022 market restructuring, investor-type
# corrections (2023-04 on) and the 15:30 close (2024-11-05 on) all fall inside.
CONFIG = MarketConfig(codes=80, start="2020-07-01", end="2024-12-27", seed=11, splits_per_year=0.08)
CANONICAL_DTYPES = {"date": "datetime64[ns]", "float": "float64", "flag": "boolean"}


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return cached_market(CONFIG)


@pytest.mark.parametrize("name", list(spec.datasets()))
def test_every_dataset_is_canonical(market: SyntheticMarket, name: str) -> None:
    ds = spec.get(name)
    df = market.table(name)
    assert tuple(df.columns) == ds.columns
    assert len(df) > 0, f"{name} is empty"
    for f in ds.fields:
        col = df[f.name]
        assert str(col.dtype) == CANONICAL_DTYPES.get(f.kind, "object"), (name, f.name, col.dtype)
        if f.kind in ("code", "str", "time", "json"):
            assert all(v is None or type(v) is str for v in col.iloc[:2000]), (name, f.name)
        if f.kind == "json":
            assert all(isinstance(json.loads(v), dict) for v in col.dropna().iloc[:2000])
    table = schema.to_table(ds, df)
    assert table.num_rows == len(df)
    assert table.schema == schema.arrow_schema(ds)


def test_tables_cover_every_dataset_and_names_fail_clearly(market: SyntheticMarket) -> None:
    assert set(market.tables) == set(spec.datasets())
    fresh = build_market(MarketConfig(codes=5, start="2024-01-04", end="2024-01-31", seed=1))
    assert "bars_daily" in fresh.tables and "prices" not in fresh.tables and not fresh.tables._built
    with pytest.raises(KeyError, match="known: calendar"):
        market.table("prices")


@pytest.mark.parametrize("name", [n for n, d in spec.datasets().items() if d.date_field and n != "calendar"])
def test_rows_only_inside_the_range(market: SyntheticMarket, name: str) -> None:
    ds = spec.get(name)
    dates = market.table(name)[ds.date_field]
    lo = max(pd.Timestamp(CONFIG.start), pd.Timestamp(ds.since))
    assert dates.notna().all() and dates.min() >= lo and dates.max() <= pd.Timestamp(CONFIG.end)


@pytest.mark.parametrize("name", [n for n, d in spec.datasets().items() if d.date_field])
def test_rows_sorted_by_their_date(market: SyntheticMarket, name: str) -> None:
    assert market.table(name)[spec.get(name).date_field].is_monotonic_increasing


@pytest.mark.parametrize("name", ["bars_daily", "master", "fins_summary", "dividend", "margin_alert", "breakdown"])
def test_date_keyed_rows_fall_on_business_days(market: SyntheticMarket, name: str) -> None:
    field = spec.get(name).date_field
    assert market.table(name)[field].isin(market.business_days("equity")).all()


def test_codes_look_like_jquants_codes(market: SyntheticMarket) -> None:
    codes = market.table("master")["Code"].unique()
    assert all(len(c) == 5 and c.endswith("0") for c in codes)
    big = build_market(MarketConfig(codes=600, start="2023-01-04", end="2024-12-30", seed=5))
    alnum = [c for c in big.universe.code if not c.isdigit()]
    assert alnum and all(c[:3].isdigit() and c[3].isalpha() and c[4] == "0" for c in alnum)


def test_master_attributes(market: SyntheticMarket) -> None:
    master = market.table("master")
    before = master[master["Date"] < pd.Timestamp("2022-04-04")]
    after = master[master["Date"] >= pd.Timestamp("2022-04-04")]
    assert set(before["Mkt"]) <= {"0101", "0102", "0104", "0106", "0107"}
    assert set(after["Mkt"]) <= {"0111", "0112", "0113"} and len(set(after["Mkt"])) == 3
    assert set(master["ScaleCat"]) <= {"TOPIX Core30", "TOPIX Large70", "TOPIX Mid400", "TOPIX Small 1",
                                       "TOPIX Small 2", "-"}
    names = {r["Sector33Code"]: r["Sector33CodeName"] for t in spec.reference_data() if t["name"] == "sector33_codes"
             for r in t["reference_data"]}
    assert (master["S33Nm"] == master["S33"].map(names)).all()
    assert set(master["Mrgn"]) <= {"1", "2", "3"}
    pairs = master.drop_duplicates(["Code", "Date"])
    assert len(pairs) == len(master)


def test_deterministic_whatever_the_build_order() -> None:
    config = MarketConfig(codes=40, start="2023-06-01", end="2024-05-31", seed=99)
    a, b = build_market(config), build_market(config)
    names = list(spec.datasets())
    for name in names:
        pd.testing.assert_frame_equal(a.table(name), b.table(name))
    c = build_market(config)
    for name in reversed(names):  # lazily built in the other order: still identical
        pd.testing.assert_frame_equal(c.table(name), a.table(name))
    pd.testing.assert_frame_equal(a.truth["peers"], c.truth["peers"])
    other = build_market(MarketConfig(codes=40, start="2023-06-01", end="2024-05-31", seed=100))
    assert not np.array_equal(other.table("bars_daily")["C"].to_numpy(), a.table("bars_daily")["C"].to_numpy())


def test_truth_holds_the_planted_structure(market: SyntheticMarket) -> None:
    peers = market.truth["peers"]
    assert {"follower", "leader", "weight"} <= set(peers.columns)
    assert np.allclose(peers.groupby("follower")["weight"].sum(), 1.0)
    assert (peers["follower"] != peers["leader"]).all()
    u = market.truth["universe"].set_index("Code")
    same = u.loc[peers["follower"], "S33"].to_numpy() == u.loc[peers["leader"], "S33"].to_numpy()
    # in-sector share: the configured one (the rest drawn sector-blind), give or take the sampling error of ~150 edges
    # and the in-sector draws lost where a follower is its sector's only issue; far above a sector-blind graph's
    chance = (u["S33"].value_counts(normalize=True) ** 2).sum()
    assert abs(same.mean() - CONFIG.in_sector_share) < 0.15 and same.mean() > 5 * chance
    assert market.truth["lead_lag"] == CONFIG.lead_lag
    assert len(market.truth["splits"]) > 0
    assert u["ListDate"].notna().any() and u["DelistDate"].notna().any()
