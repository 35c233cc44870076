"""Daily cross-sectional transforms: ranks, winsorised z-scores and rank-gauss, one day at a time.

Every statistic here uses one day's cross-section only (leakage rule), through the frame library's
groupby over the panel's dates, so pandas and cuDF compute the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from gpuetl.features.panel import Panel
from gpuetl.ops import feature

Method = Literal["zscore", "rankgauss"]


def cs_rank(panel: Panel, x: Any) -> Any:
    """Percentile rank within the day (average ties, in (0, 1]); NaN stays NaN."""
    return panel.backend.to_array(panel.by_date(x).rank(pct=True).reset_index(drop=True))


def cs_zscore(panel: Panel, x: Any, clip: float) -> Any:
    """(x - day mean) / day std (ddof 1), winsorised at +-clip; NaN where the day has < 2 values."""
    xp = panel.xp
    g = panel.by_date(x)
    b = panel.backend
    mean = b.to_array(g.transform("mean").reset_index(drop=True))
    std = b.to_array(g.transform("std").reset_index(drop=True))
    if b.is_gpu:
        std = zero_when_constant(panel, g, std)
    z = xp.where(std > 0, (x - mean) / xp.where(std > 0, std, 1.0), xp.nan)
    return xp.clip(z, -clip, clip)


def zero_when_constant(panel: Panel, g: Any, std: Any) -> Any:
    """The day's std, exactly 0 where all its values are equal.

    pandas gives exactly 0 there; libcudf's variance (sum / n as the mean, then squared deviations) can
    give a tiny positive number, which would turn a day-constant feature (market returns, market-wide
    flows) into z-scores of about +-1 instead of missing.
    """
    b = panel.backend
    lo = b.to_array(g.transform("min").reset_index(drop=True))
    hi = b.to_array(g.transform("max").reset_index(drop=True))
    return panel.xp.where(hi > lo, std, 0.0)


def cs_rankgauss(panel: Panel, x: Any) -> Any:
    """Normal quantile of the day's rank: Phi^-1((rank - 0.5) / count), ties averaged."""
    xp = panel.xp
    b = panel.backend
    g = panel.by_date(x)
    rank = b.to_array(g.rank(method="average").reset_index(drop=True))
    count = b.to_array(g.transform("count").reset_index(drop=True))
    return b.kernels.ndtri(xp.where(xp.isnan(rank), xp.nan, (rank - 0.5) / count))


@feature("cs_rank", group="cross_section", inputs=(), outputs=lambda p: tuple(f"{c}_rank" for c in p["columns"]),
         lookback=lambda p: 0, normalize="raw", axis="day")
def cs_rank_feature(panel: Panel, columns: tuple[str, ...]) -> Mapping[str, Any]:
    """Percentile rank of earlier features within each day's cross-section (0..1, ties averaged)."""
    return {f"{c}_rank": cs_rank(panel, panel[c]) for c in columns}
