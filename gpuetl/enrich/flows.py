"""Flow features: investor types by market section, weekly margin interest and margin alerts by code,
short-selling ratios by 33-sector, each projected onto the panel's days from its effective day on.

All are scale-free: net buying over turnover, shares of turnover, margin positions in days of average
volume (both in the panel's split-adjusted share units), ratios published as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpuetl.dates import NEVER
from gpuetl.enrich.asof import Latest, asof_join, lexorder, take
from gpuetl.enrich.context import Context
from gpuetl.enrich.statements import ratio

# Investor-type sections of each market segment code (API-NOTES §2.24); other segments have none.
SECTION_OF_MARKET = {"0101": "TSE1st", "0102": "TSE2nd", "0104": "TSEMothers", "0106": "TSEJASDAQ",
                     "0107": "TSEJASDAQ", "0111": "TSEPrime", "0112": "TSEStandard", "0113": "TSEGrowth"}
MARKET_WIDE = "TokyoNagoya"
CATEGORIES = ("Prop", "Ind", "Frgn", "SecCo", "InvTr", "BusCo", "OthCo", "InsCo", "Bank", "TrstBnk", "OthFin")
IT_OUTPUTS = (*(f"it_{c.lower()}_net" for c in CATEGORIES), "it_frgn_share", "it_ind_share", "it_mkt_frgn_net",
              "it_mkt_ind_net", "it_days_since")
MI_OUTPUTS = ("mi_long_days", "mi_short_days", "mi_short_long", "mi_long_chg", "mi_short_chg", "mi_std_share",
              "mi_days_since")
MA_OUTPUTS = ("ma_active", "ma_bdays_since", "ma_long_ratio", "ma_short_ratio", "ma_sl_ratio", "ma_restricted",
              "ma_daily_pub", "ma_jsf_precaution")
SS_OUTPUTS = ("ss_ratio", "ss_nores_share", "ss_ratio_gap_20d", "ss_mkt_ratio", "ss_ratio_rel")
ADV_WINDOW = 20  # days of volume a margin position is measured in
ALERT_ACTIVE_BDAYS = 3  # an alert issue is published daily; a gap of more business days ends the episode
SHORT_WINDOW = 20  # publications in the sector's short-ratio baseline


def _order(raw: Any, by: list[str]) -> Any:
    """Raw rows in a canonical order (the tie-break among rows effective the same day: the later row)."""
    return raw.sort_values(by, na_position="last").reset_index(drop=True)


def investor_type_features(ctx: Context) -> Mapping[str, Any]:
    """Net buying (balance / total) of each investor type in the code's section that week, foreigners' and
    individuals' share of turnover, the same for the whole market, and days since the publication.
    Weekly rows are effective from the business day after PubDate; a correction (same week, later
    PubDate) replaces the week from its own effective day; a later week always wins over an earlier one."""
    xp, b = ctx.xp, ctx.backend
    cols = ["PubDate", "StDate", "EnDate", "Section", "TotTot",
            *(f"{c}{s}" for c in CATEGORIES for s in ("Tot", "Bal"))]
    raw = _order(ctx.read("investor_types", cols), ["PubDate", "StDate", "Section"])
    eff = ctx.calendar.after(ctx.days(raw["PubDate"], NEVER))  # a missing date never becomes effective
    week = ctx.days(raw["EnDate"], -1).astype(xp.float64)
    section = ctx.frame["Mkt"].replace(SECTION_OF_MARKET)
    pkey, rkey = ctx.string_keys(section, raw["Section"])
    latest = Latest(b, rkey, eff, [week])
    t = ctx.panel.dates
    idx = latest.lookup(pkey, t)
    v = {c: b.to_array(raw[c].astype("float64")) for c in cols[4:]}
    out: dict[str, Any] = {}
    for c in CATEGORIES:
        out[f"it_{c.lower()}_net"] = take(xp, ratio(xp, v[f"{c}Bal"], v[f"{c}Tot"], positive=True), idx)
    out["it_frgn_share"] = take(xp, ratio(xp, v["FrgnTot"], v["TotTot"], positive=True), idx)
    out["it_ind_share"] = take(xp, ratio(xp, v["IndTot"], v["TotTot"], positive=True), idx)
    market = b.to_array((raw["Section"] == MARKET_WIDE).fillna(False).astype("float64")) == 1.0
    mkt = Latest(b, xp.where(market, 0, 1), eff, [week]).lookup(xp.zeros(ctx.panel.n, dtype=xp.int64), t)
    out["it_mkt_frgn_net"] = take(xp, ratio(xp, v["FrgnBal"], v["FrgnTot"], positive=True), mkt)
    out["it_mkt_ind_net"] = take(xp, ratio(xp, v["IndBal"], v["IndTot"], positive=True), mkt)
    out["it_days_since"] = t - take(xp, eff, idx)
    return {k: out[k] for k in IT_OUTPUTS}


def margin_interest_features(ctx: Context) -> Mapping[str, Any]:
    """Weekly outstanding margin per code: long and short positions in days of average volume, short/long,
    week-on-week change, the standardised share, days since publication. A row (application date D,
    usually a Friday) is published on the 2nd business day after D after the close, so effective from
    the 3rd. Positions are shares at D, carried to the panel's adjusted units by the split factor at D."""
    xp, b, panel = ctx.xp, ctx.backend, ctx.panel
    cols = ["Date", "Code", "ShrtVol", "LongVol", "ShrtStdVol", "LongStdVol"]
    raw = _order(ctx.read("margin_interest", cols, own_codes=True), ["Date", "Code"])
    day = ctx.days(raw["Date"], NEVER)
    eff = xp.where(day == NEVER, NEVER, ctx.calendar.after(day, 3))
    pkey, code = ctx.code_keys(raw["Code"])
    v = {c: b.to_array(raw[c].astype("float64")) for c in cols[2:]}
    cum = ctx.cum_factor_at(pkey, code, day)
    long_adj, short_adj = v["LongVol"] * cum, v["ShrtVol"] * cum
    prev = asof_join(b, code, day, code, day, allow_exact_matches=False)
    latest = Latest(b, code, eff, [day.astype(xp.float64)])
    t = panel.dates
    idx = latest.lookup(pkey, t)
    adv = panel.rolling(panel["volume"], ADV_WINDOW, "mean", min_periods=5)
    out = {
        "mi_long_days": ratio(xp, take(xp, long_adj, idx), adv, positive=True),
        "mi_short_days": ratio(xp, take(xp, short_adj, idx), adv, positive=True),
        "mi_short_long": take(xp, ratio(xp, v["ShrtVol"], v["LongVol"], positive=True), idx),
        "mi_long_chg": take(xp, ratio(xp, long_adj, take(xp, long_adj, prev), positive=True) - 1.0, idx),
        "mi_short_chg": take(xp, ratio(xp, short_adj, take(xp, short_adj, prev), positive=True) - 1.0, idx),
        "mi_std_share": take(xp, ratio(xp, v["LongStdVol"], v["LongVol"], positive=True), idx),
        "mi_days_since": t - take(xp, eff, idx),
    }
    return out


def _flag(ctx: Context, text: Any, name: str) -> Any:
    """A "1" flag of the PubReason JSON object (compact or spaced, string or number)."""
    hit = text.fillna("").str.contains(f'"{name}"\\s*:\\s*"?1', regex=True)
    return ctx.backend.to_array(hit.fillna(False).astype("float64"))


def margin_alert_features(ctx: Context) -> Mapping[str, Any]:
    """Daily margin data of issues under TSE/JSF alert: whether the issue is in an alert episode (its latest
    application date is at most 3 business days before t), business days since it, and while active the
    outstanding long/short as a share of listed shares, short/long and the designation flags. Rows are
    effective from the business day after PubDate; a correction (same AppDate, later PubDate) replaces
    the row from its own effective day; a later application date always wins."""
    xp, b = ctx.xp, ctx.backend
    cols = ["PubDate", "Code", "AppDate", "PubReason", "ShrtOutRatio", "LongOutRatio", "SLRatio"]
    raw = _order(ctx.read("margin_alert", cols, own_codes=True), ["PubDate", "AppDate", "Code"])
    pub = ctx.days(raw["PubDate"], NEVER)
    app = ctx.days(raw["AppDate"], NEVER)
    eff = xp.where((pub == NEVER) | (app == NEVER), NEVER, ctx.calendar.after(pub))
    pkey, code = ctx.code_keys(raw["Code"])
    t = ctx.panel.dates
    idx = Latest(b, code, eff, [app.astype(xp.float64)]).lookup(pkey, t)
    app_t = take(xp, app.astype(xp.float64), idx)
    since = xp.where(idx >= 0, ctx.calendar.count_between(xp.where(idx >= 0, app_t, 0.0).astype(xp.int64), t),
                     xp.nan)
    active = (idx >= 0) & (since <= ALERT_ACTIVE_BDAYS)

    def when_active(values: Any, scale: float = 1.0) -> Any:
        return xp.where(active, take(xp, values, idx) * scale, xp.nan)

    reasons = raw["PubReason"]
    out = {
        "ma_active": active.astype(xp.float64),
        "ma_bdays_since": since,
        "ma_long_ratio": when_active(b.to_array(raw["LongOutRatio"].astype("float64")), 0.01),
        "ma_short_ratio": when_active(b.to_array(raw["ShrtOutRatio"].astype("float64")), 0.01),
        "ma_sl_ratio": when_active(b.to_array(raw["SLRatio"].astype("float64")), 0.01),
        "ma_restricted": xp.where(active, take(xp, xp.maximum(_flag(ctx, reasons, "Restricted"),
                                                             _flag(ctx, reasons, "RestrictedByJSF")), idx), 0.0),
        "ma_daily_pub": xp.where(active, take(xp, _flag(ctx, reasons, "DailyPublication"), idx), 0.0),
        "ma_jsf_precaution": xp.where(active, take(xp, _flag(ctx, reasons, "PrecautionByJSF"), idx), 0.0),
    }
    return out


def short_ratio_features(ctx: Context) -> Mapping[str, Any]:
    """The code's 33-sector short-selling share of selling turnover (published after the day's close,
    effective the next business day), the share without price restriction, its gap to the sector's
    own mean over the last 20 publications, the market's latest ratio (the same for every code) and the sector
    minus the market on the sector's publication day."""
    xp, b = ctx.xp, ctx.backend
    cols = ["Date", "S33", "SellExShortVa", "ShrtWithResVa", "ShrtNoResVa"]
    raw = _order(ctx.read("short_ratio", cols), ["Date", "S33"])
    day = ctx.days(raw["Date"], NEVER)
    eff = xp.where(day == NEVER, NEVER, ctx.calendar.after(day))
    pkey, sector = ctx.string_keys(ctx.frame["S33"], raw["S33"])
    sell = b.to_array(raw["SellExShortVa"].astype("float64"))
    with_res = b.to_array(raw["ShrtWithResVa"].astype("float64"))
    no_res = b.to_array(raw["ShrtNoResVa"].astype("float64"))
    short = with_res + no_res
    total = sell + short
    share = ratio(xp, short, total, positive=True)
    # the sector's trailing mean over its own publications (rows in (sector, date) order)
    order = lexorder(xp, [sector, day, xp.arange(len(day))])
    grouped = b.series(share[order]).groupby(b.series(sector[order]), sort=True)
    baseline = xp.empty(len(day))
    # rows are already grouped by sector in key order, so the group-ordered result is in row order
    baseline[order] = b.to_array(grouped.rolling(SHORT_WINDOW, min_periods=5).mean().reset_index(drop=True))
    by_day = b.series(xp.where(xp.isnan(total), 0.0, short)).groupby(b.series(day))
    mkt_short = b.to_array(by_day.transform("sum").reset_index(drop=True))
    mkt_total = b.to_array(b.series(xp.where(xp.isnan(total), 0.0, total)).groupby(b.series(day))
                           .transform("sum").reset_index(drop=True))
    mkt = ratio(xp, mkt_short, mkt_total, positive=True)
    t = ctx.panel.dates
    idx = Latest(b, sector, eff, [day.astype(xp.float64)]).lookup(pkey, t)
    # the market's ratio: the latest publication day of any sector (every row of a day has the same value),
    # the same for every code on a day, whether its own sector was published or is known at all
    everywhere = xp.zeros(len(day), dtype=xp.int64)
    latest = Latest(b, everywhere, eff, [day.astype(xp.float64)]).lookup(xp.zeros(ctx.panel.n, dtype=xp.int64), t)
    out = {
        "ss_ratio": take(xp, share, idx),
        "ss_nores_share": take(xp, ratio(xp, no_res, short, positive=True), idx),
        "ss_ratio_gap_20d": take(xp, share - baseline, idx),
        "ss_mkt_ratio": take(xp, mkt, latest),
        "ss_ratio_rel": take(xp, share - mkt, idx),
    }
    return out
