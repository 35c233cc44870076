"""Calendar features of each day, from its date and the lake's trading calendar, never from which panel rows
exist (a build that ends mid-month must not call its last day a month end). Integer day arithmetic: CuPy has
no datetime64."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from gpuetl.dates import civil_from_days, days_from_civil
from gpuetl.features.panel import Panel
from gpuetl.ops import SOME, Days, feature


@feature("calendar", group="calendar", inputs=(),
         outputs=lambda p: ("cal_dow", "cal_month", "cal_day", "cal_bday_of_month", "cal_bdays_to_month_end",
                            "cal_month_end"), lookback=lambda p: 0, normalize="raw")
def calendar(panel: Panel) -> Mapping[str, Any]:
    """Day of week (Mon = 0), month, day, business days before today in its month, business days left in it,
    1 on the month's last business day; the last three from the lake's trading calendar (published ahead),
    NaN where it does not cover the whole month or the lake has none."""
    xp = panel.xp
    days = panel.unique_dates
    year, month, day = civil_from_days(xp, days)
    per_date = {"cal_dow": (days + 3) % 7, "cal_month": month, "cal_day": day}
    cal = panel.calendar
    if cal is None:  # the build's plan says so once (gpuetl.dataset.plan)
        per_date |= dict.fromkeys(("cal_bday_of_month", "cal_bdays_to_month_end", "cal_month_end"),
                                  xp.full(len(days), xp.nan))
    else:
        first = days - (day - 1)
        last = days_from_civil(xp, year + (month == 12), month % 12 + 1, 1) - 1
        known = cal.covers(first) & cal.covers(last)
        left = cal.count_in(days + 1, last)
        per_date["cal_bday_of_month"] = xp.where(known, cal.count_in(first, days - 1), xp.nan)
        per_date["cal_bdays_to_month_end"] = xp.where(known, left, xp.nan)
        per_date["cal_month_end"] = xp.where(known, (left == 0).astype(xp.float64), xp.nan)
    return {k: panel.broadcast_dates(v.astype(xp.float64)) for k, v in per_date.items()}


@feature("maturity", group="calendar", inputs=(),
         outputs=lambda p: tuple(f"mature_{n}d" for n in p["windows"]), lookback=lambda p: 0,
         normalize="raw")
def maturity(panel: Panel, windows: Annotated[tuple[Days, ...], SOME]) -> Mapping[str, Any]:
    """1 where the code has at least n rows of history before today (enough for an n-day window), else 0."""
    return {f"mature_{n}d": (panel.position >= n).astype(panel.xp.float64) for n in windows}
