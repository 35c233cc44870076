"""Corporate calendars: `dividend` notices and `earnings_calendar` snapshots, both from the statements.

Dividends: the amounts are those of the statements (interim at 2Q, year-end at FY, next year's
forecasts in FY documents), notified at the statement's time. Ex-date: one business day before the
record date (T+2 settlement, from 2019-07-16), two before that (T+3). A few notices are corrected
(StatCode 2) or deleted (StatCode 3) later, pointing at the original through CARefNo; "undecided"
forecasts have DivRate NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gpuetl.synth import reference as ref
from gpuetl.synth.config import stream
from gpuetl.synth.core import MarketCore
from gpuetl.synth.frames import canonical, days_str
from gpuetl.synth.universe import RESTRUCTURE

T2_FROM = np.datetime64("2019-07-16")
SPECIAL_RATES_FROM = np.datetime64("2022-06-06")  # CommDivRate / SpecDivRate published from this date
_FQ = np.array(["第1四半期", "第2四半期", "第3四半期", "本決算"], dtype=object)
SCHEDULE_AHEAD_DAYS = 45  # a company announces its earnings date about a month ahead


def ex_dates(m: MarketCore, record: np.ndarray) -> np.ndarray:
    """Ex-dividend date of each record date (settlement T+2 from 2019-07-16, T+3 before)."""
    last = m.timeline.before(record + np.timedelta64(1, "D"))  # last business day on or before the record date
    return m.timeline.before(last, np.where(last >= T2_FROM, 1, 2))


def _ref_no(dates: np.ndarray) -> np.ndarray:
    first = np.searchsorted(dates, dates, side="left")
    seq = np.char.zfill((np.arange(dates.size) - first + 1).astype("U5"), 5)
    return np.char.add(np.char.add(days_str(dates), "1B"), seq).astype(object)


def dividend(m: MarketCore) -> pd.DataFrame:
    rng = stream(m.config, "dividend")
    s, f, tl = m.schedule, m.fundamentals.columns, m.timeline
    new = s.corrects < 0
    q2 = np.flatnonzero(new & (s.kind == 1) & (f["Div2Q"] > 0))
    fy = np.flatnonzero(new & (s.kind == 3) & (f["DivFY"] > 0))
    nx_fy = np.flatnonzero(new & (s.kind == 3) & (f["NxFDivFY"] > 0))
    nx_q2 = np.flatnonzero(new & (s.kind == 3) & (f["NxFDiv2Q"] > 0))
    one = np.timedelta64(1, "D")
    nxt_end = (s.fy_end.astype("datetime64[M]") + 13).astype("datetime64[D]") - one
    nxt_q2 = (s.fy_end.astype("datetime64[M]") + 7).astype("datetime64[D]") - one
    doc = np.concatenate([q2, fy, nx_fy, nx_q2])
    record = np.concatenate([s.period_end[q2], s.fy_end[fy], nxt_end[nx_fy], nxt_q2[nx_q2]])
    rate = np.concatenate([f["Div2Q"][q2], f["DivFY"][fy], f["NxFDivFY"][nx_fy], f["NxFDiv2Q"][nx_q2]])
    interim = np.concatenate([np.ones(q2.size, bool), np.zeros(fy.size + nx_fy.size, bool), np.ones(nx_q2.size, bool)])
    decided = np.concatenate([np.ones(q2.size + fy.size, bool), np.zeros(nx_fy.size + nx_q2.size, bool)])
    n = doc.size
    rate = np.where(~decided & (rng.random(n) < 0.05), np.nan, rate)  # "-": undecided
    pay = tl.on_or_after(record + np.where(interim, 65, 80).astype("timedelta64[D]"))
    pub = s.date[doc]
    special = rng.random(n)
    comm_code = np.where(special < 0.02, "2", np.where(special < 0.03, "1", "0")).astype(object)
    # corrections (StatCode 2) and deletions (StatCode 3), published 1-10 business days later
    fix = np.flatnonzero(rng.random(n) < 0.035)
    status = np.r_[np.full(n, "1", dtype=object), np.where(rng.random(fix.size) < 0.15, "3", "2").astype(object)]
    rows = np.r_[np.arange(n), fix]
    pub_all = np.r_[pub, tl.after(pub[fix], rng.integers(1, 11, fix.size))]
    rate_all = rate[rows].copy()
    rate_all[n:] = np.where(status[n:] == "2", np.round(np.nan_to_num(rate[fix], nan=10.0) + 1.0), rate[fix])
    time_all = np.r_[s.time[doc], np.full(fix.size, "15:00:00", dtype=object)].astype("U5").astype(object)
    order = np.lexsort((s.code[doc][rows], time_all.astype(str), pub_all))
    inv = np.empty(order.size, dtype=int)
    inv[order] = np.arange(order.size)
    ref_no = _ref_no(pub_all[order])[inv]
    ca_ref = np.r_[ref_no[:n], ref_no[:n][fix]]
    rec = record[rows]
    spec_rate = np.where((comm_code[rows] == "2") & (pub_all >= SPECIAL_RATES_FROM), np.round(0.3 * rate_all), np.nan)
    comm_rate = np.where((comm_code[rows] == "1") & (pub_all >= SPECIAL_RATES_FROM), np.round(0.2 * rate_all), np.nan)
    cols = {
        "PubDate": pub_all, "PubTime": time_all, "Code": m.universe.code[s.code[doc][rows]], "RefNo": ref_no,
        "StatCode": status, "BoardDate": pub_all, "IFCode": np.where(interim[rows], "1", "2").astype(object),
        "FRCode": np.where(decided[rows], "1", "2").astype(object),
        "IFTerm": rec.astype("datetime64[M]").astype(str).astype(object), "DivRate": rate_all, "RecDate": rec,
        "ExDate": ex_dates(m, rec), "ActRecDate": rec,
        "PayDate": np.where(decided[rows], pay[rows], np.datetime64("NaT")), "CARefNo": ca_ref,
        "CommSpecCode": comm_code[rows], "CommDivRate": comm_rate, "SpecDivRate": spec_rate,
    }
    return canonical("dividend", {k: np.asarray(v)[order] for k, v in cols.items()}, rows.size)


def earnings_calendar(m: MarketCore) -> pd.DataFrame:
    """The latest snapshot, as the API serves it the day after the market's `end`."""
    return earnings_calendar_on(m, np.datetime64(m.config.end))


def earnings_calendar_on(m: MarketCore, day: Any) -> pd.DataFrame:
    """The schedule the earnings calendar showed on `day` (what a fetch that day recorded): each
    March/September-FY issue listed on `day` with its next statement after it, known once it is at most
    `SCHEDULE_AHEAD_DAYS` away (the company has announced the date), a few dates still undecided (NaT).

    J-Quants serves only the current schedule; a history of these is what a daily fetch accumulates.
    """
    day = np.datetime64(str(day)[:10], "D")
    rng = stream(m.config, f"earnings_calendar/{day}")
    s, u = m.schedule, m.universe
    at = int(np.searchsorted(m.timeline.days, day, side="right")) - 1  # the panel row of `day` (or before it)
    live = (u.list_day <= at) & (u.delist_day > at)
    known = (s.date > day) & (s.date <= day + np.timedelta64(SCHEDULE_AHEAD_DAYS, "D"))
    cand = np.flatnonzero((s.kind < 4) & (s.corrects < 0) & known & np.isin(u.fy_month[s.code], [3, 9])
                          & live[s.code])
    cand = cand[np.lexsort((s.date[cand], s.code[cand]))]
    first = cand[np.r_[True, s.code[cand][1:] != s.code[cand][:-1]]] if cand.size else cand
    c = s.code[first]
    date = np.where(rng.random(first.size) < 0.05, np.datetime64("NaT"), s.date[first])
    market = u.market_new[c] if day >= RESTRUCTURE else u.market_old[c]
    fy = np.where(u.fy_month[c] == 3, "3月31日", "9月30日").astype(object)
    cols = {"Date": date, "Code": u.code[c], "CoName": u.name_jp[c], "FY": fy,
            "SectorNm": np.array([ref.s33_names()[x] for x in ref.S33_CODES], dtype=object)[u.s33[c]],
            "FQ": _FQ[s.kind[first]], "Section": np.array([ref.SECTION_JP[x] for x in market], dtype=object)}
    order = np.lexsort((u.code[c].astype(str), date.astype("int64"), np.isnat(date)))  # undecided last
    return canonical("earnings_calendar", {k: np.asarray(v)[order] for k, v in cols.items()}, first.size)
