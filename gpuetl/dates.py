"""Dates as int64 days since 1970-01-01 (CuPy has no datetime64) and the TSE trading calendar.

One home for date arithmetic on the backend's arrays (civil dates <-> day numbers, frame dates -> days) and
for `BusinessCalendar`, the lake's trading calendar: which days the TSE is open, which were half-day
sessions, when each session closes, and how far the published calendar reaches (it is published about a
year ahead, so features derived from it never depend on which price rows exist).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from gpuetl.backend import Backend

NEVER = 2**40  # a day past any calendar: a row effective then is never used
CLOSE_1530_FROM = (dt.date(2024, 11, 5) - dt.date(1970, 1, 1)).days
CLOSE_1500 = 15 * 3600
CLOSE_1530 = 15 * 3600 + 30 * 60
CLOSE_HALF_DAY = 11 * 3600
EPOCH = dt.date(1970, 1, 1)


def day_of(date: dt.date | str) -> int:
    """A date (or ISO string) -> days since 1970-01-01."""
    return (dt.date.fromisoformat(str(date)) - EPOCH).days


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


def days_from_civil(xp: Any, year: Any, month: Any, day: Any) -> Any:
    """Days since 1970-01-01 of (year, month, day) arrays (the inverse of `civil_from_days`; H. Hinnant)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    mp = xp.where(month > 2, month - 3, month + 9)
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def day_numbers(backend: Backend, series: Any) -> Any:
    """A date/datetime Series -> float64 days since 1970-01-01 (whole days), NaN where missing."""
    xp = backend.xp
    seconds = series.astype("datetime64[s]")
    missing = backend.to_array(seconds.isna().astype("float64")) == 1.0
    # pandas turns NaT into the smallest int64, cuDF keeps a null (NaN after to_array): mask both
    value = backend.to_array(seconds.astype("int64"))
    return xp.where(missing, xp.nan, xp.floor(value / 86400.0))


def to_days(xp: Any, days: Any, missing: int) -> Any:
    """Float days (NaN for missing) -> int64 days, `missing` where NaN."""
    return xp.where(xp.isnan(days), missing, xp.nan_to_num(days)).astype(xp.int64)



@dataclasses.dataclass(frozen=True)
class BusinessCalendar:
    """The TSE business days (sorted unique int64 days), which of them were half-day sessions, and the span
    of days the published calendar covers (open or not: a day outside it is unknown, not a holiday)."""

    xp: Any
    days: Any  # int64, sorted, unique
    half_day: Any  # bool, aligned with `days`
    first: Any  # the first and last day the calendar covers (0-d arrays of the backend)
    last: Any

    @classmethod
    def from_frame(cls, backend: Backend, frame: Any) -> BusinessCalendar:
        """From the lake's `calendar` dataset (Date, HolDiv): HolDiv "1" and "2" are TSE business days."""
        xp = backend.xp
        every = to_days(xp, day_numbers(backend, frame["Date"]), -1)
        every = every[every >= 0]
        open_ = frame[frame["HolDiv"].isin(["1", "2"])]
        days = to_days(xp, day_numbers(backend, open_["Date"]), -1)
        half = backend.to_array((open_["HolDiv"] == "2").astype("float64")) == 1.0
        span = (every.min(), every.max()) if len(every) else None
        return cls.from_days(xp, days, half, span)

    @classmethod
    def from_days(cls, xp: Any, days: Any, half_day: Any | None = None,
                  span: tuple[Any, Any] | None = None) -> BusinessCalendar:
        """From business days; `span` (first, last day covered) defaults to the first and last of them."""
        days = xp.asarray(days, dtype=xp.int64)
        half = xp.zeros(len(days), dtype=bool) if half_day is None else xp.asarray(half_day, dtype=bool)
        ok = days >= 0
        days, half = days[ok], half[ok]
        order = xp.argsort(days, kind="stable")
        days, half = days[order], half[order]
        keep = xp.ones(len(days), dtype=bool)
        if len(days) > 1:
            keep[1:] = days[1:] != days[:-1]
        days, half = days[keep], half[keep]
        if span is None:
            span = (days[0], days[-1]) if len(days) else (xp.asarray(0), xp.asarray(-1))
        return cls(xp, days, half, xp.asarray(span[0], dtype=xp.int64), xp.asarray(span[1], dtype=xp.int64))

    def covers(self, day: Any) -> Any:
        """Whether the published calendar says anything about each day (open or closed)."""
        return (day >= self.first) & (day <= self.last)

    def count_in(self, lo: Any, hi: Any) -> Any:
        """Business days in [lo, hi] (int64 arrays), as float64."""
        xp = self.xp
        return (xp.searchsorted(self.days, hi, side="right")
                - xp.searchsorted(self.days, lo, side="left")).astype(xp.float64)

    def _at(self, day: Any, side: str) -> tuple[Any, Any]:
        """(position of `day` in the calendar by searchsorted `side`, that position clipped to a valid row)."""
        pos = self.xp.searchsorted(self.days, day, side=side)
        return pos, self.xp.clip(pos, 0, max(len(self.days) - 1, 0))

    def is_business_day(self, day: Any) -> Any:
        if len(self.days) == 0:
            return self.xp.zeros(day.shape, dtype=bool)
        pos, safe = self._at(day, "left")
        return (pos < len(self.days)) & (self.days[safe] == day)

    def after(self, day: Any, n: int = 1) -> Any:
        """The n-th business day strictly after each day (n >= 1); NEVER past the calendar's end."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if len(self.days) == 0:
            return self.xp.full(day.shape, NEVER, dtype=self.xp.int64)
        pos = self.xp.searchsorted(self.days, day, side="right") + (n - 1)
        safe = self.xp.clip(pos, 0, len(self.days) - 1)
        return self.xp.where(pos < len(self.days), self.days[safe], NEVER)

    def close_seconds(self, day: Any) -> Any:
        """Each day's close in seconds after midnight: 15:00, 15:30 from 2024-11-05, 11:00 on half days."""
        xp = self.xp
        regular = xp.where(day >= CLOSE_1530_FROM, CLOSE_1530, CLOSE_1500)
        if len(self.days) == 0:
            return regular
        _pos, safe = self._at(day, "left")
        half = self.half_day[safe] & (self.days[safe] == day)
        return xp.where(half, CLOSE_HALF_DAY, regular)

    def effective_at(self, day: Any, seconds: Any) -> Any:
        """Effective day of a disclosure at `seconds` after midnight on `day`: that day if it is a business
        day and the time is strictly before its close, else the next business day."""
        same = self.is_business_day(day) & (seconds < self.close_seconds(day))
        return self.xp.where(same, day, self.after(day))

    def count_between(self, first: Any, day: Any) -> Any:
        """Business days in (first, day]: 0 when `day` is `first`'s own business day."""
        return self.count_in(first + 1, day)  # whole days: (first, day] is [first + 1, day]
