"""Cross-sectional, market, sector, calendar features and targets against pandas and hand-built cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from gpuetl import ops
from gpuetl.backend import Backend
from gpuetl.dataset.registry import REGISTRY
from gpuetl.dates import BusinessCalendar
from gpuetl.features.cross_section import cs_rank, cs_rankgauss, cs_zscore
from gpuetl.features.normalize import normalized, time_series_zscore
from gpuetl.features.panel import Panel
from tests._testing import assert_backend_equal, host
from tests.support.panels import make_panel, random_walk_frame


def day_frame(seed: int = 0) -> pd.DataFrame:
    """A panel of codes over common days (some missing rows and NaNs) with sectors and a TOPIX."""
    df = random_walk_frame(seed=seed, lengths=(120, 120, 120, 120, 120, 90), gaps=0.05)
    df["sector"] = df["code"].map({0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: np.nan})
    return df.drop(index=df.index[7:9]).reset_index(drop=True)


def build(backend: Backend, df: pd.DataFrame) -> Panel:
    panel = make_panel(backend, df)
    panel.columns["sector"] = backend.xp.asarray(df["sector"].to_numpy(dtype=float))
    dates = np.sort(df["date"].unique())
    topix = 1000 * np.exp(np.cumsum(np.random.default_rng(5).standard_normal(len(dates)) * 0.01))
    panel.add_date_series("mkt_close", backend.xp.asarray(dates.astype("datetime64[D]").astype(np.int64)),
                          backend.xp.asarray(topix))
    return panel


def test_rank_zscore_rankgauss_match_pandas_per_day(backend: Backend) -> None:
    df = day_frame()
    panel = build(backend, df)
    x = panel.pct_change(panel["close"], 1)
    s = pd.Series(host(backend, x))
    g = s.groupby(df["date"])
    assert_backend_equal(host(backend, cs_rank(panel, x)), g.rank(pct=True), tol="rounding")
    z = ((s - g.transform("mean")) / g.transform("std")).clip(-2.0, 2.0)
    assert_backend_equal(host(backend, cs_zscore(panel, x, 2.0)), z, tol="rounding")
    rg = norm.ppf((g.rank() - 0.5) / g.transform("count"))
    assert_backend_equal(host(backend, cs_rankgauss(panel, x)), rg, tol="rounding")
    value, missing = normalized(panel, x, "cross_section", "zscore", 3.0)
    assert_backend_equal(host(backend, missing), s.isna().to_numpy().astype(float), tol="exact")  # the raw value
    assert_backend_equal(host(backend, value), z.fillna(0.0), tol="rounding")


def test_targets_forward_returns_excess_and_labels(backend: Backend) -> None:
    df = day_frame(1)
    panel = build(backend, df)
    dates = host(backend, panel.unique_dates)
    topix = host(backend, panel.date_columns["mkt_close"])
    out = ops.run(REGISTRY["targets"], panel, {"horizons": (1, 5)})  # TOPIX: the panel's mkt_close
    fwd = df.groupby("code")["C"].shift(-5) / df["C"] - 1  # adjusted == raw here (no splits)
    assert_backend_equal(host(backend, out["target_ret_5d"]), fwd, tol="rounding")
    tfwd = pd.Series(topix).shift(-5) / pd.Series(topix) - 1
    day_ix = np.searchsorted(dates, df["date"].to_numpy().astype("datetime64[D]").astype(np.int64))
    assert_backend_equal(host(backend, out["target_excess_5d"]), fwd - tfwd.to_numpy()[day_ix], tol="rounding")
    up = host(backend, out["target_up_5d"])
    assert set(np.unique(up[~np.isnan(up)])) <= {0.0, 1.0}
    assert_backend_equal(np.isnan(up), fwd.isna(), tol="exact")
    # the last 5 rows of every code have no full horizon: NaN, but the rows are kept
    assert len(up) == len(df)
    last = df.groupby("code").tail(5).index
    assert np.isnan(host(backend, out["target_ret_5d"])[last]).all()


def test_next_day_targets_start_at_the_next_close(backend: Backend) -> None:
    """The tradeable family: close t+1 -> close t+1+k (qlib / JPX), against a pandas shift reference, with a
    split inside the horizon (adjusted prices) and missing rows."""
    df = random_walk_frame(seed=4, lengths=(80, 80, 60), gaps=0.05, splits=True)
    panel = make_panel(backend, df)
    dates = np.sort(df["date"].unique()).astype("datetime64[D]").astype(np.int64)
    topix = 1000 * np.exp(np.cumsum(np.random.default_rng(6).standard_normal(len(dates)) * 0.01))
    panel.add_date_series("mkt_close", backend.xp.asarray(dates), backend.xp.asarray(topix))
    out = ops.run(REGISTRY["targets"], panel, {"horizons": (1, 5)})
    adj = df["C"] / df.groupby("code")["AdjFactor"].cumprod()  # forward-cumulated split adjustment
    g = adj.groupby(df["code"])
    day_ix = np.searchsorted(dates, df["date"].to_numpy().astype("datetime64[D]").astype(np.int64))
    t = pd.Series(topix)
    for k in (1, 5):
        want = (g.shift(-(k + 1)) / g.shift(-1) - 1).to_numpy()
        assert_backend_equal(host(backend, out[f"target_next_ret_{k}d"]), want, tol="rounding")
        tnext = (t.shift(-(k + 1)) / t.shift(-1) - 1).to_numpy()[day_ix]
        assert_backend_equal(host(backend, out[f"target_next_excess_{k}d"]), want - tnext, tol="sum_order")
        # the last k + 1 rows of each code have no complete next-day horizon
        last = df.groupby("code").tail(k + 1).index
        assert np.isnan(host(backend, out[f"target_next_ret_{k}d"])[last]).all()
        # and the family differs from close t -> t+k (it starts a day later)
        assert not np.allclose(host(backend, out[f"target_next_ret_{k}d"]), host(backend, out[f"target_ret_{k}d"]),
                               equal_nan=True)


def test_market_and_beta_match_pandas(backend: Backend) -> None:
    df = day_frame(2)
    panel = build(backend, df)
    mkt = ops.run(REGISTRY["market"], panel, {"horizons": (1, 5), "vol_window": 20, "trend_window": 20})
    beta = ops.run(REGISTRY["beta"], panel, {"windows": (20,)})
    topix = pd.Series(host(backend, panel.date_columns["mkt_close"]))
    ret5 = (topix / topix.shift(5) - 1).to_numpy()
    day_ix = host(backend, panel.date_id)
    assert_backend_equal(host(backend, mkt["mkt_ret_5d"]), ret5[day_ix], tol="rounding")
    # beta: pandas rolling cov / var per code on jointly-present daily returns
    m_row = pd.Series(host(backend, panel["mkt_close"]))
    r = df.groupby("code")["C"].pct_change(fill_method=None)
    m = m_row.groupby(df["code"]).pct_change(fill_method=None)
    both = r.notna() & m.notna()
    r, m = r.where(both), m.where(both)
    frame = pd.DataFrame({"r": r, "m": m, "code": df["code"]})
    want_beta, want_corr = [], []
    for _, g in frame.groupby("code", sort=True):
        cov = g["r"].rolling(20).cov(g["m"], ddof=0)
        want_beta.append(cov / g["m"].rolling(20).var(ddof=0))
        want_corr.append(g["r"].rolling(20).corr(g["m"]))
    assert_backend_equal(host(backend, beta["beta_20d"]), pd.concat(want_beta).sort_index(), tol="rolling_moments")
    assert_backend_equal(host(backend, beta["mkt_corr_20d"]), pd.concat(want_corr).sort_index(),
                         tol="rolling_moments")


def test_sector_relative_matches_pandas(backend: Backend) -> None:
    df = day_frame(3)
    panel = build(backend, df)
    out = ops.run(REGISTRY["sector_relative"], panel, {"horizons": (1,)})
    ret = df.groupby("code")["C"].pct_change(fill_method=None)
    g = ret.groupby([df["date"], df["sector"]])
    mean = g.transform("mean")
    assert_backend_equal(host(backend, out["sector_ret_1d"]), mean, tol="rounding")
    assert_backend_equal(host(backend, out["ret_vs_sector_1d"]), ret - mean, tol="sum_order")
    assert_backend_equal(host(backend, out["sector_rank_1d"]), g.rank(pct=True), tol="rounding")
    assert np.isnan(host(backend, out["sector_ret_1d"])[df["sector"].isna().to_numpy()]).all()


def jp_calendar(lo: str, hi: str, holidays: list[str]) -> pd.DataFrame:
    days = pd.date_range(lo, hi)
    open_ = (days.day_of_week < 5) & ~days.isin(pd.to_datetime(holidays))
    return pd.DataFrame({"Date": days, "HolDiv": np.where(open_, "1", "0")})


def calendar_of(backend: Backend, frame: pd.DataFrame) -> BusinessCalendar:
    xdf = backend.xdf
    return BusinessCalendar.from_frame(backend, xdf.DataFrame({"Date": frame["Date"], "HolDiv": frame["HolDiv"]}))


HOLIDAYS = ["2000-01-03", "2000-01-10", "2000-03-20", "2000-12-29", "2001-01-01", "2001-01-02", "2001-03-20"]


def test_calendar_comes_from_the_trading_calendar_not_from_the_rows(backend: Backend) -> None:
    """Issue 10.1: a panel ending mid-month (2001-03-05) must not call its last day a month end; business days of
    the month come from the lake's calendar (holidays included), published ahead of the data."""
    cal_frame = jp_calendar("1999-12-01", "2001-06-30", HOLIDAYS)
    open_days = cal_frame.loc[cal_frame["HolDiv"] == "1", "Date"]
    dates = open_days[(open_days >= "1999-12-27") & (open_days <= "2001-03-05")]
    dates = dates.drop(dates.index[[5, 40]])  # rows can be missing too: the calendar, not the rows, counts
    df = pd.DataFrame({"code": 0, "date": dates.to_numpy(), "O": 1.0, "H": 1.0, "L": 1.0, "C": 1.0, "Vo": 1.0,
                       "Va": 1.0, "AdjFactor": 1.0})
    panel = make_panel(backend, df)
    panel.calendar = calendar_of(backend, cal_frame)
    cal = {k: host(backend, v) for k, v in ops.run(REGISTRY["calendar"], panel, {}).items()}
    d = pd.DatetimeIndex(df["date"])
    assert_backend_equal(cal["cal_dow"], d.day_of_week, tol="exact")
    assert_backend_equal(cal["cal_month"], d.month, tol="exact")
    assert_backend_equal(cal["cal_day"], d.day, tol="exact")
    # reference: count the calendar's open days of the month before and after each date
    month = open_days.dt.to_period("M")
    before = [int(((month == p) & (open_days < t)).sum()) for t, p in zip(d, d.to_period("M"), strict=True)]
    after = [int(((month == p) & (open_days > t)).sum()) for t, p in zip(d, d.to_period("M"), strict=True)]
    assert_backend_equal(cal["cal_bday_of_month"], before, tol="exact")
    assert_backend_equal(cal["cal_bdays_to_month_end"], after, tol="exact")
    assert_backend_equal(cal["cal_month_end"], np.array(after) == 0, tol="exact")
    assert cal["cal_month_end"][-1] == 0 and cal["cal_bdays_to_month_end"][-1] == 18  # 2001-03-05: not a month end
    assert cal["cal_month_end"][d == "2000-12-28"] == 1  # the 29th is a holiday: the 28th closes the year
    mat = host(backend, ops.run(REGISTRY["maturity"], panel, {"windows": (20,)})["mature_20d"])
    assert mat[:20].sum() == 0 and mat[20:].all()


def test_calendar_features_need_a_calendar_that_covers_the_month(backend: Backend) -> None:
    cal_frame = jp_calendar("2000-01-01", "2000-03-15", [])  # published to mid-March only
    dates = cal_frame.loc[cal_frame["HolDiv"] == "1", "Date"]
    df = pd.DataFrame({"code": 0, "date": dates.to_numpy(), "O": 1.0, "H": 1.0, "L": 1.0, "C": 1.0, "Vo": 1.0,
                       "Va": 1.0, "AdjFactor": 1.0})
    panel = make_panel(backend, df)
    panel.calendar = calendar_of(backend, cal_frame)
    cal = {k: host(backend, v) for k, v in ops.run(REGISTRY["calendar"], panel, {}).items()}
    march = pd.DatetimeIndex(df["date"]).month == 3
    for name in ("cal_bday_of_month", "cal_bdays_to_month_end", "cal_month_end"):
        assert np.isnan(cal[name][march]).all() and not np.isnan(cal[name][~march]).any(), name
    panel.calendar = None  # a lake without a calendar: those three are missing, the rest are still known
    cal = {k: host(backend, v) for k, v in ops.run(REGISTRY["calendar"], panel, {}).items()}
    assert np.isnan(cal["cal_month_end"]).all() and not np.isnan(cal["cal_dow"]).any()


def test_per_day_statistics_use_only_that_day(backend: Backend) -> None:
    """Leakage rule for cross-sections: changing every value on other days leaves a day's ranks/z-scores alone."""
    df = day_frame(4)
    panel = build(backend, df)
    xp = backend.xp
    x = panel.pct_change(panel["close"], 1)
    day = panel.unique_dates[40]
    other = panel.dates != day
    y = xp.where(other, x * 7.0 + 1.0, x)
    for fn in (cs_rank, cs_rankgauss):
        np.testing.assert_array_equal(host(backend, fn(panel, x))[~host(backend, other)],
                                      host(backend, fn(panel, y))[~host(backend, other)])
    z_x, z_y = (host(backend, cs_zscore(panel, v, 3.0))[~host(backend, other)] for v in (x, y))
    # libcudf's hash groupby adds in no fixed order: on the GPU, equal to the last bits only
    assert_backend_equal(z_x, z_y, tol="sum_order" if backend.is_gpu else "exact")


@pytest.mark.parametrize("method", ["zscore", "rankgauss"])
def test_normalize_fills_missing_and_flags_it(backend: Backend, method: str) -> None:
    df = day_frame(5)
    panel = build(backend, df)
    value, missing = normalized(panel, panel["close"], "cross_section", method, 3.0)  # type: ignore[arg-type]
    assert np.isfinite(host(backend, value)).all()
    assert_backend_equal(host(backend, missing) == 1.0, np.isnan(host(backend, panel["close"])), tol="exact")


def day_constant(backend: Backend, panel: Panel) -> object:
    """A market-wide value per day (the same for every code), mostly not a multiple of a power of two."""
    per_day = np.random.default_rng(3).standard_normal(len(panel.unique_dates)) * 0.01 + 1.0 / 3.0
    return panel.broadcast_dates(backend.xp.asarray(per_day))


def test_a_day_constant_feature_keeps_its_information_as_a_time_series(backend: Backend) -> None:
    """Issue 10.3: across codes a market-wide value has no spread (its cross-sectional z-score is 0 on every row,
    and it is not missing); its `time_series` z-score compares the day with its own trailing days (pandas
    reference), so a model still sees the market regime."""
    panel = build(backend, day_frame())
    x = day_constant(backend, panel)
    value, missing = normalized(panel, x, "cross_section", "zscore", 3.0)
    assert not host(backend, missing).any() and not host(backend, value).any()
    z = time_series_zscore(panel, x, "mkt", 30, 10, 3.0)
    per_day = pd.Series(host(backend, x)).groupby(host(backend, panel.date_id)).first()
    roll = per_day.rolling(30, min_periods=10)
    want = ((per_day - roll.mean()) / roll.std()).clip(-3.0, 3.0).to_numpy()[host(backend, panel.date_id)]
    assert_backend_equal(host(backend, z), want, tol="reference_crossing")
    assert np.isnan(host(backend, z)[host(backend, panel.date_id) < 9]).all()  # fewer than 10 days: not computable
    value, missing = normalized(panel, x, "time_series", "zscore", 3.0, z)
    assert np.unique(host(backend, value)).size > 50 and not host(backend, missing).any()
    with pytest.raises(ValueError, match="declared `time_series`"):  # a per-stock column is no market series
        time_series_zscore(panel, panel["close"], "close", 30, 10, 3.0)


