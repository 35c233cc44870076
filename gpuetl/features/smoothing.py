"""Seeded recursive averages (TA-Lib's EMAs and Wilder averages) built on the segmented EWM kernel.

TA-Lib starts its EMAs and Wilder averages from the mean of the first window, not from the first value;
`seeded_ewm` feeds that seed to the pandas-semantics EWM so the recursion continues exactly from it.
"""

from __future__ import annotations

from typing import Any

from gpuetl.features.panel import Panel


def first_valid(panel: Panel, x: Any) -> Any:
    """True on the first row of each code where `x` is not NaN."""
    xp = panel.xp
    valid = ~xp.isnan(x)
    seen_before = panel.shift(panel.cummax(valid.astype(xp.float64)), 1) == 1.0
    return valid & ~seen_before


def seeded_ewm(panel: Panel, x: Any, seed: Any, alpha: float, *, ignore_na: bool = False) -> Any:
    """EWM (adjust=False) of `x` that starts, per code, from `seed` on the first row where `seed` is valid.

    This is how TA-Lib seeds its EMAs and Wilder averages (with the mean of the first window); before the
    seed the result is NaN.
    """
    xp = panel.xp
    start = first_valid(panel, seed)
    started = panel.cummax(start.astype(xp.float64)) == 1.0
    fed = xp.where(start, seed, xp.where(started, x, xp.nan))
    out = panel.ewm(fed, alpha=alpha, adjust=False, ignore_na=ignore_na)
    return xp.where(started, out, xp.nan)


def wilder(panel: Panel, x: Any, n: int) -> Any:
    """Wilder's average (alpha = 1/n), seeded with the mean of the first `n` values, as TA-Lib's RSI/ATR."""
    return seeded_ewm(panel, x, panel.rolling(x, n, "mean"), 1.0 / n)
