"""Volatility features against TA-Lib (ATR, NATR, BBANDS, from the first value), pandas references
(Parkinson, Garman-Klass, and all of them on walks with no-trade days), hand-built cases, declared
lookbacks, and the leakage rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import talib

from gpuetl.backend import Backend
from gpuetl.features import volatility
from gpuetl.features.volatility import atr
from tests._testing import assert_backend_equal, host
from tests.support.features import (
    assert_causal,
    assert_lookbacks,
    compare,
    compute,
    per_code_frames,
    seeded_ewm_ref,
    single_code,
)
from tests.support.panels import make_panel, per_code, random_walk_frame

PARAMS = {
    "parkinson": {"windows": (5, 20, 60)},
    "garman_klass": {"windows": (5, 20, 60)},
    "natr": {"periods": (14,)},
    "bollinger": {"window": 20, "nbdev": 2.0},
}
# %b is 0..1 and crosses 0 when the close touches the lower band; pandas' rolling variance and TA-Lib's
# running sum of squares differ by ~1e-13 of the variance, i.e. ~5e-14 in %b
TOLS = {"bb20_pctb": "reference_crossing"}
assert volatility.__name__  # the import registers the volatility features


def bands_from(upper: np.ndarray, middle: np.ndarray, lower: np.ndarray, close: np.ndarray) -> dict[str, np.ndarray]:
    return {"bb20_pctb": (close - lower) / (upper - lower), "bb20_width": (upper - lower) / middle}


@pytest.mark.parametrize("walk", ["plain", "splits", "ticks"])
def test_atr_natr_bbands_agree_with_talib(backend: Backend, walk: str) -> None:
    tick = 10.0 if walk == "ticks" else None
    df = random_walk_frame(seed=21, splits=walk == "splits", tick=tick)
    plain = random_walk_frame(seed=21, tick=tick)
    panel = make_panel(backend, df)
    got = compute(backend, panel, PARAMS)
    got["atr14"] = host(backend, atr(panel, 14))  # in adjusted units, which are the unsplit walk's
    for rows in per_code(df):
        h, lo, c = (plain[col].to_numpy()[rows] for col in ("H", "L", "C"))
        refs = {"atr14": talib.ATR(h, lo, c, 14), "natr14": talib.NATR(h, lo, c, 14),
                **bands_from(*talib.BBANDS(c, 20, 2.0, 2.0, 0), c)}
        compare(got, rows, refs, TOLS)


def pandas_volatility(f: pd.DataFrame) -> dict[str, pd.Series]:
    o, h, lo, c = f["O"], f["H"], f["L"], f["C"]
    out: dict[str, pd.Series] = {}
    hl = np.log(h / lo) ** 2
    co = np.log(c / o) ** 2
    for n in (5, 20, 60):
        out[f"parkinson_{n}d"] = np.sqrt(hl.rolling(n).mean() / (4 * math.log(2)) * 252)
        gk = (0.5 * hl - (2 * math.log(2) - 1) * co).rolling(n).mean()
        out[f"gk_{n}d"] = np.sqrt(gk.clip(lower=0) * 252)
    prev_c = c.shift()
    tr = pd.concat([h - lo, (h - prev_c).abs(), (lo - prev_c).abs()], axis=1).max(axis=1, skipna=False)
    out["natr14"] = seeded_ewm_ref(tr, tr.rolling(14).mean(), 1 / 14).where(c.notna()) / c * 100
    middle, std = c.rolling(20).mean(), c.rolling(20).std(ddof=0)
    out |= bands_from(middle + 2 * std, middle, middle - 2 * std, c)
    return out


def test_range_volatility_matches_pandas_without_and_with_no_trade_days(backend: Backend) -> None:
    for gaps in (0.0, 0.04):
        df = random_walk_frame(seed=22, lengths=(300, 1, 45, 260), gaps=gaps)
        got = compute(backend, make_panel(backend, df), PARAMS)
        for rows, f in per_code_frames(df):
            compare(got, rows, pandas_volatility(f), TOLS)
        idle = df["C"].isna().to_numpy()
        for name, values in got.items():
            assert np.isnan(values[idle]).all(), name


def test_flat_prices_hand_built(backend: Backend) -> None:
    """No range: zero Parkinson and GK vol, zero bandwidth, and no %b (the bands have no width)."""
    got = compute(backend, single_code(backend, np.full(30, 500.0), spread=0.0), PARAMS)
    assert_backend_equal(got["parkinson_5d"][4:], 0.0, tol="exact")
    assert_backend_equal(got["gk_20d"][19:], 0.0, tol="exact")
    assert_backend_equal(got["bb20_width"][19:], 0.0, tol="exact")
    assert np.isnan(got["bb20_pctb"]).all()
    assert_backend_equal(got["natr14"][14:], 0.0, tol="exact")


def test_parkinson_of_a_constant_range(backend: Backend) -> None:
    """High/low = e^0.02 every day: daily Parkinson variance is 0.02^2 / (4 ln 2)."""
    close = np.full(25, 100.0)
    panel = single_code(backend, close)
    panel.columns["high"] = panel["close"] * math.exp(0.01)
    panel.columns["low"] = panel["close"] * math.exp(-0.01)
    got = compute(backend, panel, {"parkinson": {"windows": (5,)}})
    assert_backend_equal(got["parkinson_5d"][4:], 0.02 / math.sqrt(4 * math.log(2)) * math.sqrt(252), tol="rounding")


def test_volatility_lookbacks_are_declared_correctly(backend: Backend) -> None:
    assert_lookbacks(backend, PARAMS)


def test_volatility_features_do_not_leak(backend: Backend) -> None:
    assert_causal(backend, PARAMS)
