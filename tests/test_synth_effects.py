"""The planted effects are in the prices, with their configured sign and size, and the null market has none.

Each check is an independent NumPy computation on the published bars (raw closes and AdjFactor), not the
generator's arrays: returns less the true market and sector factors (`truth["factors"]`, `truth["loadings"]`)
leave the idiosyncratic part plus whatever is planted, and one pooled regression of it on a stock's own last
week, its 12-1-month non-market return and its leaders' returns at lags 1-3 recovers the loadings (weighted by
each stock's idiosyncratic vol, White standard errors).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from gpuetl.synth import MarketConfig, SyntheticMarket, cached_market
from gpuetl.synth.config import without_signal
from gpuetl.synth.returns import trailing_sum

# The default reversal is strong enough for 250 codes x 4 years to measure its size; the default momentum and
# lead-lag are sized like the published ones (daily RankIC 0.005 or less), too weak for a market this small to
# pin down, so this market states five times each (benchmarks/synth_effects.py measures the defaults on 500
# codes x 9 years). Not more momentum: the observed 12-1-month return also holds the drift planted over those
# 230 days, which inflates the regressor and biases the estimate toward 0 by about 230 * momentum / 2 (10% here).
CONFIG = MarketConfig(codes=250, start="2019-01-04", end="2022-12-30", seed=31, momentum=0.001, lead_lag=0.05)
NAMES = ("reversal", "momentum", "lead 1", "lead 2", "lead 3")


def planted(config: MarketConfig) -> np.ndarray:
    """The loadings the regression should find, in NAMES order."""
    decay = np.zeros(3)
    decay[: len(config.lead_lag_decay[:3])] = config.lead_lag_decay[:3]
    return np.array([-config.reversal, config.momentum, *(config.lead_lag * decay)])


def residuals(m: SyntheticMarket) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(D, N) non-market returns x (less beta * market), idiosyncratic returns e (less the sector part too) and
    the days a price limit bound, from the bars, on every business day (the outage day's row empty); returns are
    NaN after a day without a close (they span two days, the factors one) and 0 on listing days (the IPO pop)."""
    bars = m.table("bars_daily")
    factors = m.truth["factors"]
    close = bars.pivot(index="Date", columns="Code", values="C").reindex(factors.index)
    adj = bars.pivot(index="Date", columns="Code", values="AdjFactor").reindex(factors.index).fillna(1.0)
    limit = (bars.assign(hit=bars["UL"] | bars["LL"]).pivot(index="Date", columns="Code", values="hit")
             .reindex(factors.index).fillna(False).to_numpy(dtype=bool))
    r = np.log(close / (close.shift() * adj)).to_numpy()
    codes = list(close.columns)
    load = m.truth["loadings"].set_index("Code").reindex(codes)
    sector = m.truth["universe"].set_index("Code").reindex(codes)["S33"]
    x = r - factors["market"].to_numpy()[:, None] * load["beta"].to_numpy()[None, :]
    e = x - factors[[f"S33_{c}" for c in sector]].to_numpy() * load["sector_beta"].to_numpy()[None, :]
    first = close.notna().to_numpy().argmax(axis=0)
    late = first > 0
    x[first[late], np.flatnonzero(late)] = 0.0
    e[first[late], np.flatnonzero(late)] = 0.0
    return x, e, limit, codes


def regress(m: SyntheticMarket) -> tuple[np.ndarray, np.ndarray]:
    """Loadings of e[t, i] on (sum_{l=1..5} e[t-l, i], sum_{l=21..250} x[t-l, i], sum_j w_ij x[t-l, j] for l = 1,
    2, 3), pooled over codes and days: the estimates and White t-stats. Rows are weighted by 1 / each stock's
    volatility as known the day before (an EWMA of e^2), since GARCH bursts and Student-t tails would otherwise let
    a few days decide. Returns within a week of a limit day are left out, as rows and in the short regressors: a
    limit holds a move back into the next days, an autocorrelation of the exchange's rules, not a planted effect."""
    cfg = m.config
    x, e, limit, codes = residuals(m)
    near_limit = pd.DataFrame(limit).rolling(6, min_periods=1).max().to_numpy() > 0
    x0, e0 = (np.where(near_limit, 0.0, np.nan_to_num(a)) for a in (x, e))
    pos = {c: k for k, c in enumerate(codes)}
    peers = m.truth["peers"]
    w = np.zeros((len(codes), len(codes)))
    w[peers["follower"].map(pos).to_numpy(), peers["leader"].map(pos).to_numpy()] = peers["weight"].to_numpy()
    lead = x0 @ w.T
    week = sum(np.roll(e0, lag, axis=0) for lag in range(1, 6))
    year = sum(np.roll(np.nan_to_num(x), lag, axis=0) for lag in range(21, 251))  # a limit only moves a return
    columns = [week, year, *(np.roll(lead, lag, axis=0) for lag in (1, 2, 3))]
    idio = m.truth["loadings"].set_index("Code").reindex(codes)["idio_vol"].to_numpy()
    var = pd.DataFrame(e**2).ewm(halflife=20, min_periods=5).mean().shift().to_numpy()  # NaN before listing
    vol = np.sqrt(np.fmax(np.where(np.isfinite(var), var, idio[None, :] ** 2), (0.3 * idio[None, :]) ** 2))
    start = cfg.momentum_lookback  # a full momentum window behind every row
    y = e[start:]
    ok = np.isfinite(y) & ~near_limit[start:]
    sc = 1.0 / vol[start:][ok]
    design = np.column_stack([sc, *(c[start:][ok] * sc for c in columns)])
    target = y[ok] * sc
    xtx_inv = np.linalg.inv(design.T @ design)
    beta = xtx_inv @ design.T @ target
    u = target - design @ beta
    meat = (design * u[:, None] ** 2).T @ design
    se = np.sqrt(np.diag(xtx_inv @ meat @ xtx_inv))
    return beta[1:], beta[1:] / se[1:]


def test_trailing_sum_is_the_windowed_sum_of_earlier_rows() -> None:
    a = np.random.default_rng(0).standard_normal((40, 3))
    for lo, hi in ((1, 1), (1, 5), (21, 30), (3, 60)):
        want = np.array([a[max(t - hi, 0): max(t - lo + 1, 0)].sum(axis=0) for t in range(40)])
        np.testing.assert_allclose(trailing_sum(a, lo, hi), want, atol=1e-12)


@pytest.fixture(scope="module")
def fits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"market": regress(cached_market(CONFIG)), "null": regress(cached_market(without_signal(CONFIG)))}


def test_each_effect_has_its_configured_sign_and_size(fits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    b, t = fits["market"]
    want = planted(CONFIG)
    assert CONFIG.reversal == MarketConfig(codes=1, start="2020-01-06", end="2020-01-06", seed=0).reversal
    report = dict(zip(NAMES, zip(b.round(5), want, t.round(1), strict=True), strict=True))
    assert (np.sign(b[:3]) == np.sign(want[:3])).all() and (np.abs(t[:3]) > 5).all(), report
    # reversal, momentum and the lag-1 lead-lag within 30% of the planted loading (each is > 5 standard errors
    # from 0 here; the regressors hold the earnings jumps and rounding, which bias toward 0 by a few percent)
    assert (np.abs(b[:3] / want[:3] - 1) < 0.3).all(), report
    # the lead-lag fades as lead_lag_decay says: lags 1-3 together carry its total, lag 2 about half of lag 1
    assert abs(b[2:].sum() / want[2:].sum() - 1) < 0.3 and 0.2 < b[3] / b[2] < 0.8, report


def test_the_null_market_has_none_of_them(fits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    null = without_signal(CONFIG)
    assert (null.reversal, null.momentum, null.lead_lag, null.earnings_jump) == (0.0, 0.0, 0.0, 0.0)
    m = cached_market(null)
    assert (m.truth["reversal"], m.truth["momentum"], m.truth["lead_lag"], m.truth["earnings_jump"]) == (0, 0, 0, 0)
    b, t = fits["null"]
    # each estimate indistinguishable from 0, and far below the planted size the same regression finds above
    assert (np.abs(t) < 3).all(), dict(zip(NAMES, zip(b.round(5), t.round(1), strict=True), strict=True))
    assert (np.abs(b[:3]) < 0.2 * np.abs(planted(CONFIG)[:3])).all()


def test_the_truth_records_every_effect() -> None:
    m = cached_market(CONFIG)
    for field in ("reversal", "reversal_days", "momentum", "lead_lag", "in_sector_share", "earnings_jump"):
        assert m.truth[field] == getattr(CONFIG, field), field
    assert m.truth["momentum_window"] == [CONFIG.momentum_skip, CONFIG.momentum_lookback]
    assert all(isinstance(m.truth[f"{name}_rule"], str) for name in ("reversal", "momentum", "lead_lag"))


def test_prices_stay_sane_with_the_effects_planted() -> None:
    bars = cached_market(CONFIG).table("bars_daily")
    traded = bars.dropna(subset=["C"])
    assert (traded[["O", "H", "L", "C"]] > 0).all().all()
    assert np.isfinite(traded[["O", "H", "L", "C", "Vo"]].to_numpy()).all()
    r = np.log(traded["C"] / (traded.groupby("Code")["C"].shift() * traded["AdjFactor"])).dropna()
    assert r.abs().max() < np.log(3.0)  # a daily price limit never allows more
    years = (pd.Timestamp(CONFIG.end) - pd.Timestamp(CONFIG.start)).days / 365.25
    drift = traded.groupby("Code")["C"].agg(lambda c: np.log(c.iloc[-1] / c.iloc[0])).abs()
    assert drift.median() < 1.0 * years  # no runaway feedback: typical moves of tens of percent a year


def test_a_config_without_a_window_is_refused() -> None:
    with pytest.raises(ValueError, match="momentum_skip"):
        MarketConfig(codes=10, start="2020-01-06", end="2020-12-30", seed=0, momentum_skip=30, momentum_lookback=20)
    with pytest.raises(ValueError, match="reversal_days"):
        dataclasses.replace(CONFIG, reversal_days=0)
