"""The dates x codes returns matrices the graphs are built from (NaN for missing), from a Panel."""

from __future__ import annotations

import dataclasses
from typing import Any

from gpuetl.features.panel import Panel


@dataclasses.dataclass(frozen=True)
class Returns:
    """Dense return matrices on the backend's array module; column j is code index j (sorted codes)."""

    dates: Any  # (T,) int64 days since 1970-01-01, increasing
    r1: Any  # (T, N) float64 1-day simple returns, NaN where missing
    r5: Any  # (T, N) float64 5-day simple returns, NaN where missing

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.r1.shape[0]), int(self.r1.shape[1])


def dense_by_date(panel: Panel, values: Any) -> Any:
    """A panel column as a (dates, codes) matrix: row = index into unique_dates, column = code index."""
    xp = panel.xp
    out = xp.full((len(panel.unique_dates), len(panel.offsets) - 1), xp.nan)
    out[panel.date_id, panel.group] = values
    return out


def horizon_returns(xp: Any, close: Any, horizon: int) -> Any:
    """``close[t] / close[t - horizon] - 1`` down the date axis; NaN when either is missing, or not positive/finite."""
    out = xp.full(close.shape, xp.nan)
    if close.shape[0] > horizon:
        before = close[:-horizon]
        out[horizon:] = close[horizon:] / xp.where(before > 0, before, xp.nan) - 1.0
    out[~xp.isfinite(out)] = xp.nan
    return out


def returns_from_panel(panel: Panel, close: str = "close") -> Returns:
    """1- and 5-day returns of the panel's (adjusted) close on the panel's own date grid."""
    c = dense_by_date(panel, panel[close])
    return Returns(panel.unique_dates, horizon_returns(panel.xp, c, 1), horizon_returns(panel.xp, c, 5))
