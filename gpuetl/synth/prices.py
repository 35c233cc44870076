"""Daily bars as a (days x issues) panel: raw OHLC on TSE ticks, price limits, volume, sessions, splits.

Closes follow the latent returns one day at a time (the only path-dependent part: tick rounding,
the limit band around the previous close and split-adjusted base prices); what a limit or a no-trade
day holds back carries into the next session. Everything else is vectorised over the whole panel.
Morning/afternoon sessions are filled for every traded day (MO = O, AC = C, the day's high and low
fall in one session or the other, MVo + AVo = Vo, MVa + AVa = Va).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.signal

from gpuetl.synth.config import MarketConfig, stream
from gpuetl.synth.returns import Returns
from gpuetl.synth.ticks import limit_prices, round_to_tick
from gpuetl.synth.universe import OUTAGE, Universe


@dataclasses.dataclass(frozen=True)
class BarPanel:
    """(D, N) arrays named as the bars_daily columns; prices/volumes NaN where not traded or not listed."""

    O: np.ndarray  # noqa: E741 (the J-Quants column name)
    H: np.ndarray
    L: np.ndarray
    C: np.ndarray
    Vo: np.ndarray
    Va: np.ndarray
    MC: np.ndarray  # morning close
    AO: np.ndarray  # afternoon open
    MVo: np.ndarray
    MVa: np.ndarray
    high_am: np.ndarray  # bool: the day's high printed in the morning session
    low_am: np.ndarray  # bool: the day's low printed in the morning session
    UL: np.ndarray  # bool: closed at limit-up
    LL: np.ndarray  # bool: closed at limit-down
    MUL: np.ndarray  # bool: morning closed at limit-up
    MLL: np.ndarray  # bool: morning closed at limit-down
    base: np.ndarray  # limit base price (previous close, split-adjusted); NaN where not traded
    adj_factor: np.ndarray  # J-Quants AdjustmentFactor: 1/ratio on ex-dates, else 1.0
    shares: np.ndarray  # shares outstanding (split-consistent)
    listed: np.ndarray  # bool
    traded: np.ndarray  # bool

    def sessions(self) -> dict[str, np.ndarray]:
        """Morning/afternoon highs and lows, consistent with the day's H and L."""
        mh = np.where(self.high_am, self.H, np.fmax(self.O, self.MC))
        ml = np.where(self.low_am, self.L, np.fmin(self.O, self.MC))
        ah = np.where(self.high_am, np.fmax(self.AO, self.C), self.H)
        al = np.where(self.low_am, np.fmin(self.AO, self.C), self.L)
        return {"MH": mh, "ML": ml, "AH": ah, "AL": al}


def _no_trade(rng: np.random.Generator, config: MarketConfig, universe: Universe, days: np.ndarray) -> np.ndarray:
    rate = config.no_trade_rate * universe.size_pct**4
    out = rng.random((days.size, universe.n)) < rate[None, :]
    out[np.minimum(universe.list_day, days.size - 1), np.arange(universe.n)] = False  # listing day trades
    out[universe.split_day, universe.split_code] = False  # ex-dates trade (keeps the index chain exact)
    out[days == OUTAGE] = True
    return out


def build_panel(config: MarketConfig, universe: Universe, days: np.ndarray, returns: Returns) -> BarPanel:
    rng = stream(config, "prices")
    d, n = days.size, universe.n
    listed = universe.listed(d)
    traded = listed & ~_no_trade(rng, config, universe, days)
    ratio = np.ones((d, n))
    ratio[universe.split_day, universe.split_code] = universe.split_ratio
    adj_factor = np.ones((d, n))
    adj_factor[universe.split_day, universe.split_code] = np.round(1.0 / universe.split_ratio, 6)
    shares = universe.shares0[None, :] * np.cumprod(ratio, axis=0)
    fine = universe.fine_tick
    close = np.full((d, n), np.nan)
    base = np.full((d, n), np.nan)
    prev = np.full(n, np.nan)
    carry = np.zeros(n)
    total = returns.total
    for t in range(d):  # the path-dependent part: ticks, limits and split-adjusted bases, day by day
        start = universe.list_day == t
        prev[start] = round_to_tick(universe.price0[start], fine[start])
        split = ratio[t] != 1.0
        if split.any():
            prev[split] = round_to_tick(prev[split] / ratio[t, split], fine[split])
        lo, hi = limit_prices(prev)
        move = total[t] + carry
        c = np.clip(round_to_tick(prev * np.exp(move), fine), lo, hi)
        tr = traded[t]
        with np.errstate(invalid="ignore"):
            carry = np.where(listed[t], np.where(tr, move - np.log(c / prev), move), 0.0)
        close[t] = np.where(tr, c, np.nan)
        base[t] = np.where(tr, prev, np.nan)
        prev = np.where(tr, c, prev)
    return _bars(rng, universe, returns, close, base, traded, listed, adj_factor, shares)


def _bars(rng: np.random.Generator, universe: Universe, returns: Returns, close: np.ndarray, base: np.ndarray,
          traded: np.ndarray, listed: np.ndarray, adj_factor: np.ndarray, shares: np.ndarray) -> BarPanel:
    d, n = close.shape
    fine = np.broadcast_to(universe.fine_tick[None, :], (d, n))
    lo, hi = limit_prices(base)
    with np.errstate(invalid="ignore"):
        r_cc = np.log(close / base)
    sigma = returns.vol
    gap = 0.4 * r_cc + 0.3 * sigma * rng.standard_normal((d, n))
    open_ = np.clip(round_to_tick(base * np.exp(gap), fine), lo, hi)
    top, bottom = np.fmax(open_, close), np.fmin(open_, close)
    high = np.clip(round_to_tick(top * np.exp(0.6 * sigma * np.abs(rng.standard_normal((d, n)))), fine), None, hi)
    low = np.clip(round_to_tick(bottom * np.exp(-0.6 * sigma * np.abs(rng.standard_normal((d, n)))), fine), lo, None)
    high, low = np.fmax(high, top), np.fmin(low, bottom)
    mid = open_ + rng.random((d, n)) * (close - open_) + 0.4 * sigma * base * rng.standard_normal((d, n))
    mc = np.clip(round_to_tick(mid, fine), low, high)
    ao = np.clip(round_to_tick(mc * np.exp(0.15 * sigma * rng.standard_normal((d, n))), fine), low, high)
    # volume: per-issue turnover rate x split-consistent shares, AR(1) noise, more on big moves, less when locked
    rate = np.exp(np.log(0.004) + 0.5 * rng.standard_normal(n) + 0.8 * (universe.market_new == "0113"))
    noise = scipy.signal.lfilter([1.0], [1.0, -0.7], 0.3 * rng.standard_normal((d, n)), axis=0)
    ul, ll = traded & (close >= hi), traded & (close <= lo)
    with np.errstate(invalid="ignore"):
        log_vol = np.log(rate * shares) + noise + 8.0 * np.abs(r_cc) - 1.4 * (ul | ll)
    vo = np.maximum(np.round(np.exp(log_vol) / 100.0), 2.0) * 100.0
    mvo = np.clip(np.round(vo * rng.uniform(0.45, 0.65, (d, n)) / 100.0) * 100.0, 100.0, vo - 100.0)
    high_am = rng.random((d, n)) < 0.5
    low_am = rng.random((d, n)) < 0.5
    panel = BarPanel(O=open_, H=high, L=low, C=close, Vo=vo, Va=vo, MC=mc, AO=ao, MVo=mvo, MVa=mvo,
                  high_am=high_am, low_am=low_am, UL=ul, LL=ll, MUL=traded & (mc >= hi), MLL=traded & (mc <= lo),
                  base=base, adj_factor=adj_factor, shares=shares, listed=listed, traded=traded)
    s = panel.sessions()
    mva = np.round(mvo * (open_ + s["MH"] + s["ML"] + mc) / 4.0)
    ava = np.round((vo - mvo) * (ao + s["AH"] + s["AL"] + close) / 4.0)
    nan = ~traded
    for a in (open_, high, low, vo, mc, ao, mvo, mva, ava):
        a[nan] = np.nan
    return dataclasses.replace(panel, Va=mva + ava, MVa=mva)
