"""The normalised view written beside every feature: `<feature>_z` and `<feature>_missing`.

Each output column declares how it is normalised (gpuetl.ops.NORMALIZATIONS):
- `cross_section`: the day's winsorised z-score (or rank-gauss) across codes (gpuetl.features.cross_section);
- `time_series`: for a value that is the same for every stock on a day (market regime, market-wide flows),
  whose cross-sectional z-score would always be 0: the day's value against its own trailing window of
  days, `(v_t - mean(v_{t-w+1..t})) / std(...)`, winsorised; only days up to t enter, so it needs history
  (the build's warm-up) but never the future;
- `raw`: the value itself (flags, counts, ranks, categories, bounded values).

`<feature>_missing` is 1 exactly where the raw value is missing (NaN). A normalised value that cannot be
computed although the raw value exists (a day with one value or all values equal, a trailing window not
yet filled) is 0 with `_missing` 0: "not computable" is not "missing". `_z` is 0 wherever it is not a
number, so a model can read it without NaN handling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpuetl.backend import Backend
from gpuetl.features.cross_section import DayStats, Method, cs_rankgauss, cs_zscore, day_stats
from gpuetl.features.panel import Panel
from gpuetl.ops import Normalization


def day_values(panel: Panel, x: Any, name: str) -> Any:
    """The one value per date of a column declared the same for every stock on a day (NaN rows ignored).

    Raises if two codes disagree on a day: the declaration (`time_series`) would then be wrong.
    """
    xp = panel.xp
    s = day_stats(panel, [x])[0]
    hi, lo = s.max, s.min
    if bool((hi != lo)[~xp.isnan(hi)].any()):  # host-ok: one flag per column, a declaration check
        raise ValueError(f"feature {name!r} is declared `time_series` (the same for every stock on a day) but "
                         "differs across codes on some days; declare it `cross_section`")
    return hi


def time_series_zscore(panel: Panel, x: Any, name: str, window: int, min_periods: int, clip: float) -> Any:
    """The day's value against its trailing `window` days (at least `min_periods` values), per row;
    NaN where the raw value is missing or the window has no spread (exactly equal values)."""
    z = series_zscore(panel.backend, day_values(panel, x, name), window, min_periods, clip)
    return panel.xp.where(panel.xp.isnan(x), panel.xp.nan, panel.broadcast_dates(z))


def series_zscore(backend: Backend, v: Any, window: int, min_periods: int, clip: float) -> Any:
    """z-scores of a per-date series against its trailing `window` values (at least `min_periods`), winsorised
    at +-clip; NaN where the window has no spread (exactly equal values) or too few values."""
    xp = backend.xp
    mean, std = (backend.rolling(v, window, stat, min_periods) for stat in ("mean", "std"))
    # a window of equal values has no spread: exactly, not by the rounding of a library's rolling sums
    flat = backend.rolling(v, window, "max", min_periods) == backend.rolling(v, window, "min", min_periods)
    ok = (std > 0) & ~flat
    return xp.clip(xp.where(ok, (v - mean) / xp.where(ok, std, 1.0), xp.nan), -clip, clip)


def cross_section_stats(panel: Panel, kinds: Mapping[str, Normalization], method: Method) -> dict[str, DayStats]:
    """The per-day statistics `normalized` needs for every panel column that `kinds` declares `cross_section`,
    in one kernel pass over the days (ranks only for rank-gauss); float32 columns are read as float64."""
    names = [c for c, kind in kinds.items() if kind == "cross_section"]
    stats = day_stats(panel, [panel.columns[c] for c in names], ranks=method == "rankgauss")
    return dict(zip(names, stats, strict=True))


def normalized(panel: Panel, x: Any, kind: Normalization, method: Method, clip: float,
               series_z: Any = None, stats: DayStats | None = None) -> tuple[Any, Any]:
    """(`_z` with non-numbers as 0, `_missing` 0/1) of one float64 column; `series_z` is the column's
    `time_series` z-score, computed on the whole history by `time_series_zscore` before rows were selected;
    `stats`, the column's per-day statistics from `cross_section_stats` (computed here when not given)."""
    xp = panel.xp
    if kind == "cross_section":
        z = cs_zscore(panel, x, clip, stats) if method == "zscore" else cs_rankgauss(panel, x, stats)
    elif kind == "time_series":
        z = series_z
    else:
        z = x
    missing = xp.isnan(x)
    return xp.where(xp.isnan(z), 0.0, z), missing.astype(xp.float64)
