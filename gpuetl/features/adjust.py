"""Split-adjusted prices derived from raw prices and AdjustmentFactor, forward-cumulated.

J-Quants' adjusted columns are restated after every split (earlier rows are multiplied by later
factors), so a model trained on them sees the future. Here each row divides raw prices by the product
of the code's factors up to and including that row: a split after t changes nothing at or before t,
not even in the last bit, and returns, ratios and values relative to the day's close (all features
are scale-free) are the same as on fully restated prices.
"""

from __future__ import annotations

from typing import Any

from gpuetl.features.panel import Panel

PRICE_COLUMNS = ("O", "H", "L", "C")


def cumulative_factor(panel: Panel) -> Any:
    """Each row's product of its code's AdjustmentFactors up to and including that row (missing = 1)."""
    xp = panel.xp
    return panel.cumprod(xp.where(xp.isnan(panel["AdjFactor"]), 1.0, panel["AdjFactor"]))


def add_adjusted(panel: Panel) -> None:
    """Add `open, high, low, close, volume` (adjusted) and `turnover` (Va, never adjusted) to the panel."""
    cum = cumulative_factor(panel)
    for raw, name in zip(PRICE_COLUMNS, ("open", "high", "low", "close"), strict=True):
        panel.columns[name] = panel[raw] / cum
    panel.columns["volume"] = panel["Vo"] * cum
    panel.columns["turnover"] = panel["Va"]
    panel.columns["cum_factor"] = cum
