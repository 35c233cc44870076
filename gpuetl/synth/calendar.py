"""The JPX trading calendar: Japanese national holidays, year-end closure and OSE holiday trading.

HolDiv: "0" closed, "1" open, "2" TSE half-day session, "3" closed for equities but OSE derivatives
trade (holiday trading, from 2022-09-23). Half-day sessions are emitted for the first and last
trading days of years up to 2008 only (the TSE's old 大発会/大納会 half days).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

HOLIDAY_TRADING_FROM = dt.date(2022, 9, 23)
_ONE_DAY = dt.timedelta(days=1)


def _nth_monday(year: int, month: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(7 - first.weekday()) % 7 + 7 * (n - 1))


def _equinox(year: int, spring: bool) -> dt.date:
    """Vernal/autumnal equinox day by the standard approximation (valid 1980-2099)."""
    base = 20.8431 if spring else 23.2488
    day = int(base + 0.242194 * (year - 1980) - (year - 1980) // 4)
    return dt.date(year, 3 if spring else 9, day)


def _named_holidays(year: int) -> set[dt.date]:
    d = dt.date
    h = {d(year, 1, 1), _nth_monday(year, 1, 2), d(year, 2, 11), _equinox(year, True), d(year, 4, 29),
         d(year, 5, 3), d(year, 5, 4), d(year, 5, 5), _equinox(year, False), d(year, 11, 3), d(year, 11, 23)}
    if year >= 2020:
        h.add(d(year, 2, 23))  # Emperor's Birthday (Reiwa)
    elif year <= 2018:
        h.add(d(year, 12, 23))  # Emperor's Birthday (Heisei); none in 2019
    # Marine Day, Mountain Day, Sports Day, with the Olympic moves of 2020 and 2021
    special = {2020: (d(2020, 7, 23), d(2020, 8, 10), d(2020, 7, 24)),
               2021: (d(2021, 7, 22), d(2021, 8, 8), d(2021, 7, 23))}
    if year in special:
        h.update(special[year])
    else:
        h.add(_nth_monday(year, 7, 3) if year >= 2003 else d(year, 7, 20))
        if year >= 2016:
            h.add(d(year, 8, 11))
        h.add(_nth_monday(year, 10, 2))
    h.add(_nth_monday(year, 9, 3) if year >= 2003 else d(year, 9, 15))
    if year == 2019:
        h.update({d(2019, 5, 1), d(2019, 10, 22)})  # enthronement day and ceremony
    return h


def national_holidays(year: int) -> set[dt.date]:
    """Every national holiday of `year`: named days, citizens' holidays and substitute holidays."""
    named = _named_holidays(year) | _named_holidays(year + 1) | _named_holidays(year - 1)
    out = set(named)
    for day in named:  # citizens' holiday: a weekday sandwiched between two holidays
        mid = day + _ONE_DAY
        if mid not in named and mid + _ONE_DAY in named and mid.weekday() != 6:
            out.add(mid)
    for day in sorted(named):  # substitute holiday: Sunday holiday -> next non-holiday day
        if day.weekday() == 6:
            sub = day + _ONE_DAY
            while sub in out:
                sub += _ONE_DAY
            out.add(sub)
    return {day for day in out if day.year == year}


@dataclasses.dataclass(frozen=True)
class Calendar:
    """Every calendar day from Jan 1 of the first year through Dec 31 of the last, with its HolDiv."""

    dates: np.ndarray  # datetime64[D], every calendar day
    holdiv: np.ndarray  # int8, 0..3

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"Date": self.dates.astype("datetime64[ns]"),
                             "HolDiv": pd.Series(self.holdiv.astype(str), dtype=object)})

    def business_days(self, kind: str = "equity") -> np.ndarray:
        """datetime64[D] business days: HolDiv 1/2 for equities, 1/2/3 for derivatives."""
        if kind not in ("equity", "derivatives"):
            raise ValueError(f"kind must be 'equity' or 'derivatives', got {kind!r}")
        keep = (self.holdiv == 1) | (self.holdiv == 2)
        if kind == "derivatives":
            keep |= self.holdiv == 3
        return self.dates[keep]


def build_calendar(first_year: int, last_year: int) -> Calendar:
    dates = np.arange(np.datetime64(f"{first_year}-01-01"), np.datetime64(f"{last_year + 1}-01-01"))
    holidays = sorted(h for y in range(first_year, last_year + 1) for h in national_holidays(y))
    hol = np.isin(dates, np.array(holidays, dtype="datetime64[D]"))
    weekday = (dates.view("int64") + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    month_day = pd.DatetimeIndex(dates)
    year_end = ((month_day.month == 12) & (month_day.day == 31)) | ((month_day.month == 1) & (month_day.day <= 3))
    open_ = (weekday < 5) & ~hol & ~np.asarray(year_end)
    holdiv = open_.astype(np.int8)
    holiday_trading = hol & (weekday < 5) & ~np.asarray(year_end) & (dates >= np.datetime64(HOLIDAY_TRADING_FROM))
    holdiv[holiday_trading] = 3
    years = month_day.year.to_numpy()  # host-ok: the synthetic market is NumPy/pandas by design
    for y in range(first_year, min(last_year, 2008) + 1):  # half-day first/last sessions, up to 2008
        idx = np.flatnonzero(open_ & (years == y))
        if idx.size:
            holdiv[[idx[0], idx[-1]]] = 2
    return Calendar(dates=dates, holdiv=holdiv)


@dataclasses.dataclass(frozen=True)
class Timeline:
    """The market's business days: `days` in [start, end] (the panel's rows) and all of the calendar's."""

    days: np.ndarray  # datetime64[D], equity business days in [start, end]
    bdays: np.ndarray  # datetime64[D], every equity business day of the calendar (reaches past `end`)

    @property
    def n(self) -> int:
        return int(self.days.size)

    def on_or_after(self, dates: np.ndarray) -> np.ndarray:
        """The first business day on or after each date."""
        idx = np.searchsorted(self.bdays, np.asarray(dates, dtype="datetime64[D]"), side="left")
        return self.bdays[np.minimum(idx, self.bdays.size - 1)]

    def after(self, dates: np.ndarray, n: int | np.ndarray = 1) -> np.ndarray:
        """The n-th business day strictly after each date (n >= 1)."""
        idx = np.searchsorted(self.bdays, np.asarray(dates, dtype="datetime64[D]"), side="right") + n - 1
        return self.bdays[np.minimum(idx, self.bdays.size - 1)]

    def before(self, dates: np.ndarray, n: int | np.ndarray = 1) -> np.ndarray:
        """The n-th business day strictly before each date (n >= 1)."""
        idx = np.searchsorted(self.bdays, np.asarray(dates, dtype="datetime64[D]"), side="left") - n
        return self.bdays[np.maximum(idx, 0)]

    def day_index(self, dates: np.ndarray) -> np.ndarray:
        """Row of each date in `days` (the first day on or after it); n when past the end."""
        return np.searchsorted(self.days, np.asarray(dates, dtype="datetime64[D]"), side="left")


def week_id(dates: np.ndarray) -> np.ndarray:
    """Monday-based week number of each date (weeks counted from Monday 1970-01-05)."""
    return (np.asarray(dates, dtype="datetime64[D]") - np.datetime64("1970-01-05")).astype(np.int64) // 7


def monday_of(week: np.ndarray) -> np.ndarray:
    return np.datetime64("1970-01-05") + (np.asarray(week) * 7).astype("timedelta64[D]")
