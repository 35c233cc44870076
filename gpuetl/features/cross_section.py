"""Daily cross-sectional transforms: ranks, winsorised z-scores and rank-gauss, one day at a time.

Every statistic here uses one day's cross-section only (leakage rule). The per-day statistics of many
columns come from one `group_stats` kernel call over the panel's days (count, mean, std, min, max and
average-tie ranks, pandas' groupby semantics; Numba on the CPU, CUDA on the GPU), instead of four or five
frame-library groupbys per column.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from gpuetl.features.panel import Panel
from gpuetl.ops import feature

Method = Literal["zscore", "rankgauss"]
CHUNK_ELEMENTS = 1 << 25  # values per kernel call (256 MB of float64): columns are stacked in chunks this big


@dataclasses.dataclass(frozen=True)
class DayStats:
    """One column's statistics per day (arrays indexed like `panel.unique_dates`), and its ranks per row."""

    count: Any
    mean: Any
    std: Any  # ddof 1; exactly 0 on a day whose values are all equal, NaN with fewer than 2 values
    min: Any
    max: Any
    rank: Any = None  # average rank of ties within the day, 1-based, NaN where the value is NaN


def day_stats(panel: Panel, columns: Sequence[Any], ranks: bool = False) -> list[DayStats]:
    """Per-day statistics of each column (float arrays of the panel's rows), in one kernel pass per chunk of
    columns (CHUNK_ELEMENTS values at most per call, so a year of 200 features does not double in memory)."""
    xp = panel.xp
    per_call = max(1, CHUNK_ELEMENTS // max(panel.n, 1))
    out: list[DayStats] = []
    for lo in range(0, len(columns), per_call):
        chunk = columns[lo:lo + per_call]
        values = xp.empty((len(chunk), panel.n))
        for i, x in enumerate(chunk):
            values[i] = x
        stats, rank = panel.backend.kernels.group_stats(values, panel.date_id, len(panel.unique_dates), ranks=ranks)
        del values
        out += [DayStats(stats[0, i], stats[1, i], stats[2, i], stats[3, i], stats[4, i],
                         None if rank is None else rank[i]) for i in range(len(chunk))]
    return out


def cs_rank(panel: Panel, x: Any, stats: DayStats | None = None) -> Any:
    """Percentile rank within the day (average ties, in (0, 1]); NaN stays NaN."""
    s = stats if stats is not None and stats.rank is not None else day_stats(panel, [x], ranks=True)[0]
    return s.rank / panel.broadcast_dates(s.count)


def cs_zscore(panel: Panel, x: Any, clip: float, stats: DayStats | None = None) -> Any:
    """(x - day mean) / day std (ddof 1), winsorised at +-clip; NaN where the day has < 2 values or no spread."""
    s = stats if stats is not None else day_stats(panel, [x])[0]
    return panel.backend.kernels.day_zscore(x, s.mean, s.std, panel.date_id, clip)


def cs_rankgauss(panel: Panel, x: Any, stats: DayStats | None = None) -> Any:
    """Normal quantile of the day's rank: Phi^-1((rank - 0.5) / count), ties averaged."""
    s = stats if stats is not None and stats.rank is not None else day_stats(panel, [x], ranks=True)[0]
    return panel.backend.kernels.ndtri((s.rank - 0.5) / panel.broadcast_dates(s.count))


@feature("cs_rank", group="cross_section", inputs=(), outputs=lambda p: tuple(f"{c}_rank" for c in p["columns"]),
         lookback=lambda p: 0, normalize="raw", axis="day")
def cs_rank_feature(panel: Panel, columns: tuple[str, ...]) -> Mapping[str, Any]:
    """Percentile rank of earlier features within each day's cross-section (0..1, ties averaged)."""
    stats = day_stats(panel, [panel[c] for c in columns], ranks=True)
    return {f"{c}_rank": cs_rank(panel, panel[c], s) for c, s in zip(columns, stats, strict=True)}
