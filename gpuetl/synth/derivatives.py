"""A small derivatives market on the synthetic TOPIX: `futures`, `options` and `options_225`.

Kept small on purpose (gated to higher plans, not used by features yet): three quarterly contracts of
TOPIX, Nikkei 225 and Nikkei 225 mini futures; nine strikes of puts and calls on the two nearest
monthly expiries of Nikkei 225 options and seven of TOPIX options. The "Nikkei 225" is the synthetic
TOPIX times a fixed ratio. Options are priced by Black-Scholes on a vol smile over realised vol.
Rows are dated on equity business days: holiday-trading sessions belong to the next weekday's trading
date, as in J-Quants. The night session is empty ("" on the wire, NaN here) on a contract's first
row; futures have no morning/afternoon split (M* NaN).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr

from gpuetl.synth.config import stream
from gpuetl.synth.core import MarketCore
from gpuetl.synth.frames import canonical

NIKKEI_RATIO = 14.2
RATE = 0.001
# product: (code prefix, tick, multiplier, underlying scale)
_FUTURES = {"TOPIXF": ("169", 0.5, 10_000.0, 1.0), "NK225F": ("180", 10.0, 1_000.0, NIKKEI_RATIO),
            "NK225MF": ("181", 5.0, 100.0, NIKKEI_RATIO)}


def _sq_dates(m: MarketCore, months: np.ndarray) -> np.ndarray:
    """Special quotation day: the second Friday of the month, or the business day before it."""
    first = months.astype("datetime64[M]").astype("datetime64[D]")
    friday = first + ((4 - (first.astype(np.int64) + 3) % 7) % 7 + 7).astype("timedelta64[D]")
    return m.timeline.before(friday + np.timedelta64(1, "D"))


def _contracts(m: MarketCore, step: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(day row, contract month, SQ date) for the `count` nearest contracts every `step` months."""
    days = m.days
    month = days.astype("datetime64[M]").astype(np.int64)
    base = month + (-(month + 1) % step if step > 1 else 0)  # next month that is a multiple of `step`
    ahead = np.arange(count + 1)  # one spare: the nearest may already have expired this month
    r = np.tile(np.arange(days.size), ahead.size)
    cm = np.tile(base, ahead.size) + np.repeat(ahead * step, days.size)
    sq = _sq_dates(m, cm)
    ltd = m.timeline.before(sq)
    alive = days[r] <= ltd
    r, cm, sq = r[alive], cm[alive], sq[alive]
    order = np.lexsort((cm, r))
    r, cm, sq = r[order], cm[order], sq[order]
    first = np.searchsorted(r, r, side="left")
    rank = np.arange(r.size) - first
    keep = rank < count
    return r[keep], cm[keep].astype("datetime64[M]"), sq[keep]


def _yymm(months: np.ndarray) -> np.ndarray:
    """YYMM as an integer (2409 for 2024-09) of datetime64[M] months."""
    m = months.astype("datetime64[M]").astype(np.int64)
    return ((m // 12 + 1970) % 100) * 100 + m % 12 + 1


def _underlying(m: MarketCore) -> dict[str, np.ndarray]:
    """The published TOPIX (built once and kept by the market's lazy tables)."""
    t = m.table("topix")
    return {k: t[k].to_numpy() for k in "OHLC"}  # host-ok: the synthetic market is NumPy/pandas by design


def _sessions(rng: np.random.Generator, o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray,
              prev: np.ndarray, tick: float) -> dict[str, np.ndarray]:
    def rnd(x: np.ndarray) -> np.ndarray:
        return np.round(np.round(x / tick) * tick, 4)

    eo = rnd(prev * np.exp(0.002 * rng.standard_normal(c.size)))
    ec = rnd(o)
    eh = np.maximum(rnd(np.maximum(eo, ec) * (1 + 0.003 * rng.random(c.size))), np.maximum(eo, ec))
    el = np.minimum(rnd(np.minimum(eo, ec) * (1 - 0.003 * rng.random(c.size))), np.minimum(eo, ec))
    ao, ah, al, ac = rnd(o), rnd(h), rnd(low), rnd(c)
    ah, al = np.maximum(ah, np.maximum(ao, ac)), np.minimum(al, np.minimum(ao, ac))
    return {"EO": eo, "EH": eh, "EL": el, "EC": ec, "AO": ao, "AH": ah, "AL": al, "AC": ac,
            "O": eo, "H": np.maximum(eh, ah), "L": np.minimum(el, al), "C": ac}


def futures(m: MarketCore) -> pd.DataFrame:
    rng = stream(m.config, "futures")
    und = _underlying(m)
    parts = []
    for prod, (prefix, tick, mult, scale) in _FUTURES.items():
        r, cm, sq = _contracts(m, 3, 3)
        t_years = (sq - m.days[r]).astype(np.float64) / 365.0
        basis = (1.0 - 0.015 * t_years) * scale
        prev = np.r_[und["C"][0], und["C"][:-1]][r] * basis
        s = _sessions(rng, und["O"][r] * basis, und["H"][r] * basis, und["L"][r] * basis, und["C"][r] * basis,
                      prev, tick)
        order = np.lexsort((r, cm))  # first row of each contract
        fresh = np.zeros(r.size, bool)
        fresh[order[np.r_[True, cm[order][1:] != cm[order][:-1]]]] = True
        fresh &= r > 0  # contracts already trading on the first day had a night session before it
        for k in ("EO", "EH", "EL", "EC"):
            s[k] = np.where(fresh, np.nan, s[k])
        s["O"] = np.where(fresh, s["AO"], s["O"])
        s["H"] = np.where(fresh, s["AH"], s["H"])
        s["L"] = np.where(fresh, s["AL"], s["L"])
        rank = np.arange(r.size) - np.searchsorted(r, r, side="left")
        central = rank == 0
        vo = np.round(np.where(central, 40_000.0, 2_000.0) * np.exp(0.4 * rng.standard_normal(r.size)) / scale**0.5)
        yymm = cm.astype(str)
        code = (int(prefix) * 1_000_000 + _yymm(cm) * 100 + 5).astype(str).astype(object)
        parts.append({
            "Code": code, "ProdCat": np.full(r.size, prod, dtype=object), "Date": m.days[r], **s,
            "Vo": vo, "OI": np.round(vo * np.exp(2.5 + 0.2 * rng.standard_normal(r.size))),
            "Va": np.round(vo * s["C"] * mult), "CM": yymm.astype(object), "VoOA": np.round(vo * 0.92),
            "EmMrgnTrgDiv": np.full(r.size, "002", dtype=object), "LTD": m.timeline.before(sq), "SQD": sq,
            "Settle": s["C"], "CCMFlag": np.where(central, "1", "0").astype(object),
        })
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((cols["Code"].astype(str), cols["Date"]))
    return canonical("futures", {k: v[order] for k, v in cols.items()}, order.size)


def _black_scholes(s: np.ndarray, k: np.ndarray, t: np.ndarray, vol: np.ndarray, put: np.ndarray) -> np.ndarray:
    sd = vol * np.sqrt(t)
    d1 = (np.log(s / k) + (RATE + 0.5 * vol**2) * t) / sd
    d2 = d1 - sd
    disc = k * np.exp(-RATE * t)
    call = s * ndtr(d1) - disc * ndtr(d2)
    return np.where(put, call - s + disc, call)


def _options(m: MarketCore, name: str, scale: float, spacing: float, strikes: int,
             prod: str | None) -> pd.DataFrame:
    rng = stream(m.config, name)
    und = _underlying(m)
    spot = und["C"] * scale
    ret = np.diff(np.log(und["C"]), prepend=np.log(und["C"][0]))
    rolling = pd.Series(ret).rolling(20, min_periods=1).std()
    realised = rolling.to_numpy() * np.sqrt(245.0)  # host-ok: the synthetic market is NumPy/pandas by design
    base_vol = np.clip(1.1 * np.nan_to_num(realised, nan=0.15), 0.10, 0.6)
    r, cm, sq = _contracts(m, 1, 2)
    atm = np.round(spot[r] / spacing) * spacing
    half = strikes // 2
    rr = np.repeat(np.arange(r.size), 2 * strikes)
    offset = np.tile(np.repeat(np.arange(-half, half + 1), 2), r.size)
    put = np.tile(np.array([True, False]), r.size * strikes)
    day, k = r[rr], atm[rr] + offset * spacing
    t = np.maximum((sq[rr] - m.days[day]).astype(np.float64), 1.0) / 365.0
    moneyness = np.log(k / spot[day])
    iv = base_vol[day] * (1.0 + 0.8 * moneyness**2 / np.maximum(t, 0.05) - 0.3 * moneyness)
    theo = _black_scholes(spot[day], k, t, iv, put)
    tick = np.where(theo > 100.0, 5.0, 1.0) if scale > 1 else np.where(theo > 20.0, 0.5, 0.1)
    close = np.round(np.maximum(np.round(theo * np.exp(0.02 * rng.standard_normal(day.size)) / tick) * tick, tick), 1)
    traded = rng.random(day.size) < np.exp(-3.0 * np.abs(moneyness) * 10)
    vo = np.where(traded, np.round(np.exp(5.0 + rng.standard_normal(day.size))), 0.0)
    o = np.round(close * np.exp(0.05 * rng.standard_normal(day.size)) / tick) * tick
    hi = np.maximum(np.maximum(o, close), np.round(np.maximum(o, close) * 1.05 / tick) * tick)
    lo = np.minimum(np.minimum(o, close), np.round(np.minimum(o, close) * 0.95 / tick) * tick)
    px = {"O": o, "H": hi, "L": lo, "C": close, "EO": o, "EH": hi, "EL": lo, "EC": o, "AO": o, "AH": hi,
          "AL": lo, "AC": close}
    px = {key: np.where(traded, np.round(v, 1), np.nan) for key, v in px.items()}
    yymm = cm.astype(str)[rr]
    code = ((1 if scale > 1 else 2) * 100_000_000 + np.where(put, 1, 2) * 10_000_000 + _yymm(cm[rr]) * 1000
            + (k // spacing).astype(np.int64) % 1000).astype(str).astype(object)
    cols: dict[str, object] = {
        "Code": code, "Date": m.days[day], **px, "Vo": vo,
        "OI": np.round(np.exp(7.0 + rng.standard_normal(day.size)) * np.exp(-np.abs(moneyness) * 5)),
        "Va": np.nan_to_num(vo * px["C"] * 1000.0), "CM": yymm.astype(object), "Strike": k, "VoOA": np.round(vo * 0.95),
        "EmMrgnTrgDiv": np.full(day.size, "002", dtype=object), "PCDiv": np.where(put, "1", "2").astype(object),
        "LTD": m.timeline.before(sq[rr]), "SQD": sq[rr], "Settle": close, "Theo": np.round(theo, 4),
        "BaseVol": np.round(100 * base_vol[day], 4), "UnderPx": np.round(spot[day], 2), "IV": np.round(100 * iv, 4),
        "IR": np.full(day.size, 100 * RATE),
    }
    if prod is not None:
        rank = np.arange(r.size) - np.searchsorted(r, r, side="left")
        cols.update(ProdCat=np.full(day.size, prod, dtype=object), UndSSO=np.full(day.size, "-", dtype=object),
                    CCMFlag=np.where(rank[rr] == 0, "1", "0").astype(object))
    order = np.lexsort((np.asarray(cols["Code"]).astype(str), np.asarray(cols["Date"])))
    return canonical(name, {key: np.asarray(v)[order] for key, v in cols.items()}, day.size)


def options_225(m: MarketCore) -> pd.DataFrame:
    return _options(m, "options_225", NIKKEI_RATIO, 250.0, 9, None)


def options(m: MarketCore) -> pd.DataFrame:
    return _options(m, "options", 1.0, 25.0, 7, "TOPIXE")
