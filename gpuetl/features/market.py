"""Market (TOPIX) features and each stock's rolling beta, alpha, idiosyncratic vol and correlation to it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

from gpuetl.features.panel import Panel
from gpuetl.features.price import TRADING_DAYS
from gpuetl.ops import SOME, Days, Days2, feature


def _series_pct_change(xp: Any, x: Any, k: int) -> Any:
    out = xp.full(len(x), xp.nan)
    if len(x) > k:
        out[k:] = x[k:] / x[:-k] - 1.0
    return out


@feature("market", group="market", inputs=("mkt_close",),
         outputs=lambda p: (*(f"mkt_ret_{k}d" for k in p["horizons"]), f"mkt_vol_{p['vol_window']}d",
                            f"mkt_trend_{p['trend_window']}d"),
         lookback=lambda p: max(*p["horizons"], p["vol_window"] + 1, p["trend_window"]), normalize="time_series",
         axis="market", tolerance="sum_order")
def market(panel: Panel, horizons: Annotated[tuple[Days, ...], SOME], vol_window: Days2,
           trend_window: Days) -> Mapping[str, Any]:
    """TOPIX returns, realized vol and trend (close over its SMA), the same for every stock that day."""
    xp = panel.xp
    b = panel.backend
    close = panel.date_columns["mkt_close"]
    out = {f"mkt_ret_{k}d": panel.broadcast_dates(_series_pct_change(xp, close, k)) for k in horizons}
    logret = xp.log(close / xp.concatenate([xp.full(1, xp.nan), close[:-1]]))
    vol = b.rolling(logret, vol_window, "std", vol_window) * math.sqrt(TRADING_DAYS)
    sma = b.rolling(close, trend_window, "mean", trend_window)
    out[f"mkt_vol_{vol_window}d"] = panel.broadcast_dates(vol)
    out[f"mkt_trend_{trend_window}d"] = panel.broadcast_dates(close / sma - 1.0)
    return out


@feature("beta", group="market", inputs=("close", "mkt_close"),
         outputs=lambda p: tuple(f"{s}_{n}d" for n in p["windows"] for s in ("beta", "alpha", "idio_vol", "mkt_corr")),
         lookback=lambda p: max(p["windows"]) + 1, tolerance="float32")
def beta(panel: Panel, windows: Annotated[tuple[Days2, ...], SOME]) -> Mapping[str, Any]:
    """Rolling OLS of the stock's daily return on TOPIX's: beta, daily alpha, annualised residual vol, corr."""
    xp = panel.xp
    r = panel.pct_change(panel["close"], 1)
    m = panel.pct_change(panel["mkt_close"], 1)
    both = ~(xp.isnan(r) | xp.isnan(m))
    r, m = xp.where(both, r, xp.nan), xp.where(both, m, xp.nan)
    out: dict[str, Any] = {}
    for n in windows:
        er, em = panel.rolling(r, n, "mean"), panel.rolling(m, n, "mean")
        cov = panel.rolling(r * m, n, "mean") - er * em
        # E[x^2] - E[x]^2 can dip a hair below zero by cancellation; a variance cannot
        var_m = xp.maximum(panel.rolling(m * m, n, "mean") - em * em, 0.0)
        var_r = xp.maximum(panel.rolling(r * r, n, "mean") - er * er, 0.0)
        ok = var_m > 0
        b_ = xp.where(ok, cov / xp.where(ok, var_m, 1.0), xp.nan)
        resid = xp.maximum(var_r - b_ * b_ * var_m, 0.0)
        denom = xp.sqrt(var_r * var_m)
        out[f"beta_{n}d"] = b_
        out[f"alpha_{n}d"] = er - b_ * em
        out[f"idio_vol_{n}d"] = xp.sqrt(resid) * math.sqrt(TRADING_DAYS)
        out[f"mkt_corr_{n}d"] = xp.where(denom > 0, cov / xp.where(denom > 0, denom, 1.0), xp.nan)
    return out
