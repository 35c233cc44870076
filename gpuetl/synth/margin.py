"""Margin and short positions: `margin_interest` (weekly, per issue), `margin_alert` (daily, for issues
under TSE/JSF designation) and `short_sale_report` (large short positions, >= 0.5% of shares).

Outstanding margin positions are a few days of volume, persistent from week to week. Standardised
(制度信用) shorts exist only for loanable issues (Mrgn "2"); Mrgn "3" issues have no margin rows.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import scipy.signal

from gpuetl.synth.calendar import week_id
from gpuetl.synth.config import stream
from gpuetl.synth.core import MarketCore
from gpuetl.synth.frames import canonical

_REASONS = ("Restricted", "DailyPublication", "Monitoring", "RestrictedByJSF", "PrecautionByJSF",
            "UnclearOrSecOnAlert")
# (flags set, TSEMrgnRegCls) of the designations an alert episode can have
_TEMPLATES = ((("DailyPublication",), "002"), (("PrecautionByJSF",), "001"),
              (("DailyPublication", "PrecautionByJSF"), "002"), (("Restricted", "DailyPublication"), "003"),
              (("RestrictedByJSF", "PrecautionByJSF"), "001"), (("DailyPublication", "UnclearOrSecOnAlert"), "002"))
_SELLERS = (("Alpine Ridge Capital LLP", "London, United Kingdom"), ("Kestrel Global Master Fund", "Cayman Islands"),
            ("Northwind Partners LP", "New York, USA"), ("Sakura Bay Investment Ltd", "Hong Kong"),
            ("Tidewater Asset Management", "Singapore"), ("Meridian Quant Fund", "Dublin, Ireland"),
            ("北星キャピタル株式会社", "東京都千代田区"), ("個人", ""))


def _lots(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(x / 100.0), 0.0) * 100.0


def margin_interest(m: MarketCore) -> pd.DataFrame:
    """Weekly outstanding margin positions at the week's last business day (no row for weeks of <= 2 days)."""
    rng = stream(m.config, "margin_interest")
    p, u, tl = m.panel, m.universe, m.timeline
    wk = week_id(m.days)
    weeks, first = np.unique(wk, return_index=True)
    last = np.append(first[1:], m.days.size) - 1
    cal_wk = week_id(tl.bdays)
    days_in_week = np.bincount(np.searchsorted(weeks, cal_wk[np.isin(cal_wk, weeks)]), minlength=weeks.size)
    traded_days = np.add.reduceat(p.traded.astype(np.float64), first, axis=0)
    avg_vol = np.add.reduceat(np.nan_to_num(p.Vo), first, axis=0) / np.maximum(traded_days, 1.0)
    level = np.exp(np.log(4.0) + 0.5 * rng.standard_normal(u.n))
    persist = np.exp(scipy.signal.lfilter([1.0], [1.0, -0.9], 0.15 * rng.standard_normal(avg_vol.shape), axis=0))
    smooth = scipy.signal.lfilter([0.3], [1.0, -0.7], avg_vol, axis=0, zi=0.7 * avg_vol[:1])[0]  # follows volume
    long_vol = _lots(smooth * level[None, :] * persist)
    short_vol = _lots(long_vol * rng.uniform(0.1, 0.6, u.n)[None, :]
                      * np.exp(0.2 * rng.standard_normal(long_vol.shape)))
    eligible = np.isin(u.margin, ["1", "2"])
    keep = (days_in_week > 2)[:, None] & p.listed[last] & eligible[None, :] & (traded_days > 0)
    w_idx, i_idx = np.nonzero(keep)
    lv, sv = long_vol[w_idx, i_idx], short_vol[w_idx, i_idx]
    loanable = u.margin[i_idx] == "2"
    long_std = _lots(lv * rng.uniform(0.6, 0.9, lv.size))
    short_std = np.where(loanable, _lots(sv * rng.uniform(0.7, 0.95, sv.size)), 0.0)
    cols = {"Date": m.days[last[w_idx]], "Code": u.code[i_idx], "ShrtVol": sv, "LongVol": lv,
            "ShrtNegVol": sv - short_std, "LongNegVol": lv - long_std, "ShrtStdVol": short_std,
            "LongStdVol": long_std, "IssType": u.margin[i_idx]}
    return canonical("margin_interest", cols, w_idx.size)


def _group_start(group: np.ndarray) -> np.ndarray:
    """Index of the first row of each row's run of equal `group` values (rows sorted by group)."""
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]][: group.size])
    return starts[np.searchsorted(starts, np.arange(group.size), side="right") - 1]


def margin_alert(m: MarketCore) -> pd.DataFrame:
    """Daily outstanding margin of issues in alert episodes (5-40 business days); PubDate = next business
    day after AppDate; a missing previous day ("-" on the wire) is NaN in the *Chg columns."""
    rng = stream(m.config, "margin_alert")
    p, u, tl = m.panel, m.universe, m.timeline
    d = m.days.size
    n_ep = rng.poisson(0.3 * u.n * d / 245.0)
    issue = rng.integers(0, u.n, n_ep)
    start = rng.integers(0, d, n_ep)
    length = rng.integers(5, 41, n_ep)
    ep = np.repeat(np.arange(n_ep), length)
    day = start[ep] + (np.arange(ep.size) - np.repeat(np.cumsum(length) - length, length))
    ok = day < d
    ep, day = ep[ok], day[ok]
    ok = p.listed[day, issue[ep]]
    # one row per (issue, day): overlapping episodes merge into runs of consecutive business days
    cell = np.unique(issue[ep[ok]].astype(np.int64) * (d + 1) + day[ok])
    i, day = cell // (d + 1), cell % (d + 1)
    ep = np.cumsum(np.r_[True, (i[1:] != i[:-1]) | (day[1:] != day[:-1] + 1)][: i.size]) - 1
    n_ep = int(ep[-1]) + 1 if ep.size else 0
    template = rng.integers(0, len(_TEMPLATES), n_ep)
    first = _group_start(ep)
    adv = (np.nan_to_num(p.Vo[day, i]) + 100.0)[first]  # the episode's first-day volume sets its scale
    walk = np.cumsum(0.05 * rng.standard_normal(ep.size))
    walk -= walk[first]
    long_out = _lots(3.0 * adv * np.exp(walk))
    short_out = _lots(long_out * rng.uniform(0.2, 1.2, n_ep)[ep] * np.exp(0.5 * walk))
    texts = np.array([json.dumps({r: "1" if r in flags else "0" for r in _REASONS}) for flags, _ in _TEMPLATES],
                     dtype=object)
    fresh = np.arange(ep.size) == first
    # corrections: ~1% of rows re-published 2 business days later with revised outstanding
    fix = np.flatnonzero(rng.random(ep.size) < 0.01)
    rows = np.r_[np.arange(ep.size), fix]
    bump = np.r_[np.ones(ep.size), np.full(fix.size, 1.02)]
    cols = _alert_values(_lots(short_out[rows] * bump), _lots(long_out[rows] * bump), u.margin[i[rows]],
                         p.shares[day, i][rows])
    base = _alert_values(short_out, long_out, u.margin[i], p.shares[day, i])
    for k in _OUTSTANDING:  # day-on-day change against the previous day's first publication
        prev = np.r_[np.nan, base[k][:-1]]
        cols[k + "Chg"] = np.where(fresh[rows], np.nan, cols[k] - prev[rows])
    pub = tl.after(m.days[day])
    cols.update(AppDate=m.days[day][rows], Code=u.code[i][rows], PubReason=texts[template[ep]][rows],
                TSEMrgnRegCls=np.array([c for _, c in _TEMPLATES], dtype=object)[template[ep]][rows],
                PubDate=np.r_[pub, tl.after(pub[fix], 2)])
    order = np.lexsort((cols["AppDate"], cols["Code"].astype(str), cols["PubDate"]))
    return canonical("margin_alert", {k: np.asarray(v)[order] for k, v in cols.items()}, rows.size)


_OUTSTANDING = ("ShrtOut", "LongOut", "ShrtNegOut", "ShrtStdOut", "LongNegOut", "LongStdOut")


def _alert_values(short_out: np.ndarray, long_out: np.ndarray, margin: np.ndarray,
                  shares: np.ndarray) -> dict[str, np.ndarray]:
    """Outstanding margin columns (standardised shorts only for loanable issues) and their ratios."""
    long_std = _lots(long_out * 0.75)
    short_std = np.where(margin == "2", _lots(short_out * 0.85), 0.0)
    out = {"ShrtOut": short_out, "LongOut": long_out, "ShrtNegOut": short_out - short_std, "ShrtStdOut": short_std,
           "LongNegOut": long_out - long_std, "LongStdOut": long_std,
           "ShrtOutRatio": np.round(100.0 * short_out / shares, 2),
           "LongOutRatio": np.round(100.0 * long_out / shares, 2)}
    with np.errstate(divide="ignore", invalid="ignore"):
        out["SLRatio"] = np.where(long_out > 0, np.round(100.0 * short_out / long_out, 2), np.nan)
    return out


def short_sale_report(m: MarketCore) -> pd.DataFrame:
    """Short positions >= 0.5% of shares, reported per (seller, issue) whenever they move; the report that
    takes a position below 0.5% is the last. Disclosed 1-2 business days after the calculation date."""
    rng = stream(m.config, "short_sale_report")
    p, u, tl = m.panel, m.universe, m.timeline
    d = m.days.size
    pairs = max(5, u.n // 10)
    issue = rng.integers(0, u.n, pairs)
    seller = rng.integers(0, len(_SELLERS), pairs)
    count = rng.poisson(6.0 * d / 245.0, pairs) + 1
    pair = np.repeat(np.arange(pairs), count)
    day = rng.integers(0, d, pair.size)
    order = np.lexsort((day, pair))
    pair, day = pair[order], day[order]
    dup = np.r_[False, (pair[1:] == pair[:-1]) & (day[1:] == day[:-1])]
    pair, day = pair[~dup], day[~dup]
    i = issue[pair]
    ok = p.listed[day, i]
    pair, day, i = pair[ok], day[ok], i[ok]
    first = _group_start(pair)
    steps = rng.normal(0.0, 0.0015, pair.size)
    steps[first] = 0.0
    walk = np.cumsum(steps)
    ratio = np.round(rng.uniform(0.005, 0.015, pairs)[pair] + walk - walk[first], 4)
    below = ratio < 0.005
    # drop everything after the first report below 0.5% of a pair
    seen = np.cumsum(below)
    before = seen - below
    after_drop = (before - before[first]) > 0
    keep = ~after_drop
    pair, day, i, ratio = pair[keep], day[keep], i[keep], np.maximum(ratio[keep], 0.0001)
    first = _group_start(pair)
    fresh = np.arange(pair.size) == first
    calc = m.days[day]
    shares = np.round(ratio * p.shares[day, i], -2)
    names = np.array([s[0] for s in _SELLERS], dtype=object)[seller[pair]]
    addrs = np.array([s[1] for s in _SELLERS], dtype=object)[seller[pair]]
    fund = np.where(rng.random(pairs) < 0.3, "Global Opportunities Fund", "").astype(object)[pair]
    prev_date = np.r_[np.datetime64("NaT"), calc[:-1]].astype("datetime64[D]")
    prev_ratio = np.r_[np.nan, ratio[:-1]]
    cols = {"DiscDate": tl.after(calc, 1 + (rng.random(pair.size) < 0.3)), "CalcDate": calc, "Code": u.code[i],
            "SSName": names, "SSAddr": addrs, "DICName": np.full(pair.size, "", dtype=object),
            "DICAddr": np.full(pair.size, "", dtype=object), "FundName": fund, "ShrtPosToSO": ratio,
            "ShrtPosShares": shares, "ShrtPosUnits": shares,
            "PrevRptDate": np.where(fresh, np.datetime64("NaT"), prev_date),
            "PrevRptRatio": np.where(fresh, np.nan, prev_ratio), "Notes": np.full(pair.size, "", dtype=object)}
    order = np.lexsort((cols["Code"].astype(str), cols["DiscDate"]))
    return canonical("short_sale_report", {k: np.asarray(v)[order] for k, v in cols.items()}, pair.size)
