"""Targets: forward returns of the adjusted close, excess over TOPIX, and up/down labels.

Targets are outputs only (column names start with `target_`) and never feed a feature. A row whose
horizon runs past the data, or lands on a no-trade day, gets a NaN target: it is kept, never dropped.
"""

from __future__ import annotations

from typing import Any

from gpuetl.features.panel import Panel


def forward_return(panel: Panel, x: Any, k: int) -> Any:
    return panel.shift(x, -k) / x - 1.0


def topix_forward_return(panel: Panel, topix_dates: Any, topix_close: Any, k: int) -> Any:
    """TOPIX's k-day forward return per panel row (by its date)."""
    xp = panel.xp
    close = xp.asarray(topix_close, dtype=xp.float64)
    fwd = xp.full(len(close), xp.nan)
    if len(close) > k:
        fwd[: len(close) - k] = close[k:] / close[:-k] - 1.0
    return panel.broadcast_dates(panel.align_dates(topix_dates, fwd))


def targets(panel: Panel, horizons: tuple[int, ...], topix_dates: Any, topix_close: Any) -> dict[str, Any]:
    xp = panel.xp
    out: dict[str, Any] = {}
    for k in horizons:
        ret = forward_return(panel, panel["close"], k)
        excess = ret - topix_forward_return(panel, topix_dates, topix_close, k)
        out[f"target_ret_{k}d"] = ret
        out[f"target_excess_{k}d"] = excess
        out[f"target_up_{k}d"] = xp.where(xp.isnan(ret), xp.nan, (ret > 0).astype(xp.float64))
        out[f"target_outperform_{k}d"] = xp.where(xp.isnan(excess), xp.nan, (excess > 0).astype(xp.float64))
    return out
