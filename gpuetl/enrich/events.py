"""Calendar-of-events features: the next scheduled earnings announcement (earnings-calendar snapshots)
and the next ex-dividend date known from dividend notices.

Earnings calendar: J-Quants serves only the current schedule, so the lake keeps snapshots stamped with
the day they were fetched (SnapshotDate). A snapshot is effective from the next business day after its
stamp; on day t the latest effective snapshot is the schedule known at t (a history built from one
recent snapshot has no values before it: the schedule of the past was never recorded).

Dividends: each notice (PubDate + PubTime, effective by the statement rule) is a version of one event
(CARefNo: the notice it corrects or deletes, its own RefNo when new). A version is in force from its
effective day until the event's next version; a deletion (StatCode 3) ends the event. On day t the next
event is, among events in force at t whose ex-date is t or later, the one with the earliest ex-date
(ties: the most recent notice). The answer only changes at a notice's effective day or the day after
an ex-date, so it is computed at those breakpoints per code and carried forward to the panel's days.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpuetl.dates import NEVER
from gpuetl.enrich.asof import Latest, asof_join, lexorder, take, through
from gpuetl.enrich.context import Context
from gpuetl.enrich.effective import time_seconds
from gpuetl.enrich.statements import ratio

EARNINGS_OUTPUTS = ("ev_days_to_announcement", "ev_announcement_soon")
DIVIDEND_OUTPUTS = ("dv_days_to_ex", "dv_next_yield", "dv_special", "dv_days_since_notice")
SOON_DAYS = 7


def earnings_features(ctx: Context) -> Mapping[str, Any]:
    """Calendar days to the code's next scheduled announcement in the schedule known at t (NaN when the
    snapshot lists no date for it, or the date has passed), and 1 when it is at most 7 days away."""
    xp, b, panel = ctx.xp, ctx.backend, ctx.panel
    raw = ctx.read("earnings_calendar", ["SnapshotDate", "Date", "Code"])
    raw = raw.sort_values(["SnapshotDate", "Code", "Date"], na_position="last").reset_index(drop=True)
    eff = ctx.calendar.after(ctx.days(raw["SnapshotDate"], NEVER))
    date = ctx.days(raw["Date"], NEVER)
    pkey, code = ctx.code_keys(raw["Code"])
    t = panel.dates
    # the latest snapshot in force at t (one key for all rows), then that snapshot's row for the code
    snap = Latest(b, xp.zeros(len(eff), dtype=xp.int64), eff, []).lookup(xp.zeros(panel.n, dtype=xp.int64), t)
    snap_eff = xp.where(snap >= 0, take(xp, eff.astype(xp.float64), snap), -1.0)
    row = asof_join(b, [pkey, snap_eff], t, [code, eff.astype(xp.float64)], eff)
    when = take(xp, xp.where(date == NEVER, xp.nan, date.astype(xp.float64)), row)
    days = xp.where(when >= t, when - t, xp.nan)
    soon = xp.where(xp.isnan(days), 0.0, (days <= SOON_DAYS).astype(xp.float64))
    return {"ev_days_to_announcement": days, "ev_announcement_soon": soon}


def dividend_features(ctx: Context) -> Mapping[str, Any]:
    """Calendar days to the next known ex-dividend date (0 on the ex-date), its dividend over the raw close
    (per-share rate carried to t's share units like statement values), 1 if it is commemorative/special,
    and days since the latest notice."""
    xp, b, panel = ctx.xp, ctx.backend, ctx.panel
    cols = ["PubDate", "PubTime", "Code", "RefNo", "StatCode", "CARefNo", "DivRate", "ExDate", "CommSpecCode"]
    raw = ctx.read("dividend", cols).sort_values(["PubDate", "PubTime", "RefNo", "Code"], na_position="last")
    raw = raw.reset_index(drop=True)
    n = len(raw)
    pub = ctx.days(raw["PubDate"], NEVER)
    eff = xp.where(pub == NEVER, NEVER, ctx.calendar.effective_at(pub, time_seconds(b, raw["PubTime"])))
    ex = ctx.days(raw["ExDate"], NEVER)
    pkey, code = ctx.code_keys(raw["Code"])
    corrects = raw["CARefNo"]
    corrects = corrects.where(corrects.notna() & (corrects != ""), raw["RefNo"])  # a new notice: its own RefNo
    event, _ = ctx.string_keys(corrects, raw["RefNo"].iloc[:0])
    deleted = b.to_array((raw["StatCode"] == "3").fillna(False).astype("float64")) == 1.0
    special = b.to_array(((raw["CommSpecCode"] != "0") & raw["CommSpecCode"].notna()).fillna(False)
                         .astype("float64"))
    rate = b.to_array(raw["DivRate"].astype("float64"))
    rows = xp.arange(n)
    # each version is in force from its effective day until the next version of its event
    by_event = lexorder(xp, [event, eff, rows])
    nxt = xp.full(n, NEVER, dtype=xp.int64)
    if n > 1:
        same = event[by_event][1:] == event[by_event][:-1]
        nxt[by_event[:-1]] = xp.where(same, eff[by_event][1:], NEVER)
    usable = ~deleted & (ex < NEVER) & (eff < NEVER)
    # breakpoints per code: every effective day and every day after an ex-date
    bp_code = xp.concatenate([code, code])
    bp_day = xp.concatenate([eff, xp.where(ex < NEVER, ex + 1, NEVER)])
    keep = bp_day < NEVER
    bp_code, bp_day = bp_code[keep], bp_day[keep]
    bp_id = xp.arange(len(bp_code))
    pairs = b.xdf.DataFrame({"c": b.series(bp_code), "p": b.series(bp_id)}).merge(
        b.xdf.DataFrame({"c": b.series(code[usable]), "v": b.series(rows[usable])}), on="c")
    p = xp.asarray(b.to_array(pairs["p"]), dtype=xp.int64) if len(pairs) else xp.zeros(0, dtype=xp.int64)
    v = xp.asarray(b.to_array(pairs["v"]), dtype=xp.int64) if len(pairs) else xp.zeros(0, dtype=xp.int64)
    day = bp_day[p]
    live = (eff[v] <= day) & (day < nxt[v]) & (ex[v] >= day)
    p, v = p[live], v[live]
    best = lexorder(xp, [p, ex[v], -eff[v], -rows[v]])
    p, v = p[best], v[best]
    first = xp.ones(len(p), dtype=bool)
    if len(p) > 1:
        first[1:] = p[1:] != p[:-1]
    choice = xp.full(len(bp_id), -1, dtype=xp.int64)
    choice[p[first]] = v[first]
    t = panel.dates
    at = asof_join(b, pkey, t, bp_code, bp_day)  # the breakpoint in force at t
    row = through(xp, choice, at)
    cum = ctx.cum_factor_at(pkey, code, eff)
    per_share = take(xp, rate, row) * panel["cum_factor"] / take(xp, cum, row)
    days = take(xp, ex.astype(xp.float64), row) - t
    latest = Latest(b, code, eff, []).lookup(pkey, t)
    return {
        "dv_days_to_ex": days,
        "dv_next_yield": ratio(xp, per_share, panel["C"], positive=True),
        "dv_special": xp.where(row >= 0, take(xp, special, row), xp.nan),
        "dv_days_since_notice": t - take(xp, eff, latest),
    }
