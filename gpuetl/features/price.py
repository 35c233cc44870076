"""Per-code price features on adjusted prices (scale-free: returns, ratios, values relative to the close).

Definitions follow TA-Lib where it has the indicator (SMA, EMA seeded with the SMA of the first window)
and plain pandas otherwise; tests hold each to its reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

from gpuetl.features.panel import Panel
from gpuetl.features.smoothing import seeded_ewm
from gpuetl.ops import SOME, Days, Days2, Normalization, feature

TRADING_DAYS = 252


def ema_talib(panel: Panel, x: Any, n: int) -> Any:
    """TA-Lib's EMA per code: the first value is the SMA of the first full window, then alpha = 2/(n+1)."""
    return seeded_ewm(panel, x, panel.rolling(x, n, "mean"), 2.0 / (n + 1))


@feature("returns", group="returns", inputs=("close",),
         outputs=lambda p: tuple(f"ret_{k}d" for k in p["horizons"]), lookback=lambda p: max(p["horizons"]))
def returns(panel: Panel, horizons: Annotated[tuple[Days, ...], SOME]) -> Mapping[str, Any]:
    """Simple returns of the adjusted close over each horizon."""
    return {f"ret_{k}d": panel.pct_change(panel["close"], k) for k in horizons}


@feature("overnight_intraday", group="returns", inputs=("open", "close"),
         outputs=lambda p: ("ret_overnight", "ret_intraday"), lookback=lambda p: 1)
def overnight_intraday(panel: Panel) -> Mapping[str, Any]:
    """Overnight (open / previous close) and intraday (close / open) returns."""
    return {"ret_overnight": panel["open"] / panel.shift(panel["close"]) - 1.0,
            "ret_intraday": panel["close"] / panel["open"] - 1.0}


@feature("range_location", group="range", inputs=("high", "low", "close"),
         outputs=lambda p: ("range_hl", "close_location"), lookback=lambda p: 0)
def range_location(panel: Panel) -> Mapping[str, Any]:
    """High-low range relative to the close, and where the close sits in it (0 = low, 1 = high)."""
    xp = panel.xp
    hl = panel["high"] - panel["low"]
    loc = xp.where(hl > 0, (panel["close"] - panel["low"]) / xp.where(hl > 0, hl, 1.0), xp.nan)
    return {"range_hl": hl / panel["close"], "close_location": loc}


def _cross_is_raw(column: str) -> Normalization:
    """Crosses are events (+1, -1, 0): kept as they are; gaps and slopes are compared across codes."""
    return "raw" if column.endswith("_cross") else "cross_section"


def _ma_outputs(kind: str) -> Any:
    def outputs(p: Mapping[str, Any]) -> tuple[str, ...]:
        names = [f"{kind}{n}_gap" for n in p["windows"]] + [f"{kind}{n}_slope" for n in p["windows"]]
        names += [f"{kind}{a}_{b}_cross" for a, b in p["crosses"]]
        return tuple(names)

    return outputs


def _ma_features(panel: Panel, ma: dict[int, Any], kind: str, windows: tuple[int, ...], slope_days: int,
                 crosses: tuple[tuple[int, int], ...]) -> dict[str, Any]:
    xp = panel.xp
    close = panel["close"]
    out = {f"{kind}{n}_gap": close / ma[n] - 1.0 for n in windows}
    out |= {f"{kind}{n}_slope": ma[n] / panel.shift(ma[n], slope_days) - 1.0 for n in windows}
    for a, b in crosses:
        diff = xp.sign(ma[a] - ma[b])
        prev = panel.shift(diff, 1)
        # +1 on the day the fast average crosses above the slow one, -1 below, 0 otherwise
        out[f"{kind}{a}_{b}_cross"] = xp.where(xp.isnan(diff) | xp.isnan(prev), xp.nan,
                                               xp.where(diff != prev, diff, 0.0))
    return out


@feature("sma", group="trend", inputs=("close",), outputs=_ma_outputs("sma"),
         lookback=lambda p: max(p["windows"]) + p["slope_days"], normalize=_cross_is_raw, tolerance="sum_order")
def sma(panel: Panel, windows: Annotated[tuple[Days, ...], SOME], slope_days: Days,
        crosses: tuple[tuple[Days, Days], ...]) -> Mapping[str, Any]:
    """Gap of the close to its SMA, the SMA's slope over `slope_days`, and fast/slow SMA crosses."""
    ma = {n: panel.rolling(panel["close"], n, "mean") for n in sorted(set(windows) | {x for c in crosses for x in c})}
    return _ma_features(panel, ma, "sma", windows, slope_days, crosses)


@feature("ema", group="trend", inputs=("close",), outputs=_ma_outputs("ema"),
         lookback=lambda p: max(p["windows"]) + p["slope_days"], normalize=_cross_is_raw, tolerance="sum_order")
def ema(panel: Panel, windows: Annotated[tuple[Days, ...], SOME], slope_days: Days,
        crosses: tuple[tuple[Days, Days], ...]) -> Mapping[str, Any]:
    """Gap of the close to its EMA (TA-Lib seeding), the EMA's slope, and fast/slow EMA crosses."""
    ma = {n: ema_talib(panel, panel["close"], n) for n in sorted(set(windows) | {x for c in crosses for x in c})}
    return _ma_features(panel, ma, "ema", windows, slope_days, crosses)


@feature("realized_vol", group="volatility", inputs=("close",),
         outputs=lambda p: tuple(f"rvol_{n}d" for n in p["windows"]), lookback=lambda p: max(p["windows"]) + 1,
         tolerance="sum_order")
def realized_vol(panel: Panel, windows: Annotated[tuple[Days2, ...], SOME]) -> Mapping[str, Any]:
    """Annualised standard deviation of daily log returns over each window (pandas rolling std, ddof 1)."""
    xp = panel.xp
    logret = xp.log(panel["close"] / panel.shift(panel["close"]))
    return {f"rvol_{n}d": panel.rolling(logret, n, "std") * math.sqrt(TRADING_DAYS) for n in windows}
