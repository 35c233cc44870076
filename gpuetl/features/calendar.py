"""Calendar features from the panel's trading days (integer arithmetic: CuPy has no datetime64)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpuetl.features.panel import Panel
from gpuetl.features.registry import feature
from gpuetl.kernels.ewm import segment_ids, segment_offsets


def civil_from_days(xp: Any, days: Any) -> tuple[Any, Any, Any]:
    """(year, month, day) from days since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = xp.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


@feature("calendar", group="calendar", inputs=(),
         outputs=lambda p: ("cal_dow", "cal_month", "cal_day", "cal_bday_of_month", "cal_bdays_to_month_end",
                            "cal_month_end"), lookback=lambda p: 0)
def calendar(panel: Panel) -> Mapping[str, Any]:
    """Day of week (Mon = 0), month, day, business day of month, business days left, last business day flag."""
    xp = panel.xp
    days = panel.unique_dates
    year, month, day = civil_from_days(xp, days)
    offsets = segment_offsets(xp, year * 12 + month)  # unique dates are sorted, so months are runs
    seg = segment_ids(xp, offsets)
    pos = xp.arange(len(days)) - offsets[:-1][seg]
    left = offsets[1:][seg] - 1 - xp.arange(len(days))
    per_date = {"cal_dow": (days + 3) % 7, "cal_month": month, "cal_day": day, "cal_bday_of_month": pos,
                "cal_bdays_to_month_end": left, "cal_month_end": left == 0}
    return {k: panel.broadcast_dates(v.astype(xp.float64)) for k, v in per_date.items()}


@feature("maturity", group="calendar", inputs=(),
         outputs=lambda p: tuple(f"mature_{n}d" for n in p["windows"]), lookback=lambda p: 0)
def maturity(panel: Panel, windows: tuple[int, ...]) -> Mapping[str, Any]:
    """1 where the code has at least n rows of history before today (enough for an n-day window), else 0."""
    return {f"mature_{n}d": (panel.position >= n).astype(panel.xp.float64) for n in windows}
