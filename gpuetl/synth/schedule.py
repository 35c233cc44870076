"""When each company discloses: quarterly statements, forecast revisions and corrected filings.

Built before prices because prices react to disclosures (an earnings surprise moves the stock on the
first session that closes after the disclosure). Periods are generated from the fiscal year before
`start` to the one after `end`, so forecasts chain across years and the earnings calendar can show
announcements scheduled after `end`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gpuetl.synth.calendar import Timeline
from gpuetl.synth.config import MarketConfig, stream
from gpuetl.synth.universe import Universe

CLOSE_1530_FROM = np.datetime64("2024-11-05")  # TSE close moved from 15:00 to 15:30
TIMES = np.array(["11:30:00", "12:00:00", "13:00:00", "13:30:00", "14:00:00", "15:00:00", "15:30:00",
                  "16:00:00", "17:00:00"], dtype=object)
_TIME_WEIGHTS = np.array([0.04, 0.05, 0.06, 0.04, 0.05, 0.30, 0.26, 0.12, 0.08])
KINDS = ("1Q", "2Q", "3Q", "FY", "EarnForecastRevision", "DividendForecastRevision")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """One row per disclosure, sorted by (date, time, code); `fy` indexes the company's fiscal years."""

    code: np.ndarray  # int, issue index
    kind: np.ndarray  # int, index into KINDS
    fy: np.ndarray  # int, fiscal year slot (0 = the FY ending in the year before start)
    fy_start: np.ndarray  # datetime64[D]
    fy_end: np.ndarray  # datetime64[D]
    period_end: np.ndarray  # datetime64[D], end of the (cumulative) period reported
    date: np.ndarray  # datetime64[D], DiscDate (a business day)
    time: np.ndarray  # object, DiscTime "HH:MM:SS"
    surprise: np.ndarray  # float, standardised news of the disclosure (0 for corrections)
    corrects: np.ndarray  # int, row of the filing this one corrects, -1 if none
    n_fy: int  # fiscal-year slots per company
    effective: np.ndarray  # int, first panel row closing after the disclosure (-1: before start, n: after end)

    @property
    def size(self) -> int:
        return int(self.code.size)


def _month_end(months: np.ndarray) -> np.ndarray:
    """Last day of month for months counted from 1970-01 (datetime64[M] as int)."""
    return (months + 1).astype("datetime64[M]").astype("datetime64[D]") - np.timedelta64(1, "D")


def effective_dates(timeline: Timeline, date: np.ndarray, time: np.ndarray) -> np.ndarray:
    """DiscDate if disclosed before that day's close (15:00, 15:30 from 2024-11-05), else the next business day."""
    close = np.where(date >= CLOSE_1530_FROM, "15:30:00", "15:00:00")
    before = time.astype(str) < close
    same = timeline.on_or_after(date)
    return np.where(before & (same == date), same, timeline.after(date))


def _take(rows: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    return [a[rows] for a in arrays]


def build_schedule(config: MarketConfig, universe: Universe, timeline: Timeline) -> Schedule:
    rng = stream(config, "schedule")
    n = universe.n
    y0, y1 = int(config.start[:4]) - 1, int(config.end[:4]) + 2
    years = np.arange(y0, y1 + 1)
    ny = years.size
    # (company, fy) grid of fiscal-year end months, then the four cumulative periods of each
    fy_month = (years[None, :] - 1970) * 12 + (universe.fy_month[:, None] - 1)
    company = np.repeat(np.arange(n), ny)
    fy = np.tile(np.arange(ny), n)
    fy_m = fy_month.ravel()
    fy_end = _month_end(fy_m)
    q = np.tile(np.arange(1, 5), company.size)
    c4, fy4, m4 = np.repeat(company, 4), np.repeat(fy, 4), np.repeat(fy_m, 4)
    period_end = _month_end(m4 - 3 * (4 - q))
    base_lag = rng.integers(33, 44, n)[c4]
    lag = np.where(q == 4, base_lag + rng.integers(2, 8, q.size), base_lag + rng.integers(-3, 3, q.size))
    target = period_end + lag.astype("timedelta64[D]")
    # a target on a weekend or holiday moves to the next business day, or half the time to the one before
    date = np.where(rng.random(q.size) < 0.5, timeline.on_or_after(target),
                    timeline.before(target + np.timedelta64(1, "D")))
    pref = rng.choice(TIMES.size, size=n, p=_TIME_WEIGHTS)[c4]
    pick = np.where(rng.random(q.size) < 0.8, pref, rng.choice(TIMES.size, size=q.size, p=_TIME_WEIGHTS))
    pick = np.where((pick == 5) & (date >= CLOSE_1530_FROM) & (rng.random(q.size) < 0.5), 6, pick)
    kind = q - 1
    surprise = rng.standard_normal(q.size)
    # forecast revisions: ~15% of company-years, between the 1Q statement and a few days before the FY one
    fy_date = date[q == 4]
    rev = rng.random(company.size) < 0.15
    rev_date = timeline.on_or_after(fy_date[rev] - rng.integers(5, 250, int(rev.sum())).astype("timedelta64[D]"))
    rev_kind = np.where(rng.random(rev_date.size) < 0.8, 4, 5)
    rows = [
        (c4, kind, fy4, period_end, date, TIMES[pick], surprise, np.full(q.size, -1)),
        (company[rev], rev_kind, fy[rev], fy_end[rev], rev_date,
         rng.choice(TIMES, size=rev_date.size, p=_TIME_WEIGHTS), rng.standard_normal(rev_date.size),
         np.full(rev_date.size, -1)),
    ]
    cols = [np.concatenate(parts) for parts in zip(*rows, strict=True)]
    code, kind, fyi, pend, date, time, surprise, corrects = cols
    # only while listed: from the listing date (docs before listing never existed) to delisting
    list_date = np.where(universe.list_day == 0, np.datetime64("1970-01-01"),
                         timeline.days[np.minimum(universe.list_day, timeline.n - 1)])
    delist_date = np.where(universe.delist_day >= timeline.n, np.datetime64("2200-01-01"),
                           timeline.days[np.minimum(universe.delist_day, timeline.n - 1)])
    alive = (date >= list_date[code]) & (date < delist_date[code])
    code, kind, fyi, pend, date, time, surprise, corrects = _take(alive, code, kind, fyi, pend, date, time, surprise,
                                                                  corrects)
    # corrected filings: ~2% of statements re-disclosed 7-60 days later (same period, new DiscNo)
    fix = np.flatnonzero((kind < 4) & (rng.random(code.size) < 0.02))
    fix_date = timeline.on_or_after(date[fix] + rng.integers(7, 60, fix.size).astype("timedelta64[D]"))
    code = np.concatenate([code, code[fix]])
    kind = np.concatenate([kind, kind[fix]])
    fyi = np.concatenate([fyi, fyi[fix]])
    pend = np.concatenate([pend, pend[fix]])
    date = np.concatenate([date, fix_date])
    time = np.concatenate([time, rng.choice(TIMES, size=fix.size, p=_TIME_WEIGHTS)])
    surprise = np.concatenate([surprise, np.zeros(fix.size)])
    corrects = np.concatenate([corrects, fix])
    order = np.lexsort((code, time.astype(str), date))
    inv = np.empty(order.size, dtype=int)
    inv[order] = np.arange(order.size)
    corrects = np.where(corrects[order] >= 0, inv[np.maximum(corrects[order], 0)], -1)
    code, kind, fyi, pend, date, time, surprise = _take(order, code, kind, fyi, pend, date, time, surprise)
    fy_m_of = fy_month[code, fyi]
    eff_date = effective_dates(timeline, date, time)
    eff = np.where(eff_date < timeline.days[0], -1, timeline.day_index(eff_date))
    return Schedule(code=code, kind=kind, fy=fyi, fy_start=(fy_m_of - 11).astype("datetime64[M]").astype(
        "datetime64[D]"), fy_end=_month_end(fy_m_of), period_end=pend, date=date, time=time, surprise=surprise,
        corrects=corrects, n_fy=ny, effective=eff)
