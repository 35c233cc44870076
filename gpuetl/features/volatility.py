"""Range-based volatility and bands on adjusted prices, all scale-free (per-unit or percent of the close).

Parkinson and Garman-Klass use the day's high, low, open and close, so they see intraday moves that
close-to-close volatility misses; they are annualised like `realized_vol` (x sqrt(252)). ATR and the
Bollinger bands follow TA-Lib (ATR, NATR, BBANDS with the population std); the raw ATR is in price units,
which jump at every split on forward-adjusted prices, so only NATR (ATR / close x 100) is a feature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from gpuetl.config import Positive
from gpuetl.features.momentum import TA_EPSILON, true_range
from gpuetl.features.panel import Panel
from gpuetl.features.price import TRADING_DAYS
from gpuetl.features.smoothing import wilder
from gpuetl.ops import SOME, Days, Days2, feature

_GK_CLOSE_WEIGHT = 2.0 * math.log(2.0) - 1.0


@feature("parkinson", group="volatility", inputs=("high", "low"),
         outputs=lambda p: tuple(f"parkinson_{n}d" for n in p["windows"]), lookback=lambda p: max(p["windows"]) - 1,
         tolerance="sum_order")
def parkinson(panel: Panel, windows: Annotated[Sequence[Days], SOME]) -> Mapping[str, Any]:
    """Parkinson volatility: annualised sqrt(mean(ln(high/low)^2) / (4 ln 2)) over each window."""
    xp = panel.xp
    squared = xp.log(panel["high"] / panel["low"]) ** 2
    return {f"parkinson_{n}d": xp.sqrt(panel.rolling(squared, n, "mean") / (4.0 * math.log(2.0)) * TRADING_DAYS)
            for n in windows}


@feature("garman_klass", group="volatility", inputs=("open", "high", "low", "close"),
         outputs=lambda p: tuple(f"gk_{n}d" for n in p["windows"]), lookback=lambda p: max(p["windows"]) - 1,
         tolerance="sum_order")
def garman_klass(panel: Panel, windows: Annotated[Sequence[Days], SOME]) -> Mapping[str, Any]:
    """Garman-Klass volatility: annualised sqrt(mean(ln(H/L)^2 / 2 - (2 ln 2 - 1) ln(C/O)^2)), floored at 0."""
    xp = panel.xp
    daily = 0.5 * xp.log(panel["high"] / panel["low"]) ** 2 \
        - _GK_CLOSE_WEIGHT * xp.log(panel["close"] / panel["open"]) ** 2
    # the daily term can be negative (a wide open-close move inside a narrow range); so, rarely, can its mean
    return {f"gk_{n}d": xp.sqrt(xp.maximum(panel.rolling(daily, n, "mean"), 0.0) * TRADING_DAYS) for n in windows}


def atr(panel: Panel, n: int) -> Any:
    """TA-Lib's ATR in (adjusted) price units: Wilder's average of the true range, seeded with its first mean."""
    xp = panel.xp
    return xp.where(xp.isnan(panel["close"]), xp.nan, wilder(panel, true_range(panel), n))


@feature("natr", group="volatility", inputs=("high", "low", "close"),
         outputs=lambda p: tuple(f"natr{n}" for n in p["periods"]), lookback=lambda p: max(p["periods"]),
         tolerance="sum_order")
def natr(panel: Panel, periods: Annotated[Sequence[Days], SOME]) -> Mapping[str, Any]:
    """Normalised average true range (TA-Lib NATR: ATR / close x 100)."""
    return {f"natr{n}": atr(panel, n) / panel["close"] * 100.0 for n in periods}


@feature("bollinger", group="volatility", inputs=("close",),
         outputs=lambda p: (f"bb{p['window']}_pctb", f"bb{p['window']}_width"), lookback=lambda p: p["window"] - 1,
         tolerance="float32")
def bollinger(panel: Panel, window: Days2, nbdev: Positive) -> Mapping[str, Any]:
    """Bollinger %b (where the close sits in the bands) and bandwidth ((upper - lower) / middle), TA-Lib BBANDS."""
    xp = panel.xp
    close = panel["close"]
    middle = panel.rolling(close, window, "mean")
    # TA-Lib uses the population variance (ddof 0) and treats one below 1e-8 as 0
    variance = panel.rolling(close, window, "var") * ((window - 1) / window) if window > 1 else xp.zeros(panel.n)
    std = xp.where(variance < TA_EPSILON, 0.0, xp.sqrt(xp.maximum(variance, 0.0)))
    width = 2.0 * (nbdev * std)  # upper - lower
    lower = middle - nbdev * std
    wide = width > 0.0
    pctb = xp.where(wide, (close - lower) / xp.where(wide, width, 1.0), xp.nan)
    return {f"bb{window}_pctb": pctb, f"bb{window}_width": width / middle}
