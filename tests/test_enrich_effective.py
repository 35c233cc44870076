"""Effective-time rules by hand: the close moving from 15:00 to 15:30 on 2024-11-05, disclosures at and
around the close, Friday evenings, holidays (including OSE holiday-trading days, closed for equities),
half-day sessions, weekly publications dated on a holiday, and the end of the calendar."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from gpuetl.backend import Backend
from gpuetl.dates import NEVER, BusinessCalendar
from gpuetl.enrich.effective import time_seconds
from gpuetl.kernels import KernelSet
from gpuetl.synth.calendar import build_calendar

CPU = Backend("cpu", pd, np, KernelSet("cpu"), "tests")


def day(text: str) -> int:
    return (dt.date.fromisoformat(text) - dt.date(1970, 1, 1)).days


def calendar(first: int = 2024, last: int = 2025) -> BusinessCalendar:
    """The JPX calendar as the lake stores it (Date, HolDiv strings), from the synthetic market's rules."""
    return BusinessCalendar.from_frame(CPU, build_calendar(first, last).frame())


def effective(cal: BusinessCalendar, date: str, time: str | None) -> str:
    seconds = time_seconds(CPU, pd.Series([time], dtype=object))
    out = int(cal.effective_at(np.array([day(date)]), seconds)[0])
    return "never" if out == NEVER else str(dt.date(1970, 1, 1) + dt.timedelta(days=out))


@pytest.mark.parametrize(("date", "time", "want"), [
    # before 2024-11-05 the close is 15:00; a disclosure at 15:00:00 is after it
    ("2024-10-31", "14:59:59", "2024-10-31"),
    ("2024-10-31", "15:00:00", "2024-11-01"),
    ("2024-10-31", "15:29:00", "2024-11-01"),
    ("2024-10-31", "15:30:00", "2024-11-01"),
    # Friday 2024-11-01, the last 15:00 close: after it, the next business day is Tuesday 11-05
    # (11-02/03 weekend, 11-04 a holiday with OSE holiday trading: closed for equities)
    ("2024-11-01", "14:59:00", "2024-11-01"),
    ("2024-11-01", "15:00:00", "2024-11-05"),
    ("2024-11-01", "15:29:00", "2024-11-05"),
    ("2024-11-01", "15:30:00", "2024-11-05"),
    # from 2024-11-05 the close is 15:30: 15:00 and 15:29 are before it, 15:30:00 is after it
    ("2024-11-05", "14:59:00", "2024-11-05"),
    ("2024-11-05", "15:00:00", "2024-11-05"),
    ("2024-11-05", "15:29:00", "2024-11-05"),
    ("2024-11-05", "15:29:59", "2024-11-05"),
    ("2024-11-05", "15:30:00", "2024-11-06"),
    ("2024-11-05", "15:30:01", "2024-11-06"),
    # disclosed on the holiday itself (any time): the next business day
    ("2024-11-04", "10:00:00", "2024-11-05"),
    # Friday evening -> Monday; Friday before a Monday holiday -> Tuesday
    ("2024-06-07", "16:00:00", "2024-06-10"),
    ("2024-06-07", "15:00:00", "2024-06-10"),
    ("2024-09-20", "17:00:00", "2024-09-24"),
    ("2024-09-20", "13:30:00", "2024-09-20"),
    # Saturday morning -> Monday; year-end closure: 12-30 evening -> 01-06
    ("2024-06-08", "09:00:00", "2024-06-10"),
    ("2024-12-30", "15:30:00", "2025-01-06"),
    ("2024-12-30", "15:29:00", "2024-12-30"),
    # "HH:MM" times as the dividend notices give them
    ("2024-10-31", "14:59", "2024-10-31"),
    ("2024-10-31", "15:00", "2024-11-01"),
    ("2024-11-05", "15:29", "2024-11-05"),
    ("2024-11-05", "15:30", "2024-11-06"),
    # a missing or malformed time counts as after the close
    ("2024-10-31", None, "2024-11-01"),
    ("2024-10-31", "", "2024-11-01"),
    ("2024-10-31", "noon", "2024-11-01"),
    # past the end of the calendar: never effective
    ("2025-12-30", "16:00:00", "never"),
])
def test_disclosure_effective_day(date: str, time: str | None, want: str) -> None:
    assert effective(calendar(), date, time) == want


def test_half_day_session_closes_at_eleven() -> None:
    cal = calendar(2008, 2009)  # 2008-01-04 and 2008-12-30 were half-day sessions (HolDiv "2")
    assert effective(cal, "2008-01-04", "10:59:00") == "2008-01-04"
    assert effective(cal, "2008-01-04", "11:00:00") == "2008-01-07"
    assert effective(cal, "2008-01-07", "14:59:00") == "2008-01-07"
    assert effective(cal, "2008-12-30", "13:00:00") == "2009-01-05"


def test_time_parsing() -> None:
    got = time_seconds(CPU, pd.Series(["00:00:00", "09:05", "15:30:00", "23:59:59", None, "1530", "ab:cd:ef"],
                                      dtype=object))
    assert got[:4].tolist() == [0.0, 9 * 3600 + 5 * 60, 15.5 * 3600, 86399.0]
    assert (got[4:] >= 99 * 3600).all()


def test_weekly_publications_and_next_business_day_rules() -> None:
    cal = calendar()
    after = lambda d, n=1: str(dt.date(1970, 1, 1) + dt.timedelta(days=int(cal.after(np.array([day(d)]), n)[0])))  # noqa: E731
    # investor types: published Thursday ~18:00 -> effective Friday; published on a holiday -> next business day
    assert after("2024-06-13") == "2024-06-14"
    assert after("2024-11-04") == "2024-11-05"
    assert after("2024-09-22") == "2024-09-24"  # a Sunday before a Monday holiday
    # margin interest: application date (Friday) -> published the 2nd business day after (after the close)
    # -> effective the 3rd; a Monday holiday pushes it one day
    assert after("2024-06-07", 3) == "2024-06-12"
    assert after("2024-11-01", 3) == "2024-11-07"
    assert after("2024-09-20", 3) == "2024-09-26"
    # short ratio of a trading day (published after its close) -> the next business day
    assert after("2024-11-01") == "2024-11-05"
    with pytest.raises(ValueError, match="n must be >= 1"):
        cal.after(np.array([0]), 0)


def test_close_and_business_days() -> None:
    cal = calendar()
    days = np.array([day("2024-11-01"), day("2024-11-04"), day("2024-11-05")])
    assert cal.is_business_day(days).tolist() == [True, False, True]
    assert cal.close_seconds(days).tolist() == [15 * 3600, 15 * 3600, 15.5 * 3600]  # 15:30 from 11-05
    assert cal.count_between(np.array([day("2024-11-01")]), np.array([day("2024-11-06")])).tolist() == [2.0]
    empty = BusinessCalendar.from_days(np, np.zeros(0, dtype=np.int64))
    assert empty.after(np.array([5])).tolist() == [NEVER]
    assert empty.effective_at(np.array([5]), np.array([0.0])).tolist() == [NEVER]
