"""Momentum oscillators on adjusted prices, defined as TA-Lib defines them (the reference the tests hold).

TA-Lib seeds its recursive averages in particular ways (Wilder's averages with the mean of the first
window, MACD's fast EMA with a window aligned to the slow one, ADX with the mean of the first DXs); the
seeds are reproduced here, so values agree with TA-Lib from the first one, not only after a warm-up.
Outputs stay in TA-Lib's units (RSI, %K, DI, ADX in 0..100), which are already scale-free.

Missing days (a no-trade day has NaN prices): differences that touch one are NaN, the recursive averages
follow pandas' `ewm(adjust=False)` rule for NaN (weights keep decaying, the last value is carried), and
every output is NaN on the missing day itself. TA-Lib has no rule for NaN, so there the tests hold these
to pandas references.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from gpuetl.features.panel import Panel
from gpuetl.features.smoothing import first_valid, seeded_ewm, wilder
from gpuetl.ops import SOME, Days, Days2, feature

TA_EPSILON = 1e-8  # TA-Lib's TA_IS_ZERO: |v| < 1e-8 counts as zero (absolute, in the value's units)


def true_range(panel: Panel) -> Any:
    """max(high - low, |high - prev close|, |low - prev close|); NaN on a code's first row, as TA-Lib's TRANGE."""
    xp = panel.xp
    prev_close = panel.shift(panel["close"], 1)
    high, low = panel["high"], panel["low"]
    return xp.maximum(xp.maximum(high - low, xp.abs(high - prev_close)), xp.abs(low - prev_close))


def directional_movement(panel: Panel) -> tuple[Any, Any]:
    """Wilder's one-day +DM and -DM (the larger outside move, only if positive; ties give 0 to both)."""
    xp = panel.xp
    up = panel["high"] - panel.shift(panel["high"], 1)
    down = panel.shift(panel["low"], 1) - panel["low"]
    missing = xp.isnan(up) | xp.isnan(down)
    plus = xp.where(missing, xp.nan, xp.where((up > 0) & (up > down), up, 0.0))
    minus = xp.where(missing, xp.nan, xp.where((down > 0) & (down > up), down, 0.0))
    return plus, minus


def _safe(xp: Any, ok: Any, den: Any) -> Any:
    """`den` where `ok`, else 1.0: a denominator that never warns; the caller masks those rows."""
    return xp.where(ok, den, 1.0)


@feature("rsi", group="momentum", inputs=("close",), outputs=lambda p: tuple(f"rsi{n}" for n in p["periods"]),
         lookback=lambda p: max(p["periods"]), tolerance="sum_order")
def rsi(panel: Panel, periods: Annotated[Sequence[Days], SOME]) -> Mapping[str, Any]:
    """Relative strength index (TA-Lib RSI: Wilder-smoothed gains and losses, 0..100)."""
    xp = panel.xp
    close = panel["close"]
    diff = close - panel.shift(close, 1)
    gain, loss = xp.maximum(diff, 0.0), xp.maximum(-diff, 0.0)
    out = {}
    for n in periods:
        avg_gain, avg_loss = wilder(panel, gain, n), wilder(panel, loss, n)
        total = avg_gain + avg_loss
        moved = xp.abs(total) >= TA_EPSILON  # TA-Lib gives 0 when nothing moved over the window
        value = xp.where(moved, 100.0 * (avg_gain / _safe(xp, moved, total)), 0.0)
        out[f"rsi{n}"] = xp.where(xp.isnan(total) | xp.isnan(close), xp.nan, value)
    return out


@feature("macd", group="momentum", inputs=("close",), outputs=lambda p: ("macd", "macd_signal", "macd_hist"),
         lookback=lambda p: max(p["fast"], p["slow"]) + p["signal"] - 2, tolerance="sum_order")
def macd(panel: Panel, fast: Days, slow: Days, signal: Days) -> Mapping[str, Any]:
    """MACD line, signal and histogram (TA-Lib MACD), each divided by the close to be scale-free."""
    xp = panel.xp
    close = panel["close"]
    fast, slow = min(fast, slow), max(fast, slow)  # TA-Lib swaps them too (the lookback uses the larger)
    slow_sma = panel.rolling(close, slow, "mean")
    # TA-Lib seeds the fast EMA on the slow EMA's first row, with the mean of the `fast` closes ending there
    fast_seed = xp.where(xp.isnan(slow_sma), xp.nan, panel.rolling(close, fast, "mean"))
    line = seeded_ewm(panel, close, fast_seed, 2.0 / (fast + 1)) - seeded_ewm(panel, close, slow_sma, 2.0 / (slow + 1))
    line = xp.where(xp.isnan(close), xp.nan, line)
    sig = seeded_ewm(panel, line, panel.rolling(line, signal, "mean"), 2.0 / (signal + 1))
    off = xp.isnan(sig) | xp.isnan(close)  # TA-Lib starts all three outputs with the signal
    line, sig = xp.where(off, xp.nan, line), xp.where(off, xp.nan, sig)
    return {"macd": line / close, "macd_signal": sig / close, "macd_hist": (line - sig) / close}


def _high_low(panel: Panel, n: int) -> tuple[Any, Any, Any]:
    """Highest high and lowest low over the last `n` rows (today included), and highest - lowest."""
    highest = panel.rolling(panel["high"], n, "max")
    lowest = panel.rolling(panel["low"], n, "min")
    return highest, lowest, highest - lowest


@feature("stoch", group="momentum", inputs=("high", "low", "close"), outputs=lambda p: ("stoch_k", "stoch_d"),
         lookback=lambda p: p["fastk"] + p["slowk"] + p["slowd"] - 3, tolerance="sum_order")
def stoch(panel: Panel, fastk: Days, slowk: Days, slowd: Days) -> Mapping[str, Any]:
    """Slow stochastics %K and %D (TA-Lib STOCH with SMA smoothing, 0..100)."""
    xp = panel.xp
    _highest, lowest, span = _high_low(panel, fastk)
    ranged = span != 0.0  # TA-Lib gives 0 on a flat window
    fast_k = xp.where(ranged, (panel["close"] - lowest) / _safe(xp, ranged, span / 100.0), 0.0)
    fast_k = xp.where(xp.isnan(span) | xp.isnan(panel["close"]), xp.nan, fast_k)
    k = panel.rolling(fast_k, slowk, "mean")
    d = panel.rolling(k, slowd, "mean")
    return {"stoch_k": xp.where(xp.isnan(d), xp.nan, k), "stoch_d": d}


@feature("willr", group="momentum", inputs=("high", "low", "close"),
         outputs=lambda p: tuple(f"willr{n}" for n in p["periods"]), lookback=lambda p: max(p["periods"]) - 1)
def willr(panel: Panel, periods: Annotated[Sequence[Days], SOME]) -> Mapping[str, Any]:
    """Williams %R (TA-Lib WILLR): where the close sits below the window's high, -100..0."""
    xp = panel.xp
    out = {}
    for n in periods:
        highest, _lowest, span = _high_low(panel, n)
        ranged = span != 0.0
        value = xp.where(ranged, (highest - panel["close"]) / _safe(xp, ranged, span / -100.0), 0.0)
        out[f"willr{n}"] = xp.where(xp.isnan(span) | xp.isnan(panel["close"]), xp.nan, value)
    return out


@feature("roc", group="momentum", inputs=("close",), outputs=lambda p: tuple(f"roc{n}" for n in p["periods"]),
         lookback=lambda p: max(p["periods"]))
def roc(panel: Panel, periods: Annotated[Sequence[Days], SOME]) -> Mapping[str, Any]:
    """Rate of change in percent (TA-Lib ROC: (close / close n days ago - 1) * 100)."""
    return {f"roc{n}": (panel["close"] / panel.shift(panel["close"], n) - 1.0) * 100.0 for n in periods}


@feature("cci", group="momentum", inputs=("high", "low", "close"),
         outputs=lambda p: tuple(f"cci{n}" for n in p["periods"]), lookback=lambda p: max(p["periods"]) - 1,
         tolerance="sum_order")
def cci(panel: Panel, periods: Annotated[Sequence[Days], SOME]) -> Mapping[str, Any]:
    """Commodity channel index (TA-Lib CCI): typical price minus its mean, over 0.015 x mean absolute deviation."""
    xp = panel.xp
    typical = (panel["high"] + panel["low"] + panel["close"]) / 3.0
    out = {}
    for n in periods:
        mean = panel.rolling(typical, n, "mean")
        # mean |typical - today's window mean| over the window: one shift per lag, never a loop over rows
        deviation = sum((xp.abs(panel.shift(typical, j) - mean) for j in range(n)), xp.zeros(panel.n)) / n
        centred = typical - mean
        defined = (centred != 0.0) & (deviation != 0.0)
        value = xp.where(defined, centred / _safe(xp, defined, 0.015 * deviation), 0.0)
        out[f"cci{n}"] = xp.where(xp.isnan(deviation), xp.nan, value)
    return out


@feature("adx", group="momentum", inputs=("high", "low", "close"),
         outputs=lambda p: (f"adx{p['period']}", f"plus_di{p['period']}", f"minus_di{p['period']}"),
         lookback=lambda p: 2 * p["period"] - 1, tolerance="sum_order")
def adx(panel: Panel, period: Days2) -> Mapping[str, Any]:
    """Average directional index and +DI / -DI (TA-Lib ADX, PLUS_DI, MINUS_DI; Wilder's smoothing, 0..100)."""
    xp = panel.xp
    n = period
    if n < 2:
        raise ValueError(f"adx period must be >= 2, got {n}")
    plus_dm, minus_dm = directional_movement(panel)
    tr = true_range(panel)
    # TA-Lib keeps Wilder sums S = S - S/n + x, seeded with the sum of the first n - 1 one-day values
    # (rows 1..n-1), and writes DI from row n on; S/n is an EWM with alpha 1/n seeded with that sum / n
    smooth = {k: seeded_ewm(panel, v, panel.rolling(v, n - 1, "sum") / n, 1.0 / n)
              for k, v in (("plus", plus_dm), ("minus", minus_dm), ("tr", tr))}
    tr_sum = smooth["tr"] * n  # TA-Lib's prevTR, for its zero test
    has_range = tr_sum >= TA_EPSILON
    # no DI on the seed row itself (TA-Lib starts one row later), nor on a missing day
    missing = first_valid(panel, tr_sum) | xp.isnan(tr_sum) | xp.isnan(panel["close"])
    di = {}
    for k in ("plus", "minus"):
        value = xp.where(has_range, 100.0 * (smooth[k] / _safe(xp, has_range, smooth["tr"])), 0.0)
        di[k] = xp.where(missing, xp.nan, value)
    total = di["plus"] + di["minus"]
    defined = has_range & (xp.abs(total) >= TA_EPSILON)
    dx = xp.where(defined, 100.0 * (xp.abs(di["minus"] - di["plus"]) / _safe(xp, defined, total)), xp.nan)
    dx = xp.where(missing, xp.nan, dx)
    # the first ADX is the mean of n DX values, an undefined DX counting as 0; afterwards TA-Lib holds the
    # ADX on a day whose DX is undefined, which is pandas' ignore_na=True (missing days are skipped too)
    seed = panel.rolling(xp.where(missing, xp.nan, xp.where(defined, dx, 0.0)), n, "mean")
    average = seeded_ewm(panel, dx, seed, 1.0 / n, ignore_na=True)
    average = xp.where(xp.isnan(panel["close"]), xp.nan, average)
    return {f"adx{n}": average, f"plus_di{n}": di["plus"], f"minus_di{n}": di["minus"]}
