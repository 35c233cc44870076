"""Statement features (fins_summary) as of each panel day: valuation, profitability, growth, progress,
forecast revisions and disclosure timing.

Each document becomes effective by the rule of `gpuetl.enrich.effective` (that day if disclosed before
the close, else the next business day). Three streams are projected onto the panel with `Latest`:
- actuals: financial-statement documents, priority (period end, effective day, order): the latest
  period known at t, and for a period its latest filing known at t, so a corrected filing replaces the
  original only from its own effective day, and a late correction of an older period never replaces
  a newer period;
- earnings forecasts and dividend forecasts: from 1Q-3Q documents and forecast revisions (F*, for the
  current fiscal year) and FY documents (NxF*, for the next one), priority (target fiscal year, day
  the forecast was made, effective day, order), where a corrected filing's forecast was made on the
  day of the filing it corrects (so a late correction of an older quarter never revives its stale
  forecast, and a correction of the latest one replaces it from its own effective day); a revision is
  the change against the forecast in force just before it;
- any statement document, for the days since the latest disclosure.
Values that need an earlier document (last year's same period, last fiscal year) take that document's
version known at the later document's effective day (an as-of self-join), so they too never see a
correction published later.

Per-share values and split adjustment: a document's EPS/BPS/DPS are in the share units of its own
effective day (J-GAAP restates per-share figures for splits before the disclosure). A split between the
effective day e and a panel day t changes the share count, so per-share values are carried to t's
units by the panel's cumulative AdjustmentFactor: x_t = x_e * cum(t) / cum(e) (a 1:2 split on its
ex-date has factor 0.5: EPS halves with the price, PER stays continuous). Ratios to price use the raw
close `C` of day t against these t-unit values. Share counts move the other way (n_t = n_e * cum(e) /
cum(t)). Before a code's first panel row cum(e) is taken as 1 (no split known in the lake yet).
Trailing twelve months (TTM) from cumulative year-to-date figures: TTM = YTD + last FY - last year's
same-period YTD (the FY document itself for Q4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpuetl.dates import NEVER, civil_from_days, day_numbers
from gpuetl.enrich.asof import Latest, asof_join, group_keys, lexorder, take
from gpuetl.enrich.context import Context
from gpuetl.enrich.effective import time_seconds

# what identifies and dates a filing, and its numbers (read as float64)
KEYS = ["DiscDate", "DiscTime", "Code", "DiscNo", "DocType", "CurPerType", "CurPerEn", "CurFYEn", "NxtFYEn"]
VALUES = ["Sales", "OP", "NP", "EPS", "BPS", "Eq", "TA", "EqAR", "ShOutFY", "TrShFY", "FSales", "FOP", "FNP", "FEPS",
          "FDivAnn", "NxFSales", "NxFOP", "NxFNp", "NxFEPS", "NxFDivAnn"]
COLUMNS = [*KEYS, *VALUES]
OUTPUTS = ("st_eps_yield", "st_per", "st_bps_yield", "st_pbr", "st_fwd_eps_yield", "st_fwd_per", "st_div_yield",
           "st_sales_yield", "st_log_mcap", "st_roe", "st_equity_ratio", "st_op_margin", "st_sales_yoy",
           "st_op_yoy", "st_np_yoy", "st_progress_sales", "st_progress_op", "st_progress_np", "st_progress_gap",
           "st_fc_sales_growth", "st_fc_np_growth", "st_rev_sales", "st_rev_op", "st_rev_np", "st_rev_div",
           "st_days_since_disclosure", "st_quarter", "st_days_to_expected")
EXPECTED_LAG = 364  # a company discloses a quarter about 52 weeks after the same quarter last year
EXPECTED_GAP = 45  # days after a disclosure before the next one is expected (quarters are ~91 days apart)


def month_index(xp: Any, days: Any) -> Any:
    """Months since 0000-01 of float days (NaN stays NaN): the period key of a period-end date."""
    ok = ~xp.isnan(days)
    year, month, _ = civil_from_days(xp, xp.where(ok, days, 0.0).astype(xp.int64))
    return xp.where(ok, (year * 12 + month - 1).astype(xp.float64), xp.nan)


def ratio(xp: Any, num: Any, den: Any, positive: bool = False) -> Any:
    """num / den, NaN where den is 0 or NaN (or not > 0 when `positive`)."""
    ok = den > 0 if positive else den != 0
    return xp.where(ok, num / xp.where(ok, den, 1.0), xp.nan)


def growth(xp: Any, x: Any, prev: Any) -> Any:
    """(x - prev) / |prev|: signed growth that stays meaningful across losses."""
    return ratio(xp, x - prev, xp.abs(prev))


class Statements:
    """fins_summary rows in a canonical order, with their effective days, keys and derived values."""

    def __init__(self, ctx: Context) -> None:
        b, xp = ctx.backend, ctx.xp
        self.ctx = ctx
        raw = ctx.read("fins_summary", COLUMNS, own_codes=True)  # a company's figures come from its own documents
        raw = raw.sort_values(["DiscDate", "DiscTime", "DiscNo", "Code"], na_position="last").reset_index(drop=True)
        self.n = len(raw)
        disc = ctx.days(raw["DiscDate"], NEVER)
        self.disclosed = disc
        self.effective = xp.where(disc == NEVER, NEVER,
                                  ctx.calendar.effective_at(disc, time_seconds(b, raw["DiscTime"])))
        self.panel_key, self.code = ctx.code_keys(raw["Code"])
        self.order = xp.arange(self.n)  # canonical order: ties in effective day go to the later row

        def flag(mask: Any) -> Any:
            return b.to_array(mask.fillna(False).astype("float64")) == 1.0

        self.values = {name: b.to_array(raw[name].astype("float64")) for name in VALUES}
        period_type = raw["CurPerType"]
        self.quarter = xp.zeros(self.n)  # 1..4 for 1Q..FY documents, 0 for others (forecast revisions)
        for i, label in enumerate(("1Q", "2Q", "3Q", "FY"), start=1):
            self.quarter = xp.where(flag(period_type == label), float(i), self.quarter)
        self.statement = flag(raw["DocType"].str.contains("FinancialStatements")) & (self.quarter > 0)
        self.period = month_index(xp, day_numbers(b, raw["CurPerEn"]))
        self.fy = month_index(xp, day_numbers(b, raw["CurFYEn"]))
        nxt = month_index(xp, day_numbers(b, raw["NxtFYEn"]))
        self.next_fy = xp.where(xp.isnan(nxt), self.fy + 12, nxt)
        self.statement &= ~xp.isnan(self.period) & ~xp.isnan(self.fy)  # a statement without its period is unusable
        self.cum = ctx.cum_factor_at(self.panel_key, self.code, self.effective)

    # ----------------------------------------------------------------- document-level derived values

    def actuals(self) -> dict[str, Any]:
        """Per-document TTM figures, YoY growth and ratios (NaN on rows that are not statements)."""
        xp, b = self.ctx.xp, self.ctx.backend
        values, is_statement = self.values, self.statement
        key_period = xp.where(is_statement, self.period, -1.0)
        key_fy_end = xp.where(is_statement & (self.quarter == 4), self.period, -1.0)
        # last year's same period and last fiscal year, each in the version known at this
        # document's day
        prev = asof_join(b, [self.code, xp.where(is_statement, self.period - 12, -2.0)], self.effective,
                         [self.code, key_period], self.effective)
        last_fy = asof_join(b, [self.code, xp.where(is_statement, self.fy - 12, -2.0)], self.effective,
                            [self.code, key_fy_end], self.effective)
        out: dict[str, Any] = {}
        q4 = self.quarter == 4
        # previous per-share values in this document's units
        units_prev = self.cum / take(xp, self.cum, prev)
        units_fy = self.cum / take(xp, self.cum, last_fy)
        for name in ("Sales", "OP", "NP", "EPS"):
            x = values[name]
            prev_value = take(xp, x, prev) * (units_prev if name == "EPS" else 1.0)
            last_fy_value = take(xp, x, last_fy) * (units_fy if name == "EPS" else 1.0)
            out[f"ttm_{name}"] = xp.where(is_statement, xp.where(q4, x, x + last_fy_value - prev_value), xp.nan)
            out[f"prev_{name}"] = xp.where(is_statement, prev_value, xp.nan)
        out["sales_yoy"] = xp.where(is_statement, ratio(xp, values["Sales"], out["prev_Sales"], positive=True) - 1.0,
                                    xp.nan)
        out["op_yoy"] = xp.where(is_statement, growth(xp, values["OP"], out["prev_OP"]), xp.nan)
        out["np_yoy"] = xp.where(is_statement, growth(xp, values["NP"], out["prev_NP"]), xp.nan)
        out["roe"] = xp.where(is_statement, ratio(xp, out["ttm_NP"], values["Eq"], positive=True), xp.nan)
        out["equity_ratio"] = xp.where(is_statement, xp.where(xp.isnan(values["EqAR"]),
                                                              ratio(xp, values["Eq"], values["TA"], positive=True),
                                                              values["EqAR"]), xp.nan)
        out["op_margin"] = xp.where(is_statement, ratio(xp, values["OP"], values["Sales"], positive=True), xp.nan)
        out["shares"] = xp.where(is_statement, values["ShOutFY"] - xp.nan_to_num(values["TrShFY"]), xp.nan)
        return out

    def origin(self) -> Any:
        """When each document's forecasts were made: a corrected filing repeats the forecasts of the filing it
        corrects (the first document of the same code, period and quarter), so it carries that filing's
        effective day; any other document its own. Forecast priority uses it, so a late correction of an
        older quarter never brings back that quarter's stale forecast."""
        xp, b = self.ctx.xp, self.ctx.backend
        is_statement = self.statement
        key, _ = group_keys(xp, [self.code, xp.where(is_statement, self.period, -1.0),
                                 xp.where(is_statement, self.quarter, -1.0 - self.order)],
                            [self.code[:0], self.period[:0], self.quarter[:0]])
        first = b.to_array(b.series(self.effective.astype(xp.float64)).groupby(b.series(key)).transform("min")
                           .reset_index(drop=True))
        return xp.where(is_statement, first, self.effective.astype(xp.float64))

    def forecasts(self) -> dict[str, Any]:
        """One forecast row per document: the target fiscal year (month key) and the forecast values."""
        xp = self.ctx.xp
        fy_doc = self.statement & (self.quarter == 4)
        out = {"target": xp.where(fy_doc, self.next_fy, self.fy)}
        for cur, nxt, name in (("FSales", "NxFSales", "sales"), ("FOP", "NxFOP", "op"), ("FNP", "NxFNp", "np"),
                               ("FEPS", "NxFEPS", "eps"), ("FDivAnn", "NxFDivAnn", "div")):
            out[name] = xp.where(fy_doc, self.values[nxt], self.values[cur])
        return out


def _revision(b: Any, docs: Statements, rows: Any, target: Any, origin: Any, value: Any, signed: bool) -> Any:
    """Change of each forecast against the forecast of the same target year in force just before it."""
    xp = b.xp
    key, _ = group_keys(xp, [docs.code, xp.where(rows, target, -1.0)], [docs.code[:0], target[:0]])
    prev = Latest(b, key, xp.where(rows, docs.effective, NEVER), [origin]).previous()
    p = take(xp, value, prev)
    change = growth(xp, value, p) if signed else ratio(xp, value, p, positive=True) - 1.0
    return xp.where(rows, change, xp.nan)


def statement_features(ctx: Context) -> Mapping[str, Any]:
    """The `statements` group: see OUTPUTS and the module docstring."""
    xp, b, panel = ctx.xp, ctx.backend, ctx.panel
    docs = Statements(ctx)
    actuals = docs.actuals()
    forecasts = docs.forecasts()
    known = docs.effective < NEVER
    forecast = known & ~xp.isnan(forecasts["target"])  # actuals forecast needs the fiscal year it is for
    earn_rows = forecast & ~(xp.isnan(forecasts["sales"]) & xp.isnan(forecasts["op"]) & xp.isnan(forecasts["np"])
                             & xp.isnan(forecasts["eps"]))
    div_rows = forecast & ~xp.isnan(forecasts["div"])
    origin = docs.origin()
    for name, signed in (("sales", False), ("op", True), ("np", True)):
        forecasts[f"rev_{name}"] = _revision(b, docs, earn_rows, forecasts["target"], origin, forecasts[name], signed)
    forecasts["rev_div"] = _revision(b, docs, div_rows, forecasts["target"], origin, forecasts["div"], False)
    # forecast growth: the forecast against the actual of the fiscal year before its target
    last_actual = asof_join(b, [docs.code, xp.where(earn_rows, forecasts["target"] - 12, -2.0)], docs.effective,
                            [docs.code, xp.where(docs.statement & (docs.quarter == 4), docs.period, -1.0)],
                            docs.effective)
    forecasts["sales_growth"] = ratio(xp, forecasts["sales"], take(xp, docs.values["Sales"], last_actual),
                                      positive=True) - 1.0
    forecasts["np_growth"] = growth(xp, forecasts["np"], take(xp, docs.values["NP"], last_actual))

    t = panel.dates
    pkey = docs.panel_key
    never = xp.full(docs.n, -1.0)
    latest_actual = Latest(b, docs.code, xp.where(docs.statement & known, docs.effective, NEVER),
                           [xp.where(docs.statement, docs.period, never)]).lookup(pkey, t)
    latest_forecast = Latest(b, docs.code, xp.where(earn_rows, docs.effective, NEVER),
                             [xp.where(earn_rows, forecasts["target"], never), origin]).lookup(pkey, t)
    latest_dividend = Latest(b, docs.code, xp.where(div_rows, docs.effective, NEVER),
                             [xp.where(div_rows, forecasts["target"], never), origin]).lookup(pkey, t)
    latest_document = Latest(b, docs.code, docs.effective, []).lookup(pkey, t)

    close = panel["C"]
    cum_t = panel["cum_factor"]

    def per_share(values: Any, idx: Any) -> Any:  # actuals document's per-share value in day t's share units
        return take(xp, values, idx) * cum_t / take(xp, docs.cum, idx)

    eps = per_share(actuals["ttm_EPS"], latest_actual)
    bps = per_share(docs.values["BPS"], latest_actual)
    feps = per_share(forecasts["eps"], latest_forecast)
    fdiv = per_share(forecasts["div"], latest_dividend)
    shares = take(xp, actuals["shares"], latest_actual) * take(xp, docs.cum, latest_actual) / cum_t
    mcap = close * shares
    out: dict[str, Any] = {
        "st_eps_yield": ratio(xp, eps, close, positive=True),
        "st_per": xp.where(eps > 0, ratio(xp, close, eps, positive=True), xp.nan),
        "st_bps_yield": ratio(xp, bps, close, positive=True),
        "st_pbr": xp.where(bps > 0, ratio(xp, close, bps, positive=True), xp.nan),
        "st_fwd_eps_yield": ratio(xp, feps, close, positive=True),
        "st_fwd_per": xp.where(feps > 0, ratio(xp, close, feps, positive=True), xp.nan),
        "st_div_yield": ratio(xp, fdiv, close, positive=True),
        "st_sales_yield": ratio(xp, take(xp, actuals["ttm_Sales"], latest_actual), mcap, positive=True),
        "st_log_mcap": xp.where(mcap > 0, xp.log(xp.where(mcap > 0, mcap, 1.0)), xp.nan),
        "st_roe": take(xp, actuals["roe"], latest_actual),
        "st_equity_ratio": take(xp, actuals["equity_ratio"], latest_actual),
        "st_op_margin": take(xp, actuals["op_margin"], latest_actual),
        "st_sales_yoy": take(xp, actuals["sales_yoy"], latest_actual),
        "st_op_yoy": take(xp, actuals["op_yoy"], latest_actual),
        "st_np_yoy": take(xp, actuals["np_yoy"], latest_actual),
    }
    # progress: year-to-date actual against the latest forecast for the same fiscal year
    same_fy = take(xp, docs.fy, latest_actual) == take(xp, forecasts["target"], latest_forecast)
    quarter = take(xp, docs.quarter, latest_actual)
    for name, col in (("sales", "Sales"), ("op", "OP"), ("np", "NP")):
        prog = ratio(xp, take(xp, docs.values[col], latest_actual), take(xp, forecasts[name], latest_forecast),
                     positive=True)
        out[f"st_progress_{name}"] = xp.where(same_fy & (quarter < 4), prog, xp.nan)
    out["st_progress_gap"] = out["st_progress_op"] - quarter / 4.0
    out["st_fc_sales_growth"] = take(xp, forecasts["sales_growth"], latest_forecast)
    out["st_fc_np_growth"] = take(xp, forecasts["np_growth"], latest_forecast)
    for name in ("sales", "op", "np"):
        out[f"st_rev_{name}"] = take(xp, forecasts[f"rev_{name}"], latest_forecast)
    out["st_rev_div"] = take(xp, forecasts["rev_div"], latest_dividend)
    out["st_days_since_disclosure"] = (t - take(xp, docs.effective, latest_document)).astype(xp.float64)
    out["st_quarter"] = quarter
    out["st_days_to_expected"] = _days_to_expected(ctx, docs, latest_actual, known)
    return {k: out[k] for k in OUTPUTS}


def _days_to_expected(ctx: Context, docs: Statements, latest_actual: Any, known: Any) -> Any:
    """Calendar days to the next statement expected from last year's calendar: the first original filing
    dated after L - 364 days, where L is t or 45 days after the latest statement if that is later; NaN
    unless that filing is known (effective) at t."""
    xp, b, panel = ctx.xp, ctx.backend, ctx.panel
    t = panel.dates
    # original filings: the first document of each (code, period); corrections repeat a period later
    rows = xp.flatnonzero(docs.statement & known)
    order = rows[lexorder(xp, [docs.code[rows], docs.period[rows], docs.effective[rows], docs.order[rows]])]
    first = xp.ones(len(order), dtype=bool)
    if len(order) > 1:
        first[1:] = (docs.code[order][1:] != docs.code[order][:-1]) | (docs.period[order][1:]
                                                                       != docs.period[order][:-1])
    originals = order[first]
    last = take(xp, docs.disclosed.astype(xp.float64), latest_actual)
    horizon = xp.where(xp.isnan(last), t, xp.maximum(t, xp.nan_to_num(last) + EXPECTED_GAP)).astype(xp.int64)
    expected = asof_join(b, docs.panel_key, horizon - EXPECTED_LAG, docs.code[originals], docs.disclosed[originals],
                         direction="forward", allow_exact_matches=False)
    hit = take(xp, originals.astype(xp.float64), expected)
    idx = xp.where(xp.isnan(hit), -1, xp.nan_to_num(hit)).astype(xp.int64)
    ok = (idx >= 0) & (take(xp, docs.effective.astype(xp.float64), idx) <= t)
    return xp.where(ok, take(xp, docs.disclosed.astype(xp.float64), idx) + EXPECTED_LAG - t, xp.nan)
