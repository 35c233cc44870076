"""Where the close stands against past extremes: distance to rolling highs/lows, drawdown, days since.

Highs and lows are the adjusted daily highs and lows over the last n rows (today included; pandas'
rolling max/min, NaN unless the window is full). The drawdown is from the running (expanding) maximum
close of the code, so it depends on how much history the panel holds: build datasets with a warm-up.
"Days since last high/low" counts back to the *latest* row where the window's extreme is reached (a tie
counts from its most recent occurrence): the time since the price last stood at its high. This is not
TA-Lib's MAXINDEX/MININDEX, whose tie rule depends on where its scan started (it rescans for the first
occurrence when the old extreme leaves the window, but moves to a new row that only equals it), so the
same day could get different values from different history lengths; the names say "last" to keep the
two apart. It is found with a sparse table of power-of-two windows (one shift per doubling, about
log2(n) passes over the panel), never a loop over rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from gpuetl.features.panel import Panel
from gpuetl.ops import SOME, Days, feature


def _distance_outputs(p: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(f"dist_{side}_{n}d" for side in ("high", "low") for n in p["windows"])


@feature("high_low_distance", group="range", inputs=("high", "low", "close"), outputs=_distance_outputs,
         lookback=lambda p: max(p["windows"]) - 1)
def high_low_distance(panel: Panel, windows: Annotated[Sequence[Days], SOME]) -> Mapping[str, Any]:
    """Close relative to the highest high (<= 0) and to the lowest low (>= 0) of each window, minus 1."""
    close = panel["close"]
    out = {f"dist_high_{n}d": close / panel.rolling(panel["high"], n, "max") - 1.0 for n in windows}
    out |= {f"dist_low_{n}d": close / panel.rolling(panel["low"], n, "min") - 1.0 for n in windows}
    return out


@feature("drawdown", group="range", inputs=("close",), outputs=lambda p: ("drawdown",), lookback=lambda p: 0)
def drawdown(panel: Panel) -> Mapping[str, Any]:
    """Close relative to the code's running maximum close, minus 1 (0 at a new high, < 0 below it)."""
    return {"drawdown": panel["close"] / panel.cummax(panel["close"]) - 1.0}


def _merge(panel: Panel, value: Any, row: Any, k: int) -> tuple[Any, Any]:
    """Join each row's window with the same-size window k rows earlier: the larger value, the later row on ties."""
    xp = panel.xp
    earlier_value, earlier_row = panel.shift(value, k), panel.shift(row, k)
    keep = value >= earlier_value
    return xp.maximum(value, earlier_value), xp.where(keep, row, earlier_row)


def rolling_argmax(panel: Panel, x: Any, n: int) -> tuple[Any, Any]:
    """Max of `x` over the last `n` rows and the (panel) row of its latest occurrence; NaN unless the window is full.

    Level j holds the max over the last 2**j rows; two overlapping windows of the largest power of two
    <= n cover the n rows, so the max equals pandas' rolling max exactly.
    """
    if n < 1:
        raise ValueError(f"window must be >= 1, got {n}")
    xp = panel.xp
    value, row = x, xp.arange(panel.n, dtype=xp.float64)
    span = 1
    while 2 * span <= n:
        value, row = _merge(panel, value, row, span)
        span *= 2
    if span < n:
        value, row = _merge(panel, value, row, n - span)
    return value, xp.where(xp.isnan(value), xp.nan, row)


def _days_since_outputs(p: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(f"days_since_last_{side}_{n}d" for side in ("high", "low") for n in p["windows"])


@feature("days_since_extreme", group="range", inputs=("high", "low"), outputs=_days_since_outputs,
         lookback=lambda p: max(p["windows"]) - 1)
def days_since_extreme(panel: Panel, windows: Annotated[Sequence[Days], SOME]) -> Mapping[str, Any]:
    """Rows since the window's highest high and lowest low were last reached (0 = today; ties: the latest)."""
    xp = panel.xp
    today = xp.arange(panel.n, dtype=xp.float64)
    out = {}
    for side, x in (("high", panel["high"]), ("low", -panel["low"])):
        for n in windows:
            out[f"days_since_last_{side}_{n}d"] = today - rolling_argmax(panel, x, n)[1]
    return out
