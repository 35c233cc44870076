"""The synthetic JPX calendar agrees with known holidays, closures and OSE holiday trading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuetl.synth import MarketConfig, cached_market
from gpuetl.synth.calendar import build_calendar, national_holidays


@pytest.fixture(scope="module")
def cal() -> pd.DataFrame:
    frame = build_calendar(2015, 2026).frame()
    return frame.set_index("Date")["HolDiv"]


@pytest.mark.parametrize("day", [
    "2024-01-08",  # Coming of Age Day (2nd Monday)
    "2024-02-12",  # substitute holiday: National Foundation Day fell on a Sunday
    "2019-04-30", "2019-05-01", "2019-05-02",  # 2019 enthronement: citizens' holidays around May 1
    "2019-10-22",  # enthronement ceremony
    "2020-07-23", "2020-07-24",  # Olympic moves of Marine Day and Sports Day
    "2021-08-09",  # substitute for Mountain Day (moved to Sunday 8/8)
    "2015-09-22",  # citizens' holiday between Respect for the Aged and the autumnal equinox
    "2024-03-20", "2024-09-23",  # equinoxes (9/22 Sunday -> 9/23 substitute)
    "2024-12-31", "2025-01-02", "2025-01-03",  # year-end closure
    "2024-01-06",  # Saturday
])
def test_closed_days(cal: pd.Series, day: str) -> None:
    assert cal[pd.Timestamp(day)] not in ("1", "2")


@pytest.mark.parametrize("day", ["2024-12-30", "2025-01-06", "2024-01-04", "2019-05-07", "2020-10-01", "2018-12-25"])
def test_open_days(cal: pd.Series, day: str) -> None:
    assert cal[pd.Timestamp(day)] == "1"


def test_holiday_rules() -> None:
    assert pd.Timestamp("2018-12-24").date() in national_holidays(2018)  # Emperor's Birthday 12/23 on Sunday
    assert not any(d.month == 12 and d.day == 23 for d in national_holidays(2019))  # no Emperor's Birthday in 2019
    assert {pd.Timestamp(d).date() for d in ("2026-09-21", "2026-09-22", "2026-09-23")} <= national_holidays(2026)


def test_holiday_trading_days_only_from_2022_on_weekday_holidays(cal: pd.Series) -> None:
    three = cal[cal == "3"].index
    assert len(three) > 10 and three.min() == pd.Timestamp("2022-09-23")
    assert (three.day_of_week < 5).all()
    assert cal[pd.Timestamp("2024-01-08")] == "3"
    assert cal[pd.Timestamp("2021-11-03")] == "0"


def test_weekends_closed_and_values_are_strings(cal: pd.Series) -> None:
    assert set(cal.unique()) <= {"0", "1", "2", "3"}
    assert (cal[cal.index.day_of_week >= 5] == "0").all()
    assert 240 <= (cal["2023"] == "1").sum() <= 250


def test_market_calendar_range_and_business_days() -> None:
    m = cached_market(MarketConfig(codes=20, start="2023-03-01", end="2024-06-28", seed=1))
    dates = m.calendar["Date"]
    assert dates.iloc[0] == pd.Timestamp("2023-01-01") and dates.iloc[-1] == pd.Timestamp("2025-12-31")
    assert len(dates) == (pd.Timestamp("2025-12-31") - pd.Timestamp("2023-01-01")).days + 1
    assert str(dates.dtype) == "datetime64[ns]" and m.calendar["HolDiv"].dtype == object
    eq, drv = m.business_days("equity"), m.business_days("derivatives")
    assert set(eq) < set(drv) and pd.Timestamp("2024-01-08") in drv and pd.Timestamp("2024-01-08") not in eq
    inside = eq[(eq >= pd.Timestamp("2023-03-01")) & (eq <= pd.Timestamp("2024-06-28"))]
    assert np.array_equal(inside.values, m.days.astype("datetime64[ns]"))


def test_half_day_sessions_only_up_to_2008() -> None:
    cal = build_calendar(2007, 2010).frame().set_index("Date")["HolDiv"]
    half = cal[cal == "2"].index
    assert list(half.year) == [2007, 2007, 2008, 2008]
    assert half[2] == pd.Timestamp("2008-01-04") and half[3] == pd.Timestamp("2008-12-30")
