"""The synthetic market's parameters, and the seeded random streams every module draws from.

The model's parameters live here (not in configs/) because they define the synthetic world itself, the
way a simulator's physics constants do; configs/ only chooses size, range and seed.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np


@dataclasses.dataclass(frozen=True)
class MarketConfig:
    """Size, range and seed of a synthetic market, plus the model knobs (defaults are the model)."""

    codes: int  # issues ever listed in [start, end] (listings and delistings included)
    start: str  # first date with data, YYYY-MM-DD
    end: str  # last date with data, YYYY-MM-DD
    seed: int
    # --- planted effects, each sized like its published counterpart in Japanese equities, not like a signal built
    # for the model (docs/synthetic-market.md; `python -m benchmarks.synth_effects` measures them). Each is additive
    # on top of the exogenous processes below (e = idiosyncratic part, x = e + sector part, the non-market return).
    # Short-term reversal: a stock's own idiosyncratic return reverts over the next `reversal_days` days,
    # r[t, i] -= reversal * sum_{l=1..reversal_days} e[t-l, i]. News (earnings jumps) does not revert (Chan 2003).
    reversal: float = 0.018
    reversal_days: int = 5  # Japan's reversal is weekly (one trading week)
    # Momentum (12-1 month): a small drift on the non-market return from t-momentum_lookback to t-momentum_skip,
    # r[t, i] += momentum * sum_{l=momentum_skip..momentum_lookback} x[t-l, i]. Weak in Japan (Asness 2011).
    momentum: float = 0.0002
    momentum_skip: int = 21  # one month skipped (the last month reverses rather than continues)
    momentum_lookback: int = 250  # about twelve months back
    # Lead-lag: a hidden peer graph whose news diffuses over a few days (large caps lead small caps, Hou 2007).
    lead_lag: float = 0.01  # loading of a stock's return at t+1 on its leaders' non-market return at t
    # relative loading at lags 1, 2, ...: r[t+l, i] += lead_lag * lead_lag_decay[l-1] * sum_j w_ij x[t, j].
    # Lag 1 alone is invisible to the tradeable next-day label (close t+1 -> t+1+k, entered at close t+1);
    # real lead-lag effects fade over several days (large caps lead small caps for about a week), so later
    # lags keep part of the signal for a strategy that trades at the next close.
    lead_lag_decay: tuple[float, ...] = (1.0, 0.5, 0.25)
    max_leaders: int = 3  # each stock has 1..max_leaders leaders
    # share of leaders drawn from the follower's own 33-sector: Hou (2007) finds the lead-lag mostly within
    # industries; the rest stands for cross-industry links (suppliers and customers, Cohen and Frazzini 2008)
    in_sector_share: float = 0.6
    # --- return model (daily, log returns)
    market_vol: float = 0.012  # long-run daily vol of the market factor (TOPIX ~15% a year)
    sector_vol: float = 0.007  # long-run daily vol of each sector factor
    idio_vol: tuple[float, float] = (0.012, 0.030)  # idiosyncratic vol, large caps .. small caps
    garch: tuple[float, float] = (0.08, 0.90)  # (alpha, beta) of the GARCH(1,1) variances
    market_drift: float = 0.0002  # mean daily log return of the market factor (~5% a year)
    tail_df: float = 4.0  # Student-t degrees of freedom of every innovation
    earnings_jump: float = 0.035  # stdev of the price reaction to an earnings surprise of 1 sd
    # --- events
    listing_share: float = 0.08  # share of issues that list inside the range
    delisting_share: float = 0.05  # share of issues that delist inside the range
    splits_per_year: float = 0.015  # chance per issue-year of a split or reverse split
    no_trade_rate: float = 0.01  # chance of a no-trade day for the least liquid issues
    index_base: float = 1000.0  # TOPIX and sector indices close at this level on the first day

    def __post_init__(self) -> None:
        if self.codes < 1:
            raise ValueError(f"codes must be >= 1, got {self.codes}")
        if np.datetime64(self.start) > np.datetime64(self.end):
            raise ValueError(f"start {self.start} is after end {self.end}")
        if any(w < 0 for w in self.lead_lag_decay):
            raise ValueError(f"lead_lag_decay must be >= 0 at every lag, got {self.lead_lag_decay}")
        if self.reversal_days < 1:
            raise ValueError(f"reversal_days must be >= 1, got {self.reversal_days}")
        if not 1 <= self.momentum_skip <= self.momentum_lookback:
            raise ValueError(f"need 1 <= momentum_skip <= momentum_lookback, got {self.momentum_skip}, "
                             f"{self.momentum_lookback}")
        if not 0.0 <= self.in_sector_share <= 1.0:
            raise ValueError(f"in_sector_share must be in [0, 1], got {self.in_sector_share}")
        if int(self.start[:4]) < 2002:
            raise ValueError(f"start {self.start}: the holiday rules here cover 2000 onwards (start from 2002)")


def without_signal(config: MarketConfig) -> MarketConfig:
    """The null market of `config`: the same prices, volumes, factor correlations and volatility clustering, with
    nothing planted for a model to predict (no reversal, no momentum, no lead-lag, no price reaction to earnings
    surprises). A model that scores on it has a leak (`gpuetl synth --no-signal`)."""
    return dataclasses.replace(config, reversal=0.0, momentum=0.0, lead_lag=0.0, earnings_jump=0.0)


def stream(config: MarketConfig, name: str) -> np.random.Generator:
    """An independent generator per (seed, component), so tables can be built lazily in any order."""
    return np.random.default_rng(np.random.SeedSequence([config.seed & 0xFFFFFFFF, zlib.crc32(name.encode())]))
