"""Trading flows derived from the bars: `investor_types` (weekly, by section), `short_ratio` (daily, by
33-sector) and `breakdown` (daily, by issue).

Investor types: each week's section turnover (from the bars, in thousand yen) is split into
proprietary and brokerage trading, brokerage into ten investor categories; foreigners buy into strong
weeks and individuals lean against them. Published on the 4th business day of the following week;
after 2023-04-03 a few weeks get a correction row (same Section/StDate/EnDate, later PubDate).
Identities hold exactly: X Tot = X Sell + X Buy, X Bal = X Buy - X Sell, Brk = sum of the ten categories,
Tot = Prop + Brk.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.signal

from gpuetl.synth import reference as ref
from gpuetl.synth.calendar import monday_of, week_id
from gpuetl.synth.config import stream
from gpuetl.synth.core import MarketCore
from gpuetl.synth.frames import canonical
from gpuetl.synth.universe import RESTRUCTURE

CORRECTIONS_FROM = np.datetime64("2023-04-03")
CATEGORIES = ("Ind", "Frgn", "SecCo", "InvTr", "BusCo", "OthCo", "InsCo", "Bank", "TrstBnk", "OthFin")
_SHARES = np.array([0.20, 0.68, 0.01, 0.025, 0.012, 0.002, 0.003, 0.002, 0.03, 0.003])
_OLD_SECTIONS = ("TSE1st", "TSE2nd", "TSEMothers", "TSEJASDAQ")
_NEW_SECTIONS = ("TSEPrime", "TSEStandard", "TSEGrowth")
SECTIONS = (*_OLD_SECTIONS, *_NEW_SECTIONS, "TokyoNagoya")


def _daily_by(m: MarketCore, values: np.ndarray, group_old: np.ndarray, group_new: np.ndarray,
              k: int) -> np.ndarray:
    """(D, k) daily sums of a (D, N) panel by issue group (old/new grouping switching at 2022-04-04)."""
    v = np.nan_to_num(values)
    old = v @ np.eye(k)[group_old]
    new = v @ np.eye(k)[group_new]
    return np.where((m.days >= RESTRUCTURE)[:, None], new, old)


def investor_types(m: MarketCore) -> pd.DataFrame:
    rng = stream(m.config, "investor_types")
    u, tl = m.universe, m.timeline
    sec_index = {s: i for i, s in enumerate(SECTIONS)}
    old = np.array([sec_index[ref.SECTION_OF_MARKET[c]] for c in u.market_old])
    new = np.array([sec_index[ref.SECTION_OF_MARKET[c]] for c in u.market_new])
    daily = _daily_by(m, m.panel.Va, old, new, len(SECTIONS))
    daily[:, -1] = daily.sum(axis=1) * 1.015  # Tokyo + Nagoya
    # full weeks only: every business day of the week inside [start, end]
    wk = week_id(m.days)
    weeks, first = np.unique(wk, return_index=True)
    all_wk = week_id(tl.bdays)
    in_cal = np.bincount(np.searchsorted(weeks, all_wk[np.isin(all_wk, weeks)]), minlength=weeks.size)
    counts = np.diff(np.append(first, m.days.size))
    full = in_cal == counts
    turnover = np.add.reduceat(daily, first, axis=0) / 1000.0  # thousand yen
    market = m.truth["factors"]["market"].to_numpy()  # host-ok: the synthetic market is NumPy/pandas by design
    mkt = np.add.reduceat(market, first)
    st, en = m.days[first], m.days[np.append(first[1:], m.days.size) - 1]
    pub = tl.after(tl.on_or_after(monday_of(weeks + 1)), 3)
    w_idx, s_idx = np.nonzero(full[:, None] & (turnover > 0))
    n = w_idx.size
    section = np.array(SECTIONS, dtype=object)[s_idx]
    total = turnover[w_idx, s_idx]
    prop = 0.15 * total * np.exp(0.05 * rng.standard_normal(n))
    share = _SHARES[None, :] * np.exp(0.1 * rng.standard_normal((n, len(CATEGORIES))))
    brk = (total - prop)[:, None] * share / share.sum(axis=1, keepdims=True)
    foreign = 2.5 * mkt[w_idx] + 0.03 * rng.standard_normal(n)
    imbalance = 0.05 * rng.standard_normal((n, len(CATEGORIES)))
    imbalance[:, 1] += foreign
    imbalance[:, 0] += -0.6 * foreign
    prop_imb = 0.03 * rng.standard_normal(n)
    rows = np.arange(n)
    # corrections: a few weeks published from 2023-04-03 get a second row, published later
    fix = np.flatnonzero((pub[w_idx] >= CORRECTIONS_FROM) & (rng.random(n) < 0.03))
    rows = np.concatenate([rows, fix])
    bump = np.ones((rows.size, 1))
    bump[n:] = 1.0 + 0.01 * rng.standard_normal((fix.size, 1))
    pub_date = np.concatenate([pub[w_idx], tl.after(pub[w_idx[fix]], 5)])
    cols: dict[str, object] = {"PubDate": pub_date, "StDate": st[w_idx[rows]], "EnDate": en[w_idx[rows]],
                               "Section": section[rows]}
    sells, buys = [], []
    for j, cat in enumerate(CATEGORIES):
        base = brk[rows, j] * bump[:, 0]
        sells.append(np.round(base * (1 - imbalance[rows, j] / 2)))
        buys.append(np.round(base * (1 + imbalance[rows, j] / 2)))
        _put(cols, cat, sells[-1], buys[-1])
    prop_sell = np.round(prop[rows] * (1 - prop_imb[rows] / 2))
    prop_buy = np.round(prop[rows] * (1 + prop_imb[rows] / 2))
    _put(cols, "Prop", prop_sell, prop_buy)
    brk_sell, brk_buy = np.sum(sells, axis=0), np.sum(buys, axis=0)
    _put(cols, "Brk", brk_sell, brk_buy)
    _put(cols, "Tot", prop_sell + brk_sell, prop_buy + brk_buy)
    order = np.lexsort((np.array([SECTIONS.index(s) for s in section[rows]]), np.asarray(cols["StDate"]), pub_date))
    return canonical("investor_types", {k: np.asarray(v)[order] for k, v in cols.items()}, rows.size)


def _put(cols: dict[str, object], name: str, sell: np.ndarray, buy: np.ndarray) -> None:
    cols[name + "Sell"], cols[name + "Buy"], cols[name + "Tot"], cols[name + "Bal"] = sell, buy, sell + buy, buy - sell


def short_ratio(m: MarketCore) -> pd.DataFrame:
    """Per 33-sector and business day: selling turnover split into non-short, short with and without
    price restriction (JPY; short share ~40% with persistent noise). No rows where a sector did not trade."""
    rng = stream(m.config, "short_ratio")
    k = len(ref.S33_CODES)
    sales = _daily_by(m, m.panel.Va, m.universe.s33, m.universe.s33, k)
    noise = scipy.signal.lfilter([1.0], [1.0, -0.8], 0.02 * rng.standard_normal(sales.shape), axis=0)
    short = np.clip(0.40 + noise + 0.03 * rng.standard_normal(k)[None, :], 0.15, 0.7)
    d_idx, s_idx = np.nonzero(sales > 0)
    total = np.round(sales[d_idx, s_idx], -2)
    with_res = np.round(total * short[d_idx, s_idx] * 0.88, -2)
    no_res = np.round(total * short[d_idx, s_idx] * 0.12, -2)
    cols = {"Date": m.days[d_idx], "S33": np.array(ref.S33_CODES, dtype=object)[s_idx],
            "SellExShortVa": total - with_res - no_res, "ShrtWithResVa": with_res, "ShrtNoResVa": no_res}
    return canonical("short_ratio", cols, d_idx.size)


def _split(rng: np.random.Generator, units: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Split integer `units` into len(base) integer parts around the shares `base` (exact sums)."""
    w = base[None, :] * np.exp(0.3 * rng.standard_normal((units.size, base.size)))
    w /= w.sum(axis=1, keepdims=True)
    parts = np.floor(units[:, None] * w)
    parts[:, -1] = units - parts[:, :-1].sum(axis=1)
    return parts


def breakdown(m: MarketCore) -> pd.DataFrame:
    """Per traded (day, issue): volume and value by trade type; sell types and buy types each sum to Vo/Va."""
    rng = stream(m.config, "breakdown")
    p, u = m.panel, m.universe
    pos = np.flatnonzero(p.traded.ravel())
    day, issue = pos // u.n, pos % u.n
    vo, va = p.Vo.ravel()[pos], p.Va.ravel()[pos]
    vwap = va / vo
    units = vo / 100.0
    no_margin = (u.margin == "3")[issue][:, None]
    sell = _split(rng, units, np.array([0.15, 0.10, 0.30, 0.45]))  # MrgnSellClose, MrgnSellNew, ShrtNoMrgn, Long
    buy = _split(rng, units, np.array([0.15, 0.25, 0.60]))  # MrgnBuyClose, MrgnBuyNew, Long
    sell[:, 3] += np.where(no_margin[:, 0], sell[:, :2].sum(axis=1), 0)
    sell[:, :2] = np.where(no_margin, 0.0, sell[:, :2])
    buy[:, 2] += np.where(no_margin[:, 0], buy[:, :2].sum(axis=1), 0)
    buy[:, :2] = np.where(no_margin, 0.0, buy[:, :2])
    cols: dict[str, object] = {"Date": m.days[day], "Code": u.code[issue]}
    for names, parts in ((("MrgnSellClose", "MrgnSellNew", "ShrtNoMrgn", "LongSell"), sell),
                         (("MrgnBuyClose", "MrgnBuyNew", "LongBuy"), buy)):
        vols = parts * 100.0
        vals = np.floor(vols * vwap[:, None])  # floor, so the remainder (last type) is never negative
        vals[:, -1] = va - vals[:, :-1].sum(axis=1)
        for j, name in enumerate(names):
            cols[name + "Vo"], cols[name + "Va"] = vols[:, j], vals[:, j]
    return canonical("breakdown", cols, pos.size)
