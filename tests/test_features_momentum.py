"""Momentum features against TA-Lib (from the first value: the seeds are TA-Lib's), pandas references on
walks with no-trade days, hand-built cases, declared lookbacks, and the leakage rule.

Also holds the perturbation helper the other feature test modules use (`assert_causal`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib

from gpuetl.backend import Backend
from gpuetl.features import momentum  # noqa: F401  (registers the momentum features)
from tests._testing import PANDAS_EWM_GAP_FIXED, assert_backend_equal
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

PARAMS: dict[str, dict[str, Any]] = {
    "rsi": {"periods": (2, 14)},
    "macd": {"fast": 12, "slow": 26, "signal": 9},
    "stoch": {"fastk": 14, "slowk": 3, "slowd": 3},
    "willr": {"periods": (14,)},
    "roc": {"periods": (10, 20)},
    "cci": {"periods": (20,)},
    "adx": {"period": 14},
}
# values that cross zero (relative error is meaningless there): MACD / close is ~1e-2 of O(1) window statistics,
# CCI is ~1e2 (its numerator is a difference of two nearly equal prices)
TOLS = {"macd": "reference_crossing", "macd_signal": "reference_crossing", "macd_hist": "reference_crossing",
        "cci20": "reference_crossing_price"}


# ----------------------------------------------------------------------------- TA-Lib


def talib_momentum(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    k, d = talib.STOCH(h, lo, c, fastk_period=14, slowk_period=3, slowk_matype=0, slowd_period=3, slowd_matype=0)
    return {"rsi2": talib.RSI(c, 2), "rsi14": talib.RSI(c, 14), "macd": macd / c, "macd_signal": signal / c,
            "macd_hist": hist / c, "stoch_k": k, "stoch_d": d, "willr14": talib.WILLR(h, lo, c, 14),
            "roc10": talib.ROC(c, 10), "roc20": talib.ROC(c, 20), "cci20": talib.CCI(h, lo, c, 20),
            "adx14": talib.ADX(h, lo, c, 14), "plus_di14": talib.PLUS_DI(h, lo, c, 14),
            "minus_di14": talib.MINUS_DI(h, lo, c, 14)}


@pytest.mark.parametrize("walk", ["plain", "splits", "ticks"])
def test_momentum_agrees_with_talib(backend: Backend, walk: str) -> None:
    """Same NaN pattern and values as TA-Lib from the first output; with splits, against TA-Lib on the
    unsplit walk (forward-adjusted prices are continuous); on a price grid (ties, flat stretches) too."""
    tick = 10.0 if walk == "ticks" else None
    df = random_walk_frame(seed=5, splits=walk == "splits", tick=tick)
    plain = random_walk_frame(seed=5, tick=tick)
    got = compute(backend, make_panel(backend, df), PARAMS)
    for rows in per_code(df):
        h, lo, c = (plain[col].to_numpy()[rows] for col in ("H", "L", "C"))
        compare(got, rows, talib_momentum(h, lo, c), TOLS)


def test_talib_stoch_defaults_also_match(backend: Backend) -> None:
    """talib.STOCH's own defaults are fastk 5 (the catalogue uses 14); both parameterisations agree."""
    df = random_walk_frame(seed=6)
    got = compute(backend, make_panel(backend, df), {"stoch": {"fastk": 5, "slowk": 3, "slowd": 3}})
    for rows in per_code(df):
        k, d = talib.STOCH(*(df[col].to_numpy()[rows] for col in ("H", "L", "C")))
        compare(got, rows, {"stoch_k": k, "stoch_d": d})


def test_flat_and_flat_then_moving_prices_match_talib(backend: Backend) -> None:
    """TA-Lib's zero rules: RSI/STOCH/%R/CCI are 0 on a flat window, ADX holds while DX is undefined."""
    rng = np.random.default_rng(11)
    walk = 1000 * np.exp(np.cumsum(rng.standard_normal(90) * 0.02))
    close = np.concatenate([np.full(40, 1000.0), walk])
    high, low = close * (1 + rng.random(130) * 0.01), close * (1 - rng.random(130) * 0.01)
    high[:40] = low[:40] = 1000.0
    df = pd.DataFrame({"code": 0, "date": pd.bdate_range("2020-01-01", periods=130), "O": close, "H": high,
                       "L": low, "C": close, "Vo": 1.0, "Va": close, "AdjFactor": 1.0})
    got = compute(backend, make_panel(backend, df), PARAMS)
    compare(got, np.arange(130), talib_momentum(high, low, close), TOLS)
    assert (got["rsi14"][14:40] == 0).all() and (got["adx14"][27:40] == 0).all()


# ----------------------------------------------------------------------------- pandas references (gaps)


def pandas_momentum(f: pd.DataFrame) -> dict[str, pd.Series]:
    """The features on one code with no-trade days, written directly in pandas."""
    h, lo, c = f["H"], f["L"], f["C"]
    out: dict[str, pd.Series] = {}
    diff = c.diff()
    gain, loss = diff.clip(lower=0), (-diff).clip(lower=0)
    for n in (2, 14):
        ag = seeded_ewm_ref(gain, gain.rolling(n).mean(), 1 / n)
        al = seeded_ewm_ref(loss, loss.rolling(n).mean(), 1 / n)
        total = ag + al
        out[f"rsi{n}"] = (100 * ag / total).where(total.abs() >= 1e-8, 0.0).where(total.notna() & c.notna())

    slow_sma = c.rolling(26).mean()
    line = (seeded_ewm_ref(c, c.rolling(12).mean().where(slow_sma.notna()), 2 / 13)
            - seeded_ewm_ref(c, slow_sma, 2 / 27)).where(c.notna())
    signal = seeded_ewm_ref(line, line.rolling(9).mean(), 0.2)
    on = signal.notna() & c.notna()
    out |= {"macd": (line / c).where(on), "macd_signal": (signal / c).where(on),
            "macd_hist": ((line - signal) / c).where(on)}

    hh, ll = h.rolling(14).max(), lo.rolling(14).min()
    fast_k = ((c - ll) / ((hh - ll) / 100)).where(hh != ll, 0.0).where(hh.notna() & c.notna())
    k = fast_k.rolling(3).mean()
    d = k.rolling(3).mean()
    out |= {"stoch_k": k.where(d.notna()), "stoch_d": d}
    out["willr14"] = ((hh - c) / ((hh - ll) / -100)).where(hh != ll, 0.0).where(hh.notna() & c.notna())
    out |= {f"roc{n}": (c / c.shift(n) - 1) * 100 for n in (10, 20)}

    tp = (h + lo + c) / 3
    mean = tp.rolling(20).mean()
    mad = tp.rolling(20).apply(lambda w: np.abs(w - w.mean()).mean(), raw=True)
    out["cci20"] = ((tp - mean) / (0.015 * mad)).where((tp != mean) & (mad != 0), 0.0).where(mad.notna())

    up, down = h.diff(), -lo.diff()
    known = up.notna() & down.notna()
    plus_dm = up.where((up > down) & (up > 0), 0.0).where(known)
    minus_dm = down.where((down > up) & (down > 0), 0.0).where(known)
    prev_c = c.shift()
    tr = pd.concat([h - lo, (h - prev_c).abs(), (lo - prev_c).abs()], axis=1).max(axis=1, skipna=False)
    sm = {k: seeded_ewm_ref(v, v.rolling(13).sum() / 14, 1 / 14) for k, v in
          (("plus", plus_dm), ("minus", minus_dm), ("tr", tr))}
    seed_row = sm["tr"].notna() & sm["tr"].shift().isna()
    off = seed_row | sm["tr"].isna() | c.isna()
    ranged = sm["tr"] * 14 >= 1e-8
    di = {k: (100 * sm[k] / sm["tr"]).where(ranged, 0.0).mask(off) for k in ("plus", "minus")}
    total = di["plus"] + di["minus"]
    ok = ranged & (total.abs() >= 1e-8)
    dx = (100 * (di["minus"] - di["plus"]).abs() / total).where(ok).mask(off)
    seed = dx.where(ok, 0.0).mask(off).rolling(14).mean()
    out |= {"adx14": seeded_ewm_ref(dx, seed, 1 / 14, ignore_na=True).where(c.notna()),
            "plus_di14": di["plus"], "minus_di14": di["minus"]}
    return out


@pytest.mark.skipif(not PANDAS_EWM_GAP_FIXED, reason="pandas < 3.1.2 smooths RSI 2 across gaps by the `times` "
                                                    "rule (GH#54328); tests/test_kernel_ewm.py checks the fixed rule")
def test_momentum_with_no_trade_days_matches_pandas(backend: Backend) -> None:
    df = random_walk_frame(seed=7, lengths=(300, 1, 45, 260), gaps=0.04)
    got = compute(backend, make_panel(backend, df), PARAMS)
    for rows, f in per_code_frames(df):
        compare(got, rows, pandas_momentum(f), TOLS)
    idle = df["C"].isna().to_numpy()
    for name, values in got.items():
        assert np.isnan(values[idle]).all(), name  # every feature is NaN on a no-trade day
        assert np.isfinite(values[~idle]).any(), name


# ----------------------------------------------------------------------------- hand-built cases


def test_rsi_of_monotone_series_is_100_or_0(backend: Backend) -> None:
    rising = compute(backend, single_code(backend, np.arange(100.0, 140.0)), {"rsi": {"periods": (2, 14)}})
    falling = compute(backend, single_code(backend, np.arange(140.0, 100.0, -1)), {"rsi": {"periods": (2, 14)}})
    for n in (2, 14):
        assert np.isnan(rising[f"rsi{n}"][:n]).all()
        assert_backend_equal(rising[f"rsi{n}"][n:], 100.0, tol="exact")
        assert_backend_equal(falling[f"rsi{n}"][n:], 0.0, tol="exact")


def test_willr_and_stoch_at_the_high_and_low(backend: Backend) -> None:
    # closes at the top of a rising channel: close == window high -> %R 0, %K 100
    up = compute(backend, single_code(backend, np.arange(100.0, 140.0), spread=0.0), PARAMS)
    assert_backend_equal(up["willr14"][13:], 0.0, tol="exact")
    assert_backend_equal(up["stoch_k"][17:], 100.0, tol="rounding")
    down = compute(backend, single_code(backend, np.arange(140.0, 100.0, -1), spread=0.0), PARAMS)
    assert_backend_equal(down["willr14"][13:], -100.0, tol="exact")
    assert_backend_equal(down["stoch_d"][17:], 0.0, tol="exact")
    # a one-way trend: all movement is +DM, so -DI is 0 and ADX is 100
    assert_backend_equal(up["minus_di14"][14:], 0.0, tol="exact")
    assert_backend_equal(up["adx14"][27:], 100.0, tol="rounding")


def test_no_momentum_feature_crosses_a_code_boundary(backend: Backend) -> None:
    """A code's values do not depend on the code before it in the panel."""
    both = random_walk_frame(seed=12, lengths=(80, 70))
    alone = both[both["code"] == 1].reset_index(drop=True)
    a = compute(backend, make_panel(backend, both), PARAMS)
    b = compute(backend, make_panel(backend, alone), PARAMS)
    for name in a:
        assert_backend_equal(a[name][80:], b[name], tol="exact", err_msg=name)


# ----------------------------------------------------------------------------- contracts


def test_momentum_lookbacks_are_declared_correctly(backend: Backend) -> None:
    assert_lookbacks(backend, PARAMS)


def test_momentum_features_do_not_leak(backend: Backend) -> None:
    assert_causal(backend, PARAMS)

