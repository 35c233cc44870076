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
from typing import Annotated, Any

from gpuetl.backend import Backend
from gpuetl.config import Count, Positive, Range
from gpuetl.features.cross_section import DayStats, Method, cs_rankgauss, cs_zscore, day_stats
from gpuetl.features.panel import Panel
from gpuetl.ops import Normalization, Params, op


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


def ts_z_name(column: str) -> str:
    """The per-date series of a `time_series` column's fitted z-score (an output of `ts_zscore`, read by
    `normalize` from the panel's `date_columns`)."""
    return f"{column}:ts_z"


# The time-series z-scores: one value per date of each `time_series` column (its op's value, the same for every
# code), fitted once over every date of the build (axis market) on a panel of one row per date; the z-score needs
# `min_periods` values of history. Rolling means and spreads, then a quotient: float64 that may differ in the
# last bits, stored (through `normalize`) as float32.
@op("ts_zscore", stage="normalize", group="normalize", inputs=(),
    outputs=lambda p: tuple(ts_z_name(c) for c in p["columns"]), lookback=lambda p: p["min_periods"] - 1,
    normalize="raw", axis="market", dtype="float64", tolerance="float32")
def ts_zscore(panel: Panel, columns: tuple[str, ...], window: Annotated[int, Range(min=2)], min_periods: Count,
              clip: Positive) -> Mapping[str, Any]:
    """Each column's trailing z-score over the panel's rows (one per date), winsorised at +-clip."""
    return {ts_z_name(c): series_zscore(panel.backend, panel[c], window, min_periods, clip) for c in columns}


def _normalize_outputs(p: Params) -> tuple[str, ...]:
    columns: Mapping[str, Normalization] = p["columns"]
    return tuple(name for c in columns for name in (f"{c}{p['suffix']}", f"{c}_missing"))


def _normalize_reads(p: Params) -> tuple[str, ...]:
    columns: Mapping[str, Normalization] = p["columns"]
    return (*columns, *(ts_z_name(c) for c, kind in columns.items() if kind == "time_series"))


# The normalised view of a year's rows (axis day: cross-sections of its days; the time-series z-scores come fitted
# over every date), `<column><suffix>` and `<column>_missing` for each column, from the float32 value the dataset
# stores, as float32.
@op("normalize", stage="normalize", group="normalize", inputs=(), outputs=_normalize_outputs,
    param_inputs=_normalize_reads, normalize="raw", axis="day", dtype="float32", tolerance="float32")
def normalize(panel: Panel, columns: dict[str, Normalization], method: Method, clip: Positive,
              suffix: str) -> Mapping[str, Any]:
    """`normalized` of each column as its kind says, the per-day statistics of every `cross_section` column
    from one kernel pass; a `time_series` column's z-score from `ts_zscore`'s series in `panel.date_columns`."""
    xp = panel.xp
    stats = cross_section_stats(panel, columns, method)
    out: dict[str, Any] = {}
    for col, kind in columns.items():
        x = panel[col].astype(xp.float64)
        z = None
        if kind == "time_series":
            z = xp.where(~xp.isnan(x), panel.broadcast_dates(panel.date_columns[ts_z_name(col)]), xp.nan)
        value, missing = normalized(panel, x, kind, method, clip, z, stats.pop(col, None))
        out[f"{col}{suffix}"] = value.astype(xp.float32)
        out[f"{col}_missing"] = missing.astype(xp.float32)
    return out
