"""`bars_daily` and `master`: one row per (business day, listed issue), ordered by (Date, Code).

Adj* columns follow J-Quants' rule as of the data's end: each row's prices are multiplied by the
product of every *later* AdjFactor (volumes divided by it) and rounded to 0.1, so they change
retroactively with every new split. That is realistic on purpose; the pipeline must not use them.
No-trade rows keep the row with O/H/L/C/Vo/Va and every Adj*/session value NaN, UL/LL False and
AdjFactor 1.0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gpuetl.synth import reference as ref
from gpuetl.synth.core import MarketCore
from gpuetl.synth.frames import canonical, flag
from gpuetl.synth.universe import RESTRUCTURE

S33_CODES = ref.S33_CODES


def later_factor_product(adj_factor: np.ndarray) -> np.ndarray:
    """(D, N) product of AdjFactor over the rows strictly after each row: J-Quants' restating multiplier."""
    out = np.ones_like(adj_factor)
    if adj_factor.shape[0] > 1:
        out[:-1] = np.cumprod(adj_factor[::-1], axis=0)[::-1][1:]
    return out


def _rows(m: MarketCore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat panel positions of listed cells (day-major, so rows sort by Date then Code), and (day, issue)."""
    pos = np.flatnonzero(m.panel.listed.ravel())
    return pos, pos // m.universe.n, pos % m.universe.n


def bars_daily(m: MarketCore) -> pd.DataFrame:
    p = m.panel
    pos, day, issue = _rows(m)

    def take(a: np.ndarray) -> np.ndarray:
        return a.ravel()[pos]

    mult = take(later_factor_product(p.adj_factor))
    sessions = {k: take(v) for k, v in p.sessions().items()}
    o, h, low, c, vo, va = (take(a) for a in (p.O, p.H, p.L, p.C, p.Vo, p.Va))
    mc, ao, mvo, mva = (take(a) for a in (p.MC, p.AO, p.MVo, p.MVa))
    cols: dict[str, object] = {
        "Date": m.days[day], "Code": m.universe.code[issue], "O": o, "H": h, "L": low, "C": c,
        "UL": flag(take(p.UL)), "LL": flag(take(p.LL)), "Vo": vo, "Va": va, "AdjFactor": take(p.adj_factor),
        "MO": o, "MH": sessions["MH"], "ML": sessions["ML"], "MC": mc, "MUL": flag(take(p.MUL)),
        "MLL": flag(take(p.MLL)), "MVo": mvo, "MVa": mva,
        "AO": ao, "AH": sessions["AH"], "AL": sessions["AL"], "AC": c, "AUL": flag(take(p.UL)),
        "ALL": flag(take(p.LL)), "AVo": vo - mvo, "AVa": va - mva,
    }
    restated = np.flatnonzero(mult != 1.0)  # rows before a later split; elsewhere Adj* == raw

    def adjusted(raw: object, volume: bool) -> np.ndarray:
        out = np.array(raw, dtype=np.float64)
        x, k = out[restated], mult[restated]
        out[restated] = np.round(x / k if volume else x * k, 1)
        return out

    for prefix in ("", "M", "A"):
        for f in "OHLC":
            cols[f"{prefix}Adj{f}"] = adjusted(cols[f"{prefix}{f}"], volume=False)
        cols[f"{prefix}AdjVo"] = adjusted(cols[f"{prefix}Vo"], volume=True)
    return canonical("bars_daily", cols, pos.size)


def master(m: MarketCore) -> pd.DataFrame:
    u = m.universe
    pos, day, issue = _rows(m)
    s33 = np.array(S33_CODES, dtype=object)
    s17 = np.array([ref.S33_TO_S17[c][0] for c in S33_CODES], dtype=object)
    s33_nm = np.array([ref.s33_names()[c] for c in S33_CODES], dtype=object)
    s17_nm = np.array([ref.s17_names()[c] for c in s17], dtype=object)
    after = m.days[day] >= RESTRUCTURE
    names = ref.market_names()
    old_nm = np.array([names[c] for c in u.market_old], dtype=object)
    new_nm = np.array([names[c] for c in u.market_new], dtype=object)
    mkt = np.where(after, u.market_new[issue], u.market_old[issue])
    mkt_nm = np.where(after, new_nm[issue], old_nm[issue])
    sector = u.s33[issue]
    margin_nm = np.array([ref.MARGIN_NAMES[k] for k in u.margin], dtype=object)
    cols = {
        "Date": m.days[day], "Code": u.code[issue], "CoName": u.name_jp[issue], "CoNameEn": u.name_en[issue],
        "S17": s17[sector], "S17Nm": s17_nm[sector], "S33": s33[sector], "S33Nm": s33_nm[sector],
        "ScaleCat": u.scale_cat[issue], "Mkt": mkt, "MktNm": mkt_nm, "Mrgn": u.margin[issue],
        "MrgnNm": margin_nm[issue],
    }
    return canonical("master", cols, pos.size)
