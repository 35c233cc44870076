"""The planted lead-lag is in the data: returns over the next days load on the leaders' returns today (fading
with the lag as `lead_lag_decay` says), and not on random peers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from gpuetl.synth import MarketConfig, cached_market

CONFIG = MarketConfig(codes=300, start="2022-01-04", end="2024-06-28", seed=21)


def _returns(bars: pd.DataFrame) -> pd.DataFrame:
    """Daily close-to-close log returns from raw closes and AdjFactor (no restated Adj* columns)."""
    prev = bars.groupby("Code")["C"].shift()
    r = np.log(bars["C"] / (prev * bars["AdjFactor"]))
    return bars.assign(r=r).pivot(index="Date", columns="Code", values="r")


def _fit(r: pd.DataFrame, edges: pd.DataFrame, lags: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """OLS of r[t, i] = a + sum_l b_l * sum_j w_ij r[t-l, j] + c * mean_k r[t-1, k] (pooled): (b, t-stats of b)."""
    codes = list(r.columns)
    w = np.zeros((len(codes), len(codes)))
    pos = {c: k for k, c in enumerate(codes)}
    w[edges["follower"].map(pos), edges["leader"].map(pos)] = edges["weight"]
    x = r.to_numpy()
    lead = np.nan_to_num(x) @ w.T  # lead[t, i] = sum_j w_ij r[t, j]
    m = max(lags)
    y = x[m:]
    columns = [lead[m - lag: len(x) - lag] for lag in lags]
    columns.append(r.mean(axis=1).fillna(0.0).to_numpy()[m - 1: -1, None] * np.ones_like(y))
    ok = ~np.isnan(y) & ~np.isnan(x[m - 1: -1]) & (np.abs(y) < 0.3)
    design = np.column_stack([np.ones(ok.sum()), *(c[ok] for c in columns)])
    beta, *_ = np.linalg.lstsq(design, y[ok], rcond=None)
    resid = y[ok] - design @ beta
    se = np.sqrt(np.diag(resid.var() * np.linalg.inv(design.T @ design)))
    b = beta[1: 1 + len(lags)]
    return b, b / se[1: 1 + len(lags)]


def test_leaders_predict_followers_over_the_next_days() -> None:
    m = cached_market(CONFIG)
    assert CONFIG.lead_lag_decay[:2] == (1.0, 0.5)
    r = _returns(m.table("bars_daily"))
    peers = m.truth["peers"]
    b, t = _fit(r, peers, (1, 2))
    assert t[0] > 5.0 and t[1] > 5.0  # lag 1, and lag 2: the part the next-day label (close t+1 -> t+2) sees
    # the same market with the one-day lead-lag only: lag 2 loses the planted half of lag 1's loading
    one = cached_market(dataclasses.replace(CONFIG, lead_lag_decay=(1.0,)))
    b_one, t_one = _fit(_returns(one.table("bars_daily")), one.truth["peers"], (1, 2))
    assert abs(b_one[0] - b[0]) < 0.1 * b[0] and t_one[1] < t[1] / 2
    assert 0.3 < (b[1] - b_one[1]) / b[0] < 0.7  # planted: 0.5
    # placebo: the same weights on leaders drawn from other sectors carry no signal
    rng = np.random.default_rng(0)
    sector = m.truth["universe"].set_index("Code")["S33"]
    placebo = peers.copy()
    codes = sector.index.to_numpy()
    for k, row in placebo.iterrows():
        others = codes[(sector.to_numpy() != sector[row["follower"]])]
        placebo.loc[k, "leader"] = rng.choice(others)
    _, t_placebo = _fit(r, placebo, (1, 2))
    assert (np.abs(t_placebo) < 3.0).all() and t[0] > 2 * abs(t_placebo[0])
