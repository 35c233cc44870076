"""Synthetic flows: investor types, margin, short selling, trade breakdown and derivatives add up."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gpuetl.synth import MarketConfig, SyntheticMarket, cached_market
from gpuetl.synth.flows import CATEGORIES

CONFIG = MarketConfig(codes=80, start="2020-07-01", end="2024-12-27", seed=11, splits_per_year=0.08)


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return cached_market(CONFIG)


def _nth_business_day_of_next_week(days: pd.DatetimeIndex, end: pd.Series, n: int) -> np.ndarray:
    monday = end - pd.to_timedelta(end.dt.day_of_week, unit="D") + pd.Timedelta(days=7)
    return days[np.searchsorted(days, monday) + n - 1]


def test_investor_types_arithmetic(market: SyntheticMarket) -> None:
    it = market.table("investor_types")
    for x in (*CATEGORIES, "Prop", "Brk", "Tot"):
        assert (it[f"{x}Tot"] == it[f"{x}Sell"] + it[f"{x}Buy"]).all()
        assert (it[f"{x}Bal"] == it[f"{x}Buy"] - it[f"{x}Sell"]).all()
    for side in ("Sell", "Buy"):
        assert (it[f"Brk{side}"] == sum(it[f"{c}{side}"] for c in CATEGORIES)).all()
        assert (it[f"Tot{side}"] == it[f"Prop{side}"] + it[f"Brk{side}"]).all()
    assert (it.filter(regex="(Sell|Buy)$") >= 0).all().all()


def test_investor_types_weeks_sections_and_corrections(market: SyntheticMarket) -> None:
    it = market.table("investor_types")
    days = market.business_days("equity")
    first = it.drop_duplicates(["Section", "StDate", "EnDate"], keep="first")
    assert (first["PubDate"].to_numpy() == _nth_business_day_of_next_week(days, first["EnDate"], 4)).all()
    assert ((first["EnDate"] - first["StDate"]).dt.days <= 4).all()
    old = set(it.loc[it["StDate"] < pd.Timestamp("2022-04-04"), "Section"])
    new = set(it.loc[it["StDate"] >= pd.Timestamp("2022-04-04"), "Section"])
    assert old <= {"TSE1st", "TSE2nd", "TSEMothers", "TSEJASDAQ", "TokyoNagoya"} and "TSE1st" in old
    assert new == {"TSEPrime", "TSEStandard", "TSEGrowth", "TokyoNagoya"}
    dup = it[it.duplicated(["Section", "StDate", "EnDate"], keep="first")]
    assert len(dup) > 0 and (dup["PubDate"] >= pd.Timestamp("2023-04-03")).all()
    orig = first.set_index(["Section", "StDate", "EnDate"]).loc[pd.MultiIndex.from_frame(dup[["Section", "StDate",
                                                                                             "EnDate"]])]
    assert (dup["PubDate"].to_numpy() > orig["PubDate"].to_numpy()).all()


def test_investor_types_turnover_matches_the_bars(market: SyntheticMarket) -> None:
    it = market.table("investor_types")
    bars = market.table("bars_daily")
    week = it[it["Section"] == "TokyoNagoya"].drop_duplicates(["StDate"]).iloc[3]
    va = bars[(bars["Date"] >= week["StDate"]) & (bars["Date"] <= week["EnDate"])]["Va"].sum() / 1000.0
    assert week["TotSell"] == pytest.approx(1.015 * va, rel=0.1)


def test_margin_interest(market: SyntheticMarket) -> None:
    mi = market.table("margin_interest")
    days = market.business_days("equity")
    d = mi["Date"].drop_duplicates()
    week = (d - pd.Timestamp("1970-01-05")).dt.days // 7
    all_week = pd.Series((days - pd.Timestamp("1970-01-05")).days // 7, index=days)
    last_of_week = all_week.groupby(all_week.to_numpy()).apply(lambda s: s.index.max())
    assert (d.to_numpy() == last_of_week.loc[week.to_numpy()].to_numpy()).all()
    assert (all_week.value_counts().loc[week.to_numpy()] > 2).all()
    assert (mi["ShrtVol"] == mi["ShrtNegVol"] + mi["ShrtStdVol"]).all()
    assert (mi["LongVol"] == mi["LongNegVol"] + mi["LongStdVol"]).all()
    assert (mi.loc[mi["IssType"] == "1", "ShrtStdVol"] == 0).all() and set(mi["IssType"]) <= {"1", "2"}
    assert (mi.filter(like="Vol") % 100 == 0).all().all()


def test_margin_alert(market: SyntheticMarket) -> None:
    ma = market.table("margin_alert")
    days = market.business_days("equity")
    nxt = days[np.searchsorted(days, ma["AppDate"], side="right")]
    first = ~ma.duplicated(["Code", "AppDate"], keep="first")
    assert (ma.loc[first, "PubDate"].to_numpy() == nxt[first.to_numpy()]).all()
    assert (~first).any() and (ma.loc[~first, "PubDate"].to_numpy() > nxt[~first.to_numpy()]).all()
    reasons = [json.loads(v) for v in ma["PubReason"].unique()]
    assert all(set(r) == {"Restricted", "DailyPublication", "Monitoring", "RestrictedByJSF", "PrecautionByJSF",
                          "UnclearOrSecOnAlert"} and set(r.values()) <= {"0", "1"} for r in reasons)
    assert ma["ShrtOutChg"].isna().any() and ma["ShrtOutChg"].notna().any()
    assert (ma["ShrtOut"] == ma["ShrtNegOut"] + ma["ShrtStdOut"]).all()
    assert set(ma["TSEMrgnRegCls"]) <= {"001", "002", "003"}


def test_short_ratio_and_short_sale_report(market: SyntheticMarket) -> None:
    sr = market.table("short_ratio")
    assert (sr[["SellExShortVa", "ShrtWithResVa", "ShrtNoResVa"]] >= 0).all().all()
    assert pd.Timestamp("2020-10-01") not in set(sr["Date"])
    short = (sr["ShrtWithResVa"] + sr["ShrtNoResVa"]) / sr[["SellExShortVa", "ShrtWithResVa",
                                                            "ShrtNoResVa"]].sum(axis=1)
    assert 0.3 < short.mean() < 0.5
    bars, master = market.table("bars_daily"), market.table("master")
    day = sr["Date"].iloc[0]
    va = bars[bars["Date"] == day].assign(
        S33=master[master["Date"] == day]["S33"].to_numpy()).groupby("S33")["Va"].sum()
    total = sr[sr["Date"] == day].set_index("S33")[["SellExShortVa", "ShrtWithResVa", "ShrtNoResVa"]].sum(axis=1)
    assert np.allclose(total, va.loc[total.index], atol=100)
    ssr = market.table("short_sale_report")
    assert (ssr["ShrtPosToSO"] > 0).all() and (ssr["DiscDate"] > ssr["CalcDate"]).all()
    assert ssr["PrevRptDate"].isna().any() and (ssr["PrevRptDate"].dropna() < ssr.loc[ssr["PrevRptDate"].notna(),
                                                                                     "CalcDate"]).all()


def test_breakdown_adds_up_to_the_bars(market: SyntheticMarket) -> None:
    bd = market.table("breakdown")
    bars = market.table("bars_daily")
    traded = bars[bars["C"].notna() & (bars["Date"] >= pd.Timestamp("2015-04-01"))]
    assert len(bd) == len(traded)
    sell = ["LongSell", "ShrtNoMrgn", "MrgnSellNew", "MrgnSellClose"]
    buy = ["LongBuy", "MrgnBuyNew", "MrgnBuyClose"]
    for side in (sell, buy):
        assert (bd[[s + "Vo" for s in side]].sum(axis=1).to_numpy() == traded["Vo"].to_numpy()).all()
        assert np.allclose(bd[[s + "Va" for s in side]].sum(axis=1).to_numpy(), traded["Va"].to_numpy())
    assert (bd.drop(columns=["Date", "Code"]) >= 0).all().all()


@pytest.mark.parametrize("name", ["futures", "options", "options_225"])
def test_derivatives(market: SyntheticMarket, name: str) -> None:
    df = market.table(name)
    px = df.dropna(subset=["C"])
    assert ((px["L"] <= px[["O", "C"]].min(axis=1)) & (px[["O", "C"]].max(axis=1) <= px["H"])).all()
    assert (df["LTD"] < df["SQD"]).all() and (df["Date"] <= df["LTD"]).all()
    assert df["Code"].str.len().eq(9).all() and not df.duplicated(["Date", "Code"]).any()
    assert df["Date"].isin(market.business_days("equity")).all()
    if name != "futures":
        assert set(df["PCDiv"]) == {"1", "2"} and (df["Settle"] > 0).all()
