"""TOPIX, the 33 sector indices, TOPIX-17 and the size indices, computed from the synthetic bars.

Each is a chain-linked, cap-weighted index of its constituents (TOPIX members with the matching
attribute): day t's close is the previous close times sum(C[t] * S[t]) / sum(C[t-1] * S[t-1]) over the
members listed on both days, C being the last close (carried over no-trade days) and S the shares
outstanding, so splits do not move an index. Opens, highs and lows use the same divisor: opens
exactly, highs and lows shrunk halfway to max/min(O, C) because the members' extremes do not print
at the same moment. The first day closes at `index_base`. Values are rounded to 0.01.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gpuetl.synth import reference as ref
from gpuetl.synth.core import MarketCore
from gpuetl.synth.frames import canonical

_SIZE_INDICES = {
    "0028": ("TOPIX Core30",), "0029": ("TOPIX Large70",), "002A": ("TOPIX Core30", "TOPIX Large70"),
    "002B": ("TOPIX Mid400",), "002C": ("TOPIX Core30", "TOPIX Large70", "TOPIX Mid400"),
    "002D": ("TOPIX Small 1", "TOPIX Small 2"),
    "002E": ("TOPIX Core30", "TOPIX Large70", "TOPIX Mid400", "TOPIX Small 1"), "002F": ("TOPIX Small 1",),
}


def forward_filled(values: np.ndarray) -> np.ndarray:
    """(D, N) values with NaNs replaced by the last valid value above them (NaN before the first)."""
    d, n = values.shape
    idx = np.where(np.isnan(values), 0, np.arange(d)[:, None])
    np.maximum.accumulate(idx, axis=0, out=idx)
    return values[idx, np.arange(n)[None, :]]


def memberships(m: MarketCore) -> tuple[list[str], np.ndarray]:
    """Index codes and their (K, N) 0/1 constituent matrix."""
    u = m.universe
    codes, rows = ["0000"], [u.topix]
    for k, s33 in enumerate(ref.S33_CODES):
        codes.append(ref.sector_index_codes()[s33])
        rows.append(u.topix & (u.s33 == k))
    s17_of = np.array([ref.S33_TO_S17[c][0] for c in ref.S33_CODES])[u.s33]
    for s17, code in ref.s17_index_codes().items():
        codes.append(code)
        rows.append(u.topix & (s17_of == s17))
    for code, cats in _SIZE_INDICES.items():
        codes.append(code)
        rows.append(u.topix & np.isin(u.scale_cat, cats))
    return codes, np.array(rows, dtype=np.float64)


def levels(m: MarketCore, weights: np.ndarray) -> dict[str, np.ndarray]:
    """(K, D) unrounded O/H/L/C of the indices whose constituents are the rows of `weights`."""
    p = m.panel
    last = forward_filled(p.C)
    cap = np.nan_to_num(last * p.shares)
    prev_cap = np.zeros_like(cap)
    prev_cap[1:] = cap[:-1]
    both = p.listed.copy()
    both[1:] &= p.listed[:-1]
    both[0] = p.listed[0]
    both &= ~np.isnan(last)
    if len(both) > 1:
        both[1:] &= ~np.isnan(last[:-1])

    def sums(x: np.ndarray) -> np.ndarray:
        return weights @ np.where(both, np.nan_to_num(x), 0.0).T  # (K, D)

    den = sums(prev_cap)
    den[:, 0] = sums(cap)[:, 0]
    ratio = np.divide(sums(cap), den, out=np.ones_like(den), where=den > 0)
    ratio[:, 0] = 1.0
    close = m.config.index_base * np.cumprod(ratio, axis=1)
    prev_close = np.concatenate([close[:, :1], close[:, :-1]], axis=1)

    def at(x: np.ndarray) -> np.ndarray:
        val = np.where(p.traded, x, last) * p.shares
        return np.divide(prev_close * sums(val), den, out=close.copy(), where=den > 0)

    open_, hi_raw, lo_raw = at(p.O), at(p.H), at(p.L)
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    return {"O": open_, "H": top + 0.5 * np.maximum(hi_raw - top, 0.0),
            "L": bottom - 0.5 * np.maximum(bottom - lo_raw, 0.0), "C": close}


def topix(m: MarketCore) -> pd.DataFrame:
    u = m.universe
    lv = levels(m, u.topix[None, :].astype(np.float64))
    cols = {"Date": m.days, **{k: np.round(v[0], 2) for k, v in lv.items()}}
    return canonical("topix", cols, m.days.size)


def indices(m: MarketCore) -> pd.DataFrame:
    codes, weights = memberships(m)
    lv = levels(m, weights)
    k, d = weights.shape[0], m.days.size
    order = np.argsort(np.array(codes), kind="stable")
    cols = {"Date": np.repeat(m.days, k), "Code": np.tile(np.array(codes, dtype=object)[order], d),
            **{f: np.round(v[order].T.ravel(), 2) for f, v in lv.items()}}
    return canonical("indices", cols, k * d)
