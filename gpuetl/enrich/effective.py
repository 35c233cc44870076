"""When a published value becomes usable: the effective-time rules of the leakage contract.

A value at (Code, t) may use only what was public by t's close. Each raw dataset is mapped to the first
business day whose close comes after its publication ("effective day"); as-of joins then attach to a
panel row only rows effective on or before its date. Days are int64 days since 1970-01-01 (CuPy has no
datetime64); business days come from the lake's trading calendar (HolDiv "1" or "2": TSE open).

The rules, as implemented:
- **Statements, dividend notices** (a date and a time of disclosure): effective on the disclosure day
  if that day is a business day and the time is strictly before that day's close, else on the next
  business day. The close is 15:00 for days before 2024-11-05 and 15:30 from 2024-11-05 (the TSE
  extended the afternoon session that day; 2024-11-02..04 were not business days), and 11:00 on TSE
  half-day sessions (HolDiv "2", the old first/last sessions of a year). A disclosure *at* the close
  (15:00:00, or 15:30:00 from 2024-11-05) counts as after it: the closing auction is matched at that
  instant, so the news cannot be in that day's close. A missing or unreadable time counts as after
  the close.
- **Weekly investor types** (PubDate, published ~18:00) and **margin alerts** (PubDate, time not given):
  effective from the first business day after the publication date (a publication dated on a
  holiday also becomes effective on the next business day), until the next publication replaces it.
- **Weekly margin interest** (only the application date `Date`, usually a Friday, is given): published
  on the 2nd business day after it at ~16:30, after the close, so effective from the 3rd business
  day after `Date`.
- **Sector short-selling ratios** (per trading `Date`, published after that day's close): effective
  from the next business day.
- **Earnings-calendar snapshots** (stamped with the day they were fetched): effective from the next
  business day after that stamp (the page updates ~19:00; a fetch may have seen that day's update).
- **Master** rows (the next business day's attributes, published the evening before): effective on
  their own `Date`.
Where the calendar has no business day after a date, the row never becomes effective (`NEVER`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from gpuetl.backend import Backend

NEVER = 2**40  # an effective day past any calendar: the row is never used
CLOSE_1530_FROM = (dt.date(2024, 11, 5) - dt.date(1970, 1, 1)).days
CLOSE_1500 = 15 * 3600
CLOSE_1530 = 15 * 3600 + 30 * 60
CLOSE_HALF_DAY = 11 * 3600
_LATE = 99 * 3600  # an unreadable time: after any close


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


def time_seconds(backend: Backend, series: Any) -> Any:
    """"HH:MM" or "HH:MM:SS" strings -> float64 seconds after midnight; missing or malformed -> after any close."""
    xp = backend.xp
    text = series.fillna("").astype("str")
    text = text.where(text.str.len() != 5, text + ":00")  # "HH:MM" -> "HH:MM:00"
    well_formed = (text.str.len() == 8) & (text.str.slice(2, 3) == ":") & (text.str.slice(5, 6) == ":")
    fields = []
    for a in (0, 3, 6):
        part = text.str.slice(a, a + 2)
        digits = part.str.isdigit()
        well_formed &= digits
        fields.append(backend.to_array(part.where(digits, "0").astype("float64")))
    ok = backend.to_array(well_formed.astype("float64")) == 1.0
    h, m, s = fields
    return xp.where(ok, h * 3600.0 + m * 60.0 + s, float(_LATE))


@dataclasses.dataclass(frozen=True)
class BusinessCalendar:
    """The TSE business days (sorted unique int64 days) and which of them were half-day sessions."""

    xp: Any
    days: Any  # int64, sorted, unique
    half_day: Any  # bool, aligned with `days`

    @classmethod
    def from_frame(cls, backend: Backend, frame: Any) -> BusinessCalendar:
        """From the lake's `calendar` dataset (Date, HolDiv): HolDiv "1" and "2" are TSE business days."""
        xp = backend.xp
        open_ = frame[frame["HolDiv"].isin(["1", "2"])]
        days = to_days(xp, day_numbers(backend, open_["Date"]), -1)
        half = backend.to_array((open_["HolDiv"] == "2").astype("float64")) == 1.0
        return cls.from_days(xp, days, half)

    @classmethod
    def from_days(cls, xp: Any, days: Any, half_day: Any | None = None) -> BusinessCalendar:
        days = xp.asarray(days, dtype=xp.int64)
        half = xp.zeros(len(days), dtype=bool) if half_day is None else xp.asarray(half_day, dtype=bool)
        ok = days >= 0
        days, half = days[ok], half[ok]
        order = xp.argsort(days, kind="stable")
        days, half = days[order], half[order]
        keep = xp.ones(len(days), dtype=bool)
        if len(days) > 1:
            keep[1:] = days[1:] != days[:-1]
        return cls(xp, days[keep], half[keep])

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
        xp = self.xp
        return (xp.searchsorted(self.days, day, side="right")
                - xp.searchsorted(self.days, first, side="right")).astype(xp.float64)
