"""Listing attributes from the master (effective on its own Date: the master of a day is published the
evening before): 17/33-sector codes, TOPIX scale category, market tier, margin eligibility, and business
days since listing.

Days since listing count business days (trading calendar) since the code's first row in the master.
A code already in the master's first day listed before the lake starts: its listing day is unknown and
the feature is NaN (not a count from the lake's start, which would read as a young company).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpuetl.dates import NEVER
from gpuetl.enrich.asof import Latest, asof_join, take
from gpuetl.enrich.context import Context

OUTPUTS = ("lst_s17", "lst_s33", "lst_scale", "lst_topix", "lst_tier", "lst_loanable", "lst_margin",
           "lst_bdays_listed")
# TOPIX scale categories, largest first (API-NOTES §2.2); "-" and anything else: not in TOPIX
SCALES = ("Core30", "Large70", "Mid400", "Small 1", "Small 2")
# market segment code -> tier: 1 Prime / 1st section, 2 Standard / 2nd / JASDAQ Standard,
# 3 Growth / Mothers / JASDAQ Growth, 4 TOKYO PRO MARKET and others (API-NOTES §2.24)
TIERS = {"0111": 1, "0101": 1, "0112": 2, "0102": 2, "0106": 2, "0113": 3, "0104": 3, "0107": 3, "0105": 4,
         "0109": 4}


def _number(ctx: Context, text: Any) -> Any:
    """Numeric code strings ("0050", "12") -> float; anything else NaN."""
    xp = ctx.xp
    digits = text.fillna("").str.isdigit() & (text.fillna("").str.len() > 0)
    ok = ctx.backend.to_array(digits.astype("float64")) == 1.0
    value = ctx.backend.to_array(text.where(digits, "0").astype("float64"))
    return xp.where(ok, value, xp.nan)


def _is(ctx: Context, mask: Any) -> Any:
    return ctx.backend.to_array(mask.fillna(False).astype("float64"))


def listing_features(ctx: Context) -> Mapping[str, Any]:
    xp, b, panel = ctx.xp, ctx.backend, ctx.panel
    raw = ctx.read("master", ["Date", "Code", "S17", "S33", "ScaleCat", "Mkt", "Mrgn"], own_codes=True)
    raw = raw.sort_values(["Date", "Code"]).reset_index(drop=True)
    day = ctx.days(raw["Date"], NEVER)
    pkey, code = ctx.code_keys(raw["Code"])
    t = panel.dates
    idx = Latest(b, code, day, []).lookup(pkey, t)
    scale_text = raw["ScaleCat"].fillna("")
    scale = xp.full(len(raw), 6.0)
    for rank, name in reversed(list(enumerate(SCALES, start=1))):
        scale = xp.where(_is(ctx, scale_text.str.contains(name, regex=False)) == 1.0, float(rank), scale)
    scale = xp.where(_is(ctx, raw["ScaleCat"].isna()) == 1.0, xp.nan, scale)
    tier = xp.full(len(raw), xp.nan)
    for mkt, level in TIERS.items():
        tier = xp.where(_is(ctx, raw["Mkt"] == mkt) == 1.0, float(level), tier)
    mrgn = raw["Mrgn"].fillna("")  # a null compares as null on cuDF (False on pandas): fill it first
    mrgn_missing = _is(ctx, mrgn == "") == 1.0
    loanable = xp.where(mrgn_missing, xp.nan, _is(ctx, mrgn == "2"))
    margin = xp.where(mrgn_missing, xp.nan, _is(ctx, mrgn.isin(["1", "2"])))
    # listing day: the code's first master row; censored (NaN) when that is the master's first day
    first = asof_join(b, pkey, xp.full(panel.n, -(2**40), dtype=xp.int64), code, day, direction="forward")
    first_day = take(xp, day.astype(xp.float64), first)
    every = ctx.days(ctx.read("master", ["Date"])["Date"], NEVER)  # the master's first day, over every code
    start = float(every.min()) if len(every) else xp.nan
    listed = (first >= 0) & (first_day > start) & (first_day <= t)
    safe_first = xp.where(listed, first_day, 0.0).astype(xp.int64)
    out = {
        "lst_s17": take(xp, _number(ctx, raw["S17"]), idx),
        "lst_s33": take(xp, _number(ctx, raw["S33"]), idx),
        "lst_scale": take(xp, scale, idx),
        "lst_topix": take(xp, xp.where(xp.isnan(scale), xp.nan, (scale <= len(SCALES)).astype(xp.float64)), idx),
        "lst_tier": take(xp, tier, idx),
        "lst_loanable": take(xp, loanable, idx),
        "lst_margin": take(xp, margin, idx),
        "lst_bdays_listed": xp.where(listed, ctx.calendar.count_between(safe_first, t), xp.nan),
    }
    return out
