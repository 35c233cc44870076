"""Synthetic daily bars obey the TSE's rules and J-Quants' conventions; TOPIX is their cap-weighted index."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuetl.synth import MarketConfig, SyntheticMarket, cached_market
from gpuetl.synth.ticks import limit_prices, limit_width, round_to_tick, tick_size

CONFIG = MarketConfig(codes=80, start="2020-07-01", end="2024-12-27", seed=11, splits_per_year=0.08)
PRICES = ["O", "H", "L", "C", "Vo", "Va"]


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return cached_market(CONFIG)


@pytest.fixture(scope="module")
def bars(market: SyntheticMarket) -> pd.DataFrame:
    return market.table("bars_daily")


@pytest.fixture(scope="module")
def traded(bars: pd.DataFrame) -> pd.DataFrame:
    return bars[bars["C"].notna()]


def test_tick_and_limit_tables() -> None:
    assert list(tick_size(np.array([100.0, 3000.0, 3001.0, 30000.0, 30001.0]))) == [1, 1, 5, 10, 50]
    assert list(tick_size(np.array([999.0, 1500.0]), fine=True)) == [0.1, 0.5]
    assert list(round_to_tick(np.array([1234.4, 3712.0, 512.37]), np.array([False, False, True]))) == [
        1234.0, 3710.0, 512.4]
    assert list(limit_width(np.array([99.0, 100.0, 999.0, 1000.0, 4999.0]))) == [30, 50, 150, 300, 700]
    lo, hi = limit_prices(np.array([20.0, 1000.0]))
    assert list(lo) == [1.0, 700.0] and list(hi) == [50.0, 1300.0]


def test_ohlc_consistent(traded: pd.DataFrame) -> None:
    o, h, low, c = (traded[k].to_numpy() for k in "OHLC")
    assert (low <= np.minimum(o, c)).all() and (np.maximum(o, c) <= h).all() and (low > 0).all()
    assert (traded["Vo"] % 100 == 0).all() and (traded["Vo"] > 0).all()
    vwap = traded["Va"] / traded["Vo"]
    assert (vwap >= low - 0.01).all() and (vwap <= h + 0.01).all()


def test_sessions_consistent_with_the_day(traded: pd.DataFrame) -> None:
    t = traded
    assert (t["MO"] == t["O"]).all() and (t["AC"] == t["C"]).all()
    assert (np.maximum(t["MH"], t["AH"]) == t["H"]).all() and (np.minimum(t["ML"], t["AL"]) == t["L"]).all()
    for s in "MA":
        assert (t[f"{s}L"] <= np.minimum(t[f"{s}O"], t[f"{s}C"])).all()
        assert (np.maximum(t[f"{s}O"], t[f"{s}C"]) <= t[f"{s}H"]).all()
    assert (t["MVo"] + t["AVo"] == t["Vo"]).all() and np.allclose(t["MVa"] + t["AVa"], t["Va"])
    assert (t["AUL"] == t["UL"]).all()


def test_prices_on_ticks(market: SyntheticMarket, traded: pd.DataFrame) -> None:
    fine = traded["Code"].map(market.truth["universe"].set_index("Code")["FineTick"]).to_numpy()
    free = ~(traded["UL"] | traded["LL"]).to_numpy()  # a limit price need not be on the tick grid
    c = traded["C"].to_numpy()[free]
    steps = c / tick_size(c, fine[free])
    assert np.allclose(steps, np.round(steps), atol=1e-6)
    assert fine.any() and (traded["C"] % 1 != 0).any()  # TOPIX100 issues trade in 0.1-yen ticks


def test_no_trade_rows_are_null_together(market: SyntheticMarket, bars: pd.DataFrame) -> None:
    empty = bars["C"].isna()
    assert empty.any()
    nulls = [c for c in bars.columns if c not in ("Date", "Code", "UL", "LL", "AdjFactor", "MUL", "MLL", "AUL", "ALL")]
    assert bars.loc[empty, nulls].isna().all().all()
    assert bars.loc[~empty, nulls].notna().all().all()
    assert not bars.loc[empty, ["UL", "LL"]].any().any() and (bars.loc[empty, "AdjFactor"] == 1.0).all()
    outage = bars[bars["Date"] == pd.Timestamp("2020-10-01")]
    assert len(outage) > 0 and outage["C"].isna().all()


def test_no_bars_outside_listing(market: SyntheticMarket, bars: pd.DataFrame) -> None:
    u = market.truth["universe"].set_index("Code")
    lo = bars["Code"].map(u["ListDate"]).fillna(pd.Timestamp("1900-01-01"))
    hi = bars["Code"].map(u["DelistDate"]).fillna(pd.Timestamp("2200-01-01"))
    assert ((bars["Date"] >= lo) & (bars["Date"] < hi)).all()
    listed_later = u.index[u["ListDate"].notna()]
    assert bars[bars["Code"].isin(listed_later)].groupby("Code")["Date"].min().eq(u.loc[listed_later, "ListDate"]).all()
    master = market.table("master")
    pd.testing.assert_frame_equal(master[["Date", "Code"]], bars[["Date", "Code"]])


def test_limit_flags_match_the_limit_table(market: SyntheticMarket, bars: pd.DataFrame) -> None:
    fine = market.truth["universe"].set_index("Code")["FineTick"]
    df = bars[["Code", "Date", "C", "H", "L", "UL", "LL", "AdjFactor"]].copy()
    df["prev"] = df.groupby("Code")["C"].transform(lambda s: s.ffill().shift())
    df = df[df["C"].notna() & df["prev"].notna() & (df["AdjFactor"] == 1.0)]
    base = round_to_tick(df["prev"].to_numpy(), df["Code"].map(fine).to_numpy())
    lo, hi = limit_prices(base)
    assert (df["H"] <= hi).all() and (df["L"] >= lo).all()
    assert np.array_equal(df["UL"].to_numpy(bool), df["C"].to_numpy() == hi)
    assert np.array_equal(df["LL"].to_numpy(bool), df["C"].to_numpy() == lo)
    assert df["UL"].sum() > 0 and df["LL"].sum() > 0


def test_splits_adjfactor_and_restated_adjusted_prices(market: SyntheticMarket, bars: pd.DataFrame) -> None:
    splits = market.truth["splits"]
    assert len(splits) >= 3
    factors = bars[bars["AdjFactor"] != 1.0]
    assert len(factors) == len(splits)
    by_code = {code: g.reset_index(drop=True) for code, g in bars.groupby("Code")}
    for row in splits.itertuples():
        g = by_code[row.Code]
        i = int(np.flatnonzero(g["Date"] == row.ExDate)[0])
        assert g.loc[i, "AdjFactor"] == pytest.approx(1.0 / row.Ratio, abs=1e-6)
        prev = g["C"].iloc[:i].dropna().iloc[-1]
        raw_jump = np.log(g.loc[i, "C"] / prev)
        adj_jump = np.log(g.loc[i, "AdjC"] / g["AdjC"].iloc[:i].dropna().iloc[-1])
        assert abs(raw_jump + np.log(row.Ratio)) < 0.35  # raw prices drop by the ratio
        assert abs(adj_jump) < 0.35  # adjusted prices are continuous across the split
        # J-Quants' rule: earlier rows are restated by the product of every later factor
        later = g["AdjFactor"].iloc[1:].prod()
        assert g.loc[0, "AdjC"] == pytest.approx(round(g.loc[0, "C"] * later, 1)) or np.isnan(g.loc[0, "C"])
        assert g.loc[i - 1, "AdjC"] != g.loc[i - 1, "C"] or np.isnan(g.loc[i - 1, "C"])
    untouched = ~bars["Code"].isin(splits["Code"])
    assert (bars.loc[untouched, "AdjC"].fillna(-1) == bars.loc[untouched, "C"].fillna(-1)).all()


def test_topix_is_the_cap_weighted_index_of_the_bars(market: SyntheticMarket, bars: pd.DataFrame) -> None:
    u = market.truth["universe"].set_index("Code")
    members = u.index[u["TopixMember"]]
    b = bars[bars["Code"].isin(members)]
    close = b.pivot(index="Date", columns="Code", values="C")
    listed = close.notna() | b.pivot(index="Date", columns="Code", values="AdjFactor").notna()
    splits = market.truth["splits"]
    ratio = pd.DataFrame(1.0, index=close.index, columns=close.columns)
    for s in splits[splits["Code"].isin(close.columns)].itertuples():
        ratio.loc[s.ExDate, s.Code] = s.Ratio
    shares = ratio.cumprod() * u.loc[close.columns, "Shares0"]
    last = close.ffill()
    cap = last * shares
    both = listed & listed.shift(fill_value=False) & last.notna() & last.shift().notna()
    growth = cap.where(both).sum(axis=1) / cap.shift().where(both).sum(axis=1)
    level = CONFIG.index_base * growth.iloc[1:].cumprod()
    topix = market.table("topix").set_index("Date")["C"]
    assert topix.iloc[0] == CONFIG.index_base
    assert np.allclose(topix.iloc[1:], level, rtol=1e-9, atol=0.006)
    t = market.table("topix")
    assert ((t["L"] <= t[["O", "C"]].min(axis=1)) & (t[["O", "C"]].max(axis=1) <= t["H"])).all()
    outage = t[t["Date"] == pd.Timestamp("2020-10-01")].iloc[0]
    assert outage["O"] == outage["H"] == outage["L"] == outage["C"]
    indices = market.table("indices")
    assert (indices[indices["Code"] == "0000"]["C"].to_numpy() == topix.to_numpy()).all()
    assert indices.groupby("Date").size().nunique() == 1 and {"0040", "0060", "0028"} <= set(indices["Code"])


def test_returns_have_fat_tails_and_volatility_clustering(market: SyntheticMarket) -> None:
    r = market.truth["factors"]["market"].to_numpy()
    z = (r - r.mean()) / r.std()
    assert (z**4).mean() > 3.5  # excess kurtosis
    a = np.abs(z)
    assert np.corrcoef(a[1:], a[:-1])[0, 1] > 0.05  # |r| autocorrelation
