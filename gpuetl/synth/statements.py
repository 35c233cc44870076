"""Financial statements: `fins_summary` and `fins_details`, plus the price reaction to each disclosure.

Each company has annual sales, margins, profits and equity per fiscal year (slowly growing, noisy) and
an initial guidance with an error. A quarterly document reports cumulative YTD P/L moved by its
surprise z (the same z moves the price on the first close after disclosure), the balance sheet at the
period end, shares consistent with splits, the current forecasts (or next year's, in FY documents)
and dividends (results and forecasts). Forecast-revision documents carry only forecast fields and
change the forecasts every later document reports; corrected filings repeat a period with a new DiscNo
and slightly different values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gpuetl.synth.config import MarketConfig, stream
from gpuetl.synth.core import Fundamentals, MarketCore
from gpuetl.synth.frames import canonical, days_str, flag
from gpuetl.synth.schedule import KINDS, Schedule
from gpuetl.synth.universe import Universe

SIG_CHG_FROM = np.datetime64("2024-07-22")  # SigChgInC is populated from this date on
_BANKS = (27, 28, 29, 30)  # 33-sector rows of banks, securities, insurance, other finance
_P_L = ("Sales", "OP", "OdP", "NP")


def price_reactions(config: MarketConfig, universe: Universe, schedule: Schedule,
                    n_days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(issue, day, log-return jump) of earnings news (on the first close after disclosure) and IPO days."""
    s = schedule
    ok = (s.corrects < 0) & (s.effective >= 0) & (s.effective < n_days)
    scale = config.earnings_jump * (0.7 + 0.6 * universe.size_pct[s.code]) * np.where(s.kind >= 4, 0.6, 1.0)
    ipo = np.flatnonzero((universe.list_day > 0) & (universe.list_day < n_days))
    pop = stream(config, "ipo").normal(0.08, 0.2, ipo.size)
    return (np.concatenate([s.code[ok], ipo]), np.concatenate([s.effective[ok], universe.list_day[ipo]]),
            np.concatenate([(scale * s.surprise)[ok], pop]))


def _annual(rng: np.random.Generator, u: Universe, ny: int) -> dict[str, np.ndarray]:
    """(N, ny) annual actuals and guidance per company and fiscal-year slot (slot 1 = start year)."""
    n = u.n
    cap0 = u.shares0 * u.price0

    def path(mu: float, sd: float) -> np.ndarray:
        p = np.cumprod(1.0 + rng.normal(mu, sd, (n, ny)), axis=1)
        return p / p[:, [min(1, ny - 1)]]

    sales = (cap0 * np.exp(rng.normal(0.0, 0.6, n)))[:, None] * path(0.03, 0.08)
    margin = np.clip(rng.normal(0.07, 0.04, n)[:, None] + rng.normal(0, 0.015, (n, ny)), -0.1, 0.35)
    op = sales * margin
    odp = op * (1.0 + rng.normal(0.02, 0.02, (n, ny)))
    np_ = odp * 0.68 * (1.0 + rng.normal(0.0, 0.05, (n, ny)))
    eq = (cap0 * np.exp(rng.normal(np.log(0.9), 0.4, n)))[:, None] * path(0.04, 0.03)
    bank = np.isin(u.s33, _BANKS)
    eq_ratio = np.where(bank, rng.uniform(0.04, 0.10, n), rng.uniform(0.25, 0.70, n))
    err = rng.standard_normal((n, ny))
    out = {"Sales": sales, "OP": op, "OdP": odp, "NP": np_, "Eq": eq, "eq_ratio": eq_ratio[:, None],
           "cash_ratio": rng.uniform(0.05, 0.2, n)[:, None], "treasury": rng.uniform(0.0, 0.06, n)[:, None],
           "payer": (rng.random(n) < 0.85)[:, None], "payout": rng.uniform(0.2, 0.45, n)[:, None],
           "interim": (rng.random(n) < 0.7)[:, None]}
    for k in _P_L:
        out["F" + k] = out[k] * (1.0 + (0.03 if k == "Sales" else 0.08) * err)
    return out


def _shares_at(m: MarketCore, code: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """Shares outstanding of each issue at each date (split-consistent; first/last day outside the range)."""
    idx = np.clip(np.searchsorted(m.days, dates, side="right") - 1, 0, m.timeline.n - 1)
    return m.panel.shares[idx, code]


def _dps(a: dict[str, np.ndarray], c: np.ndarray, y: np.ndarray, np_fc: np.ndarray,
         shares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(interim, year-end) dividend per share in whole yen from a net-profit forecast."""
    annual = np.where(a["payer"][c, 0], np.round(np.maximum(np_fc * a["payout"][c, 0] / shares, 0.0)), 0.0)
    interim = np.where(a["interim"][c, 0], np.floor(annual / 2.0), 0.0)
    return interim, annual - interim


def _running_product(key: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Product of `factor` over rows up to and including each row, within groups of equal `key`."""
    order = np.lexsort((np.arange(key.size), key))
    logs = np.cumsum(np.log(factor[order]))
    k = key[order]
    first = np.searchsorted(k, k, side="left")
    out = np.empty(key.size)
    out[order] = np.exp(logs - logs[first] + np.log(factor[order][first]))
    return out


def build_fundamentals(m: MarketCore) -> Fundamentals:
    s, u = m.schedule, m.universe
    rng = stream(m.config, "fundamentals")
    ny = s.n_fy
    a = _annual(rng, u, ny)
    n = s.size
    c, y, kind = s.code, s.fy, s.kind
    orig = np.where(s.corrects >= 0, s.corrects, np.arange(n))
    z = s.surprise[orig]
    q = np.where(kind < 4, kind + 1, 4)
    quarterly, fy_doc = kind < 4, kind == 3
    # forecast revisions: every document after a revision (same company and FY) reports revised numbers
    key = c * ny + y
    earn_rev = _running_product(key, np.where(kind == 4, np.clip(1.0 + 0.08 * s.surprise, 0.5, None), 1.0))
    div_rev = _running_product(key, np.where(kind == 5, np.clip(1.0 + 0.2 * s.surprise, 0.3, None), 1.0))
    frac = np.where(q < 4, q / 4.0 * (1.0 + 0.02 * rng.standard_normal(n)), 1.0)
    cols: dict[str, np.ndarray] = {}
    for k, kz in zip(_P_L, (0.02, 0.08, 0.08, 0.08), strict=True):
        cols[k] = np.where(quarterly, np.round(a[k][c, y] * frac * (1.0 + kz * z), -6), np.nan)
    ifrs_us = u.standard[c] != "JP"
    cols["OdP"][ifrs_us] = np.nan
    shares = np.round(_shares_at(m, c, s.period_end))
    treasury = np.round(shares * a["treasury"][c, 0], -2)
    avg = shares - treasury
    cols["EPS"] = np.round(cols["NP"] / avg, 2)
    cols["DEPS"] = np.where(rng.random(n) < 0.2, np.round(cols["EPS"] * 0.99, 2), np.nan)
    prev_eq = a["Eq"][c, np.maximum(y - 1, 0)]
    eq = np.round(prev_eq + (a["Eq"][c, y] - prev_eq) * frac, -6)
    ta = np.round(eq / a["eq_ratio"][c, 0] * (1.0 + 0.02 * rng.standard_normal(n)), -6)
    cols.update(Eq=np.where(quarterly, eq, np.nan), TA=np.where(quarterly, ta, np.nan))
    cols["EqAR"] = np.round(cols["Eq"] / cols["TA"], 3)
    cols["BPS"] = np.round(cols["Eq"] / avg, 2)
    cf = quarterly & ((q == 2) | (q == 4))
    cfo = (cols["NP"] + 0.05 * cols["Sales"]) * (1.0 + 0.2 * rng.standard_normal(n))
    cols["CFO"] = np.where(cf, np.round(cfo, -6), np.nan)
    cols["CFI"] = np.where(cf, np.round(-0.6 * np.abs(cfo) * (1 + 0.3 * rng.standard_normal(n)), -6), np.nan)
    cols["CFF"] = np.where(cf, np.round(-0.3 * np.abs(cfo) * (1 + 0.3 * rng.standard_normal(n)), -6), np.nan)
    cols["CashEq"] = np.where(cf, np.round(ta * a["cash_ratio"][c, 0], -6), np.nan)
    cols.update(ShOutFY=np.where(quarterly, shares, np.nan), TrShFY=np.where(quarterly, treasury, np.nan),
                AvgSh=np.where(quarterly, avg, np.nan))
    # forecasts: current FY in 1Q-3Q documents and revisions, next FY in FY documents
    nxt = np.minimum(y + 1, ny - 1)
    current = (q < 4) | (kind == 4)
    for k in _P_L:
        cols["F" + k] = np.where(current, np.round(a["F" + k][c, y] * earn_rev, -6), np.nan)
        nk = "NxFNp" if k == "NP" else "NxF" + k
        cols[nk] = np.where(fy_doc, np.round(a["F" + k][c, nxt], -6), np.nan)
    cols["FOdP"][ifrs_us] = np.nan
    cols["NxFOdP"][ifrs_us] = np.nan
    cols["FEPS"] = np.round(cols["FNP"] / avg, 2)
    cols["NxFEPS"] = np.round(cols["NxFNp"] / avg, 2)
    half = q == 1
    for k in _P_L:  # first-half guidance in 1Q documents (and next year's in FY documents)
        cols["F" + k + "2Q"] = np.where(half & quarterly, np.round(0.48 * cols["F" + k], -6), np.nan)
        nk = "NxFNp2Q" if k == "NP" else "NxF" + k + "2Q"
        cols[nk] = np.where(fy_doc, np.round(0.48 * cols["NxFNp" if k == "NP" else "NxF" + k], -6), np.nan)
    cols["FEPS2Q"] = np.round(cols["FNP2Q"] / avg, 2)
    cols["NxFEPS2Q"] = np.round(cols["NxFNp2Q"] / avg, 2)
    # dividends: results for passed quarter-ends, forecasts for the rest
    interim, final = _dps(a, c, y, a["FNP"][c, y] * earn_rev, shares)
    interim, final = np.round(interim * div_rev), np.round(final * div_rev)
    nx_interim, nx_final = _dps(a, c, nxt, a["FNP"][c, nxt], shares)
    cols["Div2Q"] = np.where(quarterly & (q >= 2), interim, np.nan)
    cols["DivFY"] = np.where(fy_doc, final, np.nan)
    cols["DivAnn"] = np.where(fy_doc, interim + final, np.nan)
    cols["DivTotalAnn"] = np.round(cols["DivAnn"] * avg, -6)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["PayoutRatioAnn"] = np.where(cols["EPS"] > 0, np.round(100 * cols["DivAnn"] / cols["EPS"], 1), np.nan)
        div_fc = (q < 4) | (kind == 5)
        cols["FDiv2Q"] = np.where(div_fc & (q < 2) | (kind == 5), interim, np.nan)
        cols["FDivFY"] = np.where(div_fc, final, np.nan)
        cols["FDivAnn"] = np.where(div_fc, interim + final, np.nan)
        cols["FPayoutRatioAnn"] = np.where(cols["FEPS"] > 0, np.round(100 * cols["FDivAnn"] / cols["FEPS"], 1),
                                           np.nan)
        cols["NxFDiv2Q"] = np.where(fy_doc, nx_interim, np.nan)
        cols["NxFDivFY"] = np.where(fy_doc, nx_final, np.nan)
        cols["NxFDivAnn"] = np.where(fy_doc, nx_interim + nx_final, np.nan)
        cols["NxFPayoutRatioAnn"] = np.where(cols["NxFEPS"] > 0,
                                             np.round(100 * cols["NxFDivAnn"] / cols["NxFEPS"], 1), np.nan)
    # non-consolidated figures in the FY documents of consolidated JP-GAAP filers
    nc = fy_doc & (u.standard[c] == "JP") & u.consolidated[c]
    for k, v in (("NCSales", "Sales"), ("NCOP", "OP"), ("NCOdP", "OdP"), ("NCNP", "NP"), ("NCTA", "TA"),
                 ("NCEq", "Eq")):
        cols[k] = np.where(nc, np.round(0.55 * cols[v], -6), np.nan)
    cols["NCEPS"] = np.round(cols["NCNP"] / avg, 2)
    cols["NCEqAR"] = np.round(cols["NCEq"] / cols["NCTA"], 3)
    cols["NCBPS"] = np.round(cols["NCEq"] / avg, 2)
    # corrected filings restate a few values slightly
    fix = s.corrects >= 0
    for k in ("Sales", "OP", "NP", "TA", "Eq"):
        cols[k] = np.where(fix, np.round(cols[k] * (1.0 + 0.003 * rng.standard_normal(n)), -6), cols[k])
    return Fundamentals(columns=cols)


def _doc_types(m: MarketCore) -> np.ndarray:
    s, u = m.schedule, m.universe
    prefix = np.array(["1Q", "2Q", "3Q", "FY", "", ""], dtype=object)[s.kind]
    scope = np.where(u.consolidated[s.code], "_Consolidated_", "_NonConsolidated_").astype(object)
    doc = prefix + "FinancialStatements" + scope + u.standard[s.code]
    return np.where(s.kind >= 4, np.array(KINDS, dtype=object)[s.kind], doc)


def _disc_no(dates: np.ndarray) -> np.ndarray:
    """14-digit DiscNo: YYYYMMDD + a 6-digit sequence ascending through the (already sorted) day."""
    first = np.searchsorted(dates, dates, side="left")
    seq = 100000 + 37 * (np.arange(dates.size) - first)
    return np.char.add(days_str(dates), seq.astype("U6")).astype(object)


def fins_summary(m: MarketCore) -> pd.DataFrame:
    s = m.schedule
    cols: dict[str, object] = dict(m.fundamentals.columns)
    rng = stream(m.config, "fins_flags")
    n = s.size
    statement = s.kind < 4
    fy_doc = s.kind == 3
    period_type = np.array(["1Q", "2Q", "3Q", "FY", "FY", "FY"], dtype=object)[s.kind]
    one_day = np.timedelta64(1, "D")
    cols.update({
        "DiscDate": s.date, "DiscTime": s.time, "Code": m.universe.code[s.code], "DiscNo": _disc_no(s.date),
        "DocType": _doc_types(m), "CurPerType": period_type,
        "CurPerSt": s.fy_start, "CurPerEn": np.where(statement, s.period_end, s.fy_end),
        "CurFYSt": s.fy_start, "CurFYEn": s.fy_end,
        "NxtFYSt": np.where(fy_doc, s.fy_end + one_day, np.datetime64("NaT")),
        "NxtFYEn": np.where(fy_doc, (s.fy_end.astype("datetime64[M]") + 13).astype("datetime64[D]") - one_day,
                            np.datetime64("NaT")),
    })
    for k in ("MatChgSub", "ChgByASRev", "ChgNoASRev", "ChgAcEst", "RetroRst"):
        cols[k] = flag(rng.random(n) < 0.03, missing=~statement)
    cols["SigChgInC"] = flag(rng.random(n) < 0.03, missing=~statement | (s.date < SIG_CHG_FROM))
    cols.update(_owners_equity(m, fy_doc))
    return canonical("fins_summary", cols, n)


def _owners_equity(m: MarketCore, fy_doc: np.ndarray) -> dict[str, np.ndarray]:
    """ShEq (equity less non-controlling interests, where Eq is reported) and ROE = NP / ShEq as a fraction
    (FY documents, whose NP is the full year), with their non-consolidated twins (no minority interests)."""
    f, c = m.fundamentals.columns, m.schedule.code
    minority = stream(m.config, "owners_equity").uniform(0.0, 0.08, m.universe.n)[c]
    sh_eq = np.round(f["Eq"] * (1.0 - np.where(m.universe.consolidated[c], minority, 0.0)), -6)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"ShEq": sh_eq, "NCShEq": f["NCEq"].copy(),
                "ROE": np.where(fy_doc, np.round(f["NP"] / sh_eq, 4), np.nan),
                "NCROE": np.where(fy_doc, np.round(f["NCNP"] / f["NCEq"], 4), np.nan)}


def fins_details(m: MarketCore) -> pd.DataFrame:
    """One FS map per statement document: a few EDINET-style labels, values as strings (JSON text)."""
    s, u = m.schedule, m.universe
    keep = np.flatnonzero(s.kind < 4)
    f = m.fundamentals.columns
    c = s.code[keep]
    ifrs = (u.standard[c] == "IFRS").astype(object)
    std = pd.Series(np.array(["Japan GAAP", "IFRS", "US GAAP"], dtype=object)[
        np.select([u.standard[c] == "JP", u.standard[c] == "IFRS"], [0, 1], 2)], dtype=object)

    def num(name: str) -> pd.Series:
        v = f[name][keep]
        txt = np.where(np.isnan(v), 0, v).astype(np.int64).astype(str).astype(object)
        return pd.Series(np.where(np.isnan(v), "", txt), dtype=object)

    def label(jp: str, ifrs_label: str) -> pd.Series:
        return pd.Series(np.where(ifrs, ifrs_label, jp), dtype=object)

    period = pd.Series(np.array(["Q1", "Q2", "Q3", "FY"], dtype=object)[s.kind[keep]], dtype=object)
    edinet = pd.Series((np.char.add("E", (10000 + c).astype("U5"))).astype(object), dtype=object)
    parts = [("EDINET code, DEI", edinet), ("Security code, DEI", pd.Series(u.code[c], dtype=object)),
             ("Type of current period, DEI", period), ("Accounting standards, DEI", std)]
    text = pd.Series(["{"] * keep.size, dtype=object)
    for i, (k, v) in enumerate(parts):
        text = text + ("" if i == 0 else ", ") + f'"{k}": "' + v + '"'
    for jp, ifrs_label, name in (("Net sales", "Revenue (IFRS)", "Sales"),
                                 ("Operating profit (loss)", "Operating profit (loss) (IFRS)", "OP"),
                                 ("Profit (loss) attributable to owners of parent",
                                  "Profit (loss) attributable to owners of parent (IFRS)", "NP"),
                                 ("Total assets", "Total assets (IFRS)", "TA"),
                                 ("Net assets", "Equity (IFRS)", "Eq")):
        text = text + ', "' + label(jp, ifrs_label) + '": "' + num(name) + '"'
    ordinary = num("OdP")
    text = text + pd.Series(np.where(ordinary != "", ', "Ordinary profit (loss)": "' + ordinary + '"', ""),
                            dtype=object) + "}"
    cols = {"DiscDate": s.date[keep], "DiscTime": s.time[keep], "Code": u.code[c],
            "DiscNo": _disc_no(s.date)[keep], "DocType": _doc_types(m)[keep],
            "FS": text.to_numpy()}  # host-ok: the synthetic market is NumPy/pandas by design
    return canonical("fins_details", cols, keep.size)
