"""Targets: forward returns of the adjusted close, excess over TOPIX, and up/down labels.

Two families, both kept (column names start with `target_`, and never feed a feature):

- `target_next_*` (the default label, the qlib and JPX-competition convention): close t+1 -> close t+1+k.
  Features are computed at close t; the earliest a position can be entered is the next close, so this is
  the return a strategy trading on row t can actually earn.
- `target_ret_*`, `target_excess_*`, `target_up_*`, `target_outperform_*`: close t -> close t+k, starting at
  the same close the features see. Kept for analysis; it overstates what can be traded.

A row whose horizon runs past the data, or lands on a no-trade day, gets a NaN target: it is kept, never
dropped. Horizons count rows of the code (business days: J-Quants sends a row per listed day).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from gpuetl.config import Items
from gpuetl.features.panel import Panel
from gpuetl.ops import Days, op

Horizons = Annotated[tuple[Days, ...], Items(min=1, unique=True)]  # business days ahead, one set of targets each

DESCRIPTIONS = {
    "target_next_ret_{k}d": "close t+1 -> close t+1+k return of the adjusted close (the default label)",
    "target_next_excess_{k}d": "target_next_ret minus TOPIX's close t+1 -> close t+1+k return",
    "target_ret_{k}d": "close t -> close t+k return (same close as the features: overstates what is tradeable)",
    "target_excess_{k}d": "target_ret minus TOPIX's close t -> close t+k return",
    "target_up_{k}d": "1 if target_ret > 0 else 0",
    "target_outperform_{k}d": "1 if target_excess > 0 else 0",
}


def forward_return(panel: Panel, x: Any, k: int, start: int = 0) -> Any:
    """x[t+start+k] / x[t+start] - 1 within each code (rows), NaN past the code's last row."""
    base = panel.shift(x, -start) if start else x
    return panel.shift(x, -(start + k)) / base - 1.0


def topix_forward_return(panel: Panel, topix_dates: Any, topix_close: Any, k: int, start: int = 0) -> Any:
    """TOPIX's close[d+start] -> close[d+start+k] return per panel row (by its date d)."""
    xp = panel.xp
    close = xp.asarray(topix_close, dtype=xp.float64)
    fwd = xp.full(len(close), xp.nan)
    n = len(close) - start - k
    if n > 0:
        fwd[:n] = close[start + k:] / close[start:start + n] - 1.0
    return panel.broadcast_dates(panel.align_dates(topix_dates, fwd))


def target_names(horizons: tuple[int, ...]) -> list[str]:
    """The target columns a build writes for `horizons`, in order."""
    return [pattern.format(k=k) for k in horizons for pattern in DESCRIPTIONS]


# targets look forward, not back (lookback 0), are never normalised (raw), and are plain arithmetic on the
# code's rows and TOPIX's per-date closes
@op("targets", stage="target", group="targets", inputs=("close", "mkt_close"),
    outputs=lambda p: tuple(target_names(p["horizons"])), normalize="raw", dtype="float32", tolerance="exact")
def targets(panel: Panel, horizons: Horizons) -> Mapping[str, Any]:
    """Forward returns of the adjusted close for each horizon, their excess over TOPIX, and up/down labels."""
    xp = panel.xp
    close = panel["close"]
    topix_dates, topix_close = panel.unique_dates, panel.date_columns["mkt_close"]
    out: dict[str, Any] = {}
    for k in horizons:
        nxt = forward_return(panel, close, k, start=1)
        out[f"target_next_ret_{k}d"] = nxt
        out[f"target_next_excess_{k}d"] = nxt - topix_forward_return(panel, topix_dates, topix_close, k, start=1)
        ret = forward_return(panel, close, k)
        excess = ret - topix_forward_return(panel, topix_dates, topix_close, k)
        out[f"target_ret_{k}d"] = ret
        out[f"target_excess_{k}d"] = excess
        out[f"target_up_{k}d"] = xp.where(xp.isnan(ret), xp.nan, (ret > 0).astype(xp.float64))
        out[f"target_outperform_{k}d"] = xp.where(xp.isnan(excess), xp.nan, (excess > 0).astype(xp.float64))
    return out
