"""Synthetic statements, dividends and the earnings calendar: timing variety, YTD arithmetic, revisions,
corrections, splits, and a price reaction on the first close after each disclosure."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gpuetl.jquants import spec
from gpuetl.synth import MarketConfig, SyntheticMarket, cached_market

CONFIG = MarketConfig(codes=80, start="2020-07-01", end="2024-12-27", seed=11, splits_per_year=0.08)
STATEMENT = r"^(1Q|2Q|3Q|FY)FinancialStatements_"


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return cached_market(CONFIG)


@pytest.fixture(scope="module")
def fins(market: SyntheticMarket) -> pd.DataFrame:
    return market.table("fins_summary")


def _closed_next_day(market: SyntheticMarket, dates: pd.Series) -> np.ndarray:
    open_days = set(market.business_days("equity"))
    return np.array([d + pd.Timedelta(days=1) not in open_days for d in dates])


def test_disclosure_times_vary_around_the_close(market: SyntheticMarket, fins: pd.DataFrame) -> None:
    times = fins["DiscTime"]
    assert {"15:00:00", "15:30:00"} <= set(times)
    assert (times < "15:00:00").sum() > 50 and (times > "15:30:00").sum() > 50
    late = fins[times >= "15:00:00"]
    assert (late["DiscDate"].dt.day_of_week == 4).sum() > 10  # Friday evenings
    weekday_before_holiday = _closed_next_day(market, late["DiscDate"]) & (late["DiscDate"].dt.day_of_week < 4)
    assert weekday_before_holiday.sum() > 0  # the evening before a holiday
    after_1530_switch = fins[fins["DiscDate"] >= pd.Timestamp("2024-11-05")]
    assert (after_1530_switch["DiscTime"] == "15:30:00").any()


def test_doc_types_are_official_and_disc_numbers_unique(fins: pd.DataFrame) -> None:
    official = {r["DocumentType"] for t in spec.reference_data() if t["name"] == "disclosure_document_types"
                for r in t["reference_data"]}
    assert set(fins["DocType"]) <= official
    assert {"EarnForecastRevision", "FYFinancialStatements_Consolidated_JP",
            "1QFinancialStatements_Consolidated_IFRS"} <= set(fins["DocType"])
    assert fins["DiscNo"].is_unique and (fins["DiscNo"].str.len() == 14).all()
    assert fins["DiscNo"].is_monotonic_increasing and fins["DiscDate"].is_monotonic_increasing
    ifrs = fins[fins["DocType"].str.endswith("_IFRS")]
    assert ifrs["OdP"].isna().all() and fins.loc[fins["DocType"].str.endswith("_JP"), "OdP"].notna().any()


def test_lags_and_cumulative_ytd(fins: pd.DataFrame) -> None:
    st = fins[fins["DocType"].str.match(STATEMENT)].drop_duplicates(["Code", "CurPerEn", "CurPerType"])
    lag = (st["DiscDate"] - st["CurPerEn"]).dt.days
    assert lag.between(25, 115).all() and lag.between(25, 55).mean() > 0.95  # corrections come later
    assert (st["CurPerSt"] == st["CurFYSt"]).all()  # P/L periods run from the start of the fiscal year
    order = {"1Q": 1, "2Q": 2, "3Q": 3, "FY": 4}
    st = st.assign(q=st["CurPerType"].map(order)).sort_values(["Code", "CurFYSt", "q"])
    growing = st.groupby(["Code", "CurFYSt"])["Sales"].apply(lambda s: bool((s.diff().dropna() > 0).all()))
    assert growing.mean() > 0.99
    fy = st[st["CurPerType"] == "FY"]
    assert fy["NxFSales"].notna().all() and fy["FSales"].isna().all() and fy["NxtFYSt"].notna().all()
    q = st[st["CurPerType"] != "FY"]
    assert q["FSales"].notna().all() and q["NxFSales"].isna().all() and q["NxtFYSt"].isna().all()
    assert (st["EqAR"].between(0.0, 1.0)).all() and (st["BPS"] > 0).all()
    assert np.allclose(st["EPS"], (st["NP"] / st["AvgSh"]).round(2), atol=0.011)


def test_revisions_carry_only_forecasts_and_change_later_documents(fins: pd.DataFrame) -> None:
    rev = fins[fins["DocType"] == "EarnForecastRevision"]
    assert len(rev) > 0
    assert rev[["Sales", "OP", "NP", "EPS", "TA", "Eq"]].isna().all().all() and rev["FSales"].notna().all()
    st = fins[fins["DocType"].str.match(r"^[123]Q")]
    carried = 0
    for r in rev.itertuples():
        later = st[(st["Code"] == r.Code) & (st["CurFYSt"] == r.CurFYSt) & (st["DiscNo"] > r.DiscNo)]
        if len(later):
            assert later["FSales"].iloc[0] == r.FSales
            carried += 1
    assert carried > 0


def test_corrected_filings_repeat_a_period_later(fins: pd.DataFrame) -> None:
    st = fins[fins["DocType"].str.match(STATEMENT)]
    dup = st[st.duplicated(["Code", "CurPerType", "CurPerEn"], keep=False)]
    assert len(dup) > 0
    for _, g in dup.groupby(["Code", "CurPerType", "CurPerEn"]):
        assert g["DiscNo"].nunique() == len(g) and g["DiscDate"].iloc[-1] > g["DiscDate"].iloc[0]


def test_shares_follow_splits(market: SyntheticMarket, fins: pd.DataFrame) -> None:
    st = fins[fins["DocType"].str.match(STATEMENT)]
    splits = market.truth["splits"]
    checked = 0
    for s in splits.itertuples():
        g = st[st["Code"] == s.Code]
        before, after = g[g["CurPerEn"] < s.ExDate], g[g["CurPerEn"] >= s.ExDate]
        if len(before) and len(after):
            lo, hi = before["CurPerEn"].iloc[-1], after["CurPerEn"].iloc[0]
            between = splits[(splits["Code"] == s.Code) & (splits["ExDate"] > lo) & (splits["ExDate"] <= hi)]
            expected = before["ShOutFY"].iloc[-1] * between["Ratio"].prod()
            assert after["ShOutFY"].iloc[0] == pytest.approx(expected, rel=1e-3)
            checked += 1
    assert checked > 0


def test_sig_chg_only_from_2024_07_22(fins: pd.DataFrame) -> None:
    early = fins["DiscDate"] < pd.Timestamp("2024-07-22")
    assert fins.loc[early, "SigChgInC"].isna().all() and fins.loc[~early, "SigChgInC"].notna().any()


def test_prices_react_on_the_first_close_after_disclosure(market: SyntheticMarket, fins: pd.DataFrame) -> None:
    bars = market.table("bars_daily")
    prev = bars.groupby("Code")["C"].transform(lambda s: s.ffill().shift())
    bars = bars.assign(r=np.log(bars["C"] / (prev * bars["AdjFactor"])).abs())
    days = market.business_days("equity")
    st = fins[fins["DocType"].str.match(STATEMENT)].drop_duplicates(["Code", "CurPerEn", "CurPerType"])
    close = np.where(st["DiscDate"] >= pd.Timestamp("2024-11-05"), "15:30:00", "15:00:00")
    same_day = st["DiscTime"].to_numpy() < close
    nxt = days[np.searchsorted(days, st["DiscDate"], side="right")]
    effective = np.where(same_day, st["DiscDate"], nxt)
    keys = pd.DataFrame({"Code": st["Code"].to_numpy(), "Date": effective})
    hit = bars.merge(keys, on=["Code", "Date"])["r"].mean()
    assert hit > 1.3 * bars["r"].mean()


def test_fins_details_one_map_per_statement(market: SyntheticMarket, fins: pd.DataFrame) -> None:
    det = market.table("fins_details")
    st = fins[fins["DocType"].str.match(STATEMENT)]
    assert list(det["DiscNo"]) == list(st["DiscNo"])
    fs = json.loads(det["FS"].iloc[0])
    assert {"EDINET code, DEI", "Accounting standards, DEI", "Type of current period, DEI"} <= set(fs)
    assert all(isinstance(v, str) for v in fs.values())


def test_dividends(market: SyntheticMarket, fins: pd.DataFrame) -> None:
    div = market.table("dividend")
    days = set(market.business_days("equity"))
    assert div["ExDate"].isin(days).all() and (div["ExDate"] < div["RecDate"] + pd.Timedelta(days=1)).all()
    t2 = div[div["RecDate"] >= pd.Timestamp("2021-01-01")]
    assert ((t2["RecDate"] - t2["ExDate"]).dt.days <= 4).all()
    decided = div[(div["FRCode"] == "1") & (div["StatCode"] == "1")]
    assert (decided["PayDate"] > decided["RecDate"]).all()
    assert div.loc[div["FRCode"] == "2", "PayDate"].isna().all() and div["DivRate"].isna().any()
    assert set(div["StatCode"]) == {"1", "2", "3"} and div["RefNo"].is_unique
    fixes = div[div["StatCode"] != "1"]
    assert fixes["CARefNo"].isin(div.loc[div["StatCode"] == "1", "RefNo"]).all()
    fy = fins[fins["DocType"].str.startswith("FYFinancial")].drop_duplicates(["Code", "CurPerEn"])
    year_end = decided[decided["IFCode"] == "2"].merge(fy, left_on=["Code", "RecDate"], right_on=["Code", "CurPerEn"])
    assert len(year_end) > 0 and (year_end["DivRate"] == year_end["DivFY"]).all()


def test_earnings_calendar_is_a_snapshot_after_end(market: SyntheticMarket) -> None:
    ec = market.table("earnings_calendar")
    assert len(ec) > 0 and (ec["Date"].dropna() > pd.Timestamp(CONFIG.end)).all()
    assert set(ec["FY"]) <= {"3月31日", "9月30日"} and ec["Code"].is_unique
    assert set(ec["Section"]) <= {"プライム", "スタンダード", "グロース"}


def test_owners_equity_and_roe_are_consistent(market: SyntheticMarket, fins: pd.DataFrame) -> None:
    """ShEq <= Eq where Eq is reported (equal for non-consolidated filers); ROE = NP / ShEq in FY documents only."""
    fy = fins["DocType"].str.startswith("FY").to_numpy()
    eq, sh = fins["Eq"].to_numpy(), fins["ShEq"].to_numpy()
    assert np.array_equal(np.isnan(eq), np.isnan(sh)) and np.all(sh[~np.isnan(eq)] <= eq[~np.isnan(eq)])
    consolidated = fins["DocType"].str.contains("_Consolidated_").to_numpy()
    assert np.array_equal(sh[~consolidated & ~np.isnan(eq)], eq[~consolidated & ~np.isnan(eq)])
    roe = fins["ROE"].to_numpy()
    assert np.isnan(roe[~fy]).all() and fy.any()
    np.testing.assert_allclose(roe[fy], np.round(fins["NP"].to_numpy()[fy] / sh[fy], 4), equal_nan=True)
    nc = fins["NCEq"].notna().to_numpy()
    assert np.array_equal(fins["NCShEq"].to_numpy()[nc], fins["NCEq"].to_numpy()[nc])
    np.testing.assert_allclose(fins["NCROE"].to_numpy()[fy & nc],
                               (fins["NCNP"] / fins["NCEq"]).to_numpy()[fy & nc], atol=5e-5)
