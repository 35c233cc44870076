"""Enrichment features against naive pandas/Python references on a synthetic market (every row, every
group), and hand-built cases: corrected filings replace earlier values only from their own effective
day, a late correction of an older period or week never replaces a newer one, weekly rows cover the
days from the business day after publication until the next publication."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gpuetl.backend import Backend
from gpuetl.dataset.codes import build_panel
from gpuetl.dataset.config import EnrichSettings
from gpuetl.enrich import EnrichError, enrich, groups, select
from gpuetl.enrich.context import Context
from gpuetl.enrich.flows import SECTION_OF_MARKET
from gpuetl.lake.manifest import Manifest
from gpuetl.synth.calendar import build_calendar
from tests._testing import CPU, assert_backend_equal
from tests.support.lakes import Bdays, days, synthetic_tables, write_tables

# ----------------------------------------------------------------------------- lakes for tests


def context(backend: Backend, lake: Path) -> tuple[Context, pd.DataFrame]:
    """The build's own panel over the lake, an enrichment context, and the panel as a pandas frame."""
    from gpuetl.lake.reader import read_raw as _read

    manifest = Manifest.load(lake)
    bars = _read(backend, manifest, "bars_daily",
                 ["Code", "Date", "O", "H", "L", "C", "Vo", "Va", "AdjFactor", "UL", "LL"])
    topix = _read(backend, manifest, "topix", ["Date", "C"]).sort_values("Date")
    master = _read(backend, manifest, "master", ["Date", "Code", "S33", "Mkt"])
    frame, panel = build_panel(backend, bars, topix, master)
    ctx = Context.create(backend, manifest, panel, frame)
    host = lambda a: backend.xp.asnumpy(a) if backend.is_gpu else np.asarray(a)  # noqa: E731
    df = pd.DataFrame({"Code": frame["Code"].to_numpy() if not backend.is_gpu else frame["Code"].to_pandas(),
                       "t": host(panel.dates), "C": host(panel["C"]), "volume": host(panel["volume"]),
                       "AdjFactor": host(panel["AdjFactor"])})
    df["Mkt"] = frame["Mkt"].to_numpy() if not backend.is_gpu else frame["Mkt"].to_pandas()
    df["S33"] = frame["S33"].to_numpy() if not backend.is_gpu else frame["S33"].to_pandas()
    # the reference's own split factor: raw factors cumulated per code from its first row
    df["cum"] = df["AdjFactor"].fillna(1.0).groupby(df["Code"]).cumprod()
    return ctx, df


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, pd.DataFrame], pd.DataFrame, dict]]:
    tables = synthetic_tables()
    root = tmp_path_factory.mktemp("synth_lake")
    write_tables(root, tables)
    ctx, df = context(CPU, root)
    got = {name: cols for name, cols in enrich(CPU, Manifest.load(root), ctx.panel, ctx.frame, list(groups())).items()}
    yield tables, df, got


# ----------------------------------------------------------------------------- naive references


def cum_at(df: pd.DataFrame, code: str, d: int) -> float:
    rows = df[(df["Code"] == code) & (df["t"] <= d)]
    return float(rows["cum"].iloc[-1]) if len(rows) else 1.0


def month(d: Any) -> float:
    if pd.isna(d):
        return math.nan
    ts = pd.Timestamp(d)
    return float(ts.year * 12 + ts.month - 1)


def best(rows: list[dict], *keys: str) -> dict | None:
    return max(rows, key=lambda r: tuple(r[k] for k in keys)) if rows else None


def growth(x: float, p: float) -> float:
    return (x - p) / abs(p) if p == p and p != 0 and x == x else math.nan


def pos_ratio(a: float, b: float) -> float:
    return a / b if b == b and b > 0 and a == a else math.nan


def reference_statements(tables: dict[str, pd.DataFrame], df: pd.DataFrame) -> pd.DataFrame:
    cal = Bdays(tables["calendar"])
    fins = tables["fins_summary"].sort_values(["DiscDate", "DiscTime", "DiscNo", "Code"]).reset_index(drop=True)
    docs: dict[str, list[dict]] = {}
    for i, r in fins.iterrows():
        d = r.to_dict()
        d["order"] = i
        d["eff"] = cal.disclosed(int(days([r["DiscDate"]])[0]), r["DiscTime"])
        d["q"] = {"1Q": 1, "2Q": 2, "3Q": 3, "FY": 4}.get(r["CurPerType"], 0)
        d["fs"] = "FinancialStatements" in str(r["DocType"]) and d["q"] > 0
        d["period"], d["fy"] = month(r["CurPerEn"]), month(r["CurFYEn"])
        nxt = month(r["NxtFYEn"])
        d["target"] = (d["fy"] + 12 if nxt != nxt else nxt) if d["fs"] and d["q"] == 4 else d["fy"]
        for name, cur, nx in (("sales", "FSales", "NxFSales"), ("op", "FOP", "NxFOP"), ("np", "FNP", "NxFNp"),
                              ("eps", "FEPS", "NxFEPS"), ("div", "FDivAnn", "NxFDivAnn")):
            d["f_" + name] = r[nx] if d["fs"] and d["q"] == 4 else r[cur]
        d["earn"] = any(d["f_" + k] == d["f_" + k] for k in ("sales", "op", "np", "eps"))
        d["cum"] = cum_at(df, r["Code"], d["eff"])
        docs.setdefault(r["Code"], []).append(d)
    for rows in docs.values():  # a corrected filing's forecasts date from the filing it corrects
        for d in rows:
            same = [x["eff"] for x in rows if x["fs"] and d["fs"] and (x["period"], x["q"]) == (d["period"], d["q"])]
            d["origin"] = min(same) if d["fs"] else d["eff"]

    def version(code: str, period: float, at: int, fy_only: bool = False) -> dict | None:
        rows = [d for d in docs.get(code, []) if d["fs"] and d["period"] == period and d["eff"] <= at
                and (d["q"] == 4 or not fy_only)]
        return best(rows, "eff", "order")

    out = []
    for code, t, close, cum_t in df[["Code", "t", "C", "cum"]].itertuples(index=False):
        known = [d for d in docs.get(code, []) if d["eff"] <= t]
        a = best([d for d in known if d["fs"]], "period", "eff", "order")
        e = best([d for d in known if d["earn"]], "target", "origin", "eff", "order")
        dv = best([d for d in known if d["f_div"] == d["f_div"]], "target", "origin", "eff", "order")
        anyd = best(known, "eff", "order")
        row: dict[str, float] = dict.fromkeys(("eps", "bps", "roe", "sales_yoy", "np_yoy", "eq", "prog", "q"),
                                              math.nan)
        if a is not None:
            prev, last_fy = version(code, a["period"] - 12, a["eff"]), version(code, a["fy"] - 12, a["eff"], True)
            p_eps = prev["EPS"] * a["cum"] / prev["cum"] if prev else math.nan
            fy_eps = last_fy["EPS"] * a["cum"] / last_fy["cum"] if last_fy else math.nan
            ttm_eps = a["EPS"] if a["q"] == 4 else a["EPS"] + fy_eps - p_eps
            ttm_np = a["NP"] if a["q"] == 4 else a["NP"] + (last_fy["NP"] if last_fy else math.nan) - (
                prev["NP"] if prev else math.nan)
            row.update(eps=ttm_eps * cum_t / a["cum"], bps=a["BPS"] * cum_t / a["cum"], q=a["q"],
                       roe=pos_ratio(ttm_np, a["Eq"]), np_yoy=growth(a["NP"], prev["NP"] if prev else math.nan),
                       sales_yoy=pos_ratio(a["Sales"], prev["Sales"] if prev else math.nan) - 1.0,
                       eq=a["EqAR"] if a["EqAR"] == a["EqAR"] else pos_ratio(a["Eq"], a["TA"]))
            if e is not None and a["fy"] == e["target"] and a["q"] < 4:
                row["prog"] = pos_ratio(a["OP"], e["f_op"])
        rev = feps = math.nan
        if e is not None:
            before = [d for d in docs[code] if d["earn"] and d["target"] == e["target"]
                      and (d["eff"], d["order"]) < (e["eff"], e["order"])]
            p = best(before, "origin", "eff", "order")  # the forecast in force just before e
            rev = growth(e["f_op"], p["f_op"] if p else math.nan)
            feps = e["f_eps"] * cum_t / e["cum"]
        div = dv["f_div"] * cum_t / dv["cum"] if dv else math.nan
        out.append({
            "st_eps_yield": pos_ratio(row["eps"], close), "st_per": pos_ratio(close, row["eps"]),
            "st_bps_yield": pos_ratio(row["bps"], close), "st_roe": row["roe"], "st_sales_yoy": row["sales_yoy"],
            "st_np_yoy": row["np_yoy"], "st_equity_ratio": row["eq"], "st_progress_op": row["prog"],
            "st_rev_op": rev, "st_fwd_eps_yield": pos_ratio(feps, close), "st_div_yield": pos_ratio(div, close),
            "st_days_since_disclosure": t - anyd["eff"] if anyd else math.nan, "st_quarter": row["q"]})
    return pd.DataFrame(out)


def test_statements_equal_the_naive_reference(synth: tuple) -> None:
    tables, df, got = synth
    want = reference_statements(tables, df)
    assert want["st_eps_yield"].notna().sum() > 100 and want["st_rev_op"].abs().gt(0).any()
    for col in want.columns:
        assert_backend_equal(got["statements"][col], want[col].to_numpy(float), tol="rounding", err_msg=col)


def records(frame: pd.DataFrame, key: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in frame.to_dict("records"):
        out.setdefault(r[key], []).append(r)
    return out


def reference_flows(tables: dict[str, pd.DataFrame], df: pd.DataFrame) -> pd.DataFrame:
    cal = Bdays(tables["calendar"])
    it = tables["investor_types"].sort_values(["PubDate", "StDate", "Section"]).reset_index(drop=True)
    it["eff"] = [cal.after(d) for d in days(it["PubDate"])]
    it["week"], it["order"] = days(it["EnDate"]), np.arange(len(it))
    mi = tables["margin_interest"].sort_values(["Date", "Code"]).reset_index(drop=True)
    mi["day"] = days(mi["Date"])
    mi["eff"] = [cal.after(d, 3) for d in mi["day"]]
    mi["order"] = np.arange(len(mi))
    mi["long_adj"] = [r.LongVol * cum_at(df, r.Code, r.day) for r in mi.itertuples()]
    sr = tables["short_ratio"].sort_values(["Date", "S33"]).reset_index(drop=True)
    sr["day"], sr["order"] = days(sr["Date"]), np.arange(len(sr))
    sr["eff"] = [cal.after(d) for d in sr["day"]]
    ma = tables["margin_alert"].sort_values(["PubDate", "AppDate", "Code"]).reset_index(drop=True)
    ma["app"], ma["order"] = days(ma["AppDate"]), np.arange(len(ma))
    ma["eff"] = [cal.after(d) for d in days(ma["PubDate"])]
    it_by, mi_by, sr_by, ma_by = records(it, "Section"), records(mi, "Code"), records(sr, "S33"), records(ma, "Code")
    adv = df.groupby("Code")["volume"].rolling(20, min_periods=5).mean().reset_index(level=0, drop=True)
    out = []
    for (code, t, mkt, s33), adv_t in zip(df[["Code", "t", "Mkt", "S33"]].itertuples(index=False), adv, strict=True):
        row = dict.fromkeys(("it_frgn_net", "it_days_since", "mi_long_days", "mi_short_long", "mi_long_chg",
                             "ss_ratio", "ma_long_ratio"), math.nan)
        w = best([r for r in it_by.get(SECTION_OF_MARKET.get(mkt, "?"), []) if r["eff"] <= t], "week", "eff", "order")
        if w:
            row.update(it_frgn_net=w["FrgnBal"] / w["FrgnTot"], it_days_since=float(t - w["eff"]))
        m = best([r for r in mi_by.get(code, []) if r["eff"] <= t], "day", "eff", "order")
        if m:
            prev = best([r for r in mi_by[code] if r["day"] < m["day"]], "day", "order")
            row.update(mi_long_days=pos_ratio(m["long_adj"], adv_t),
                       mi_short_long=pos_ratio(m["ShrtVol"], m["LongVol"]),
                       mi_long_chg=pos_ratio(m["long_adj"], prev["long_adj"] if prev else math.nan) - 1)
        x = best([r for r in sr_by.get(s33, []) if r["eff"] <= t], "day", "eff", "order")
        if x:
            short = x["ShrtWithResVa"] + x["ShrtNoResVa"]
            row["ss_ratio"] = short / (short + x["SellExShortVa"])
        a = best([r for r in ma_by.get(code, []) if r["eff"] <= t], "app", "eff", "order")
        active = a is not None and cal.between(int(a["app"]), t) <= 3
        row["ma_active"] = float(active)
        if active:
            row["ma_long_ratio"] = a["LongOutRatio"] / 100
        out.append(row)
    return pd.DataFrame(out)


def test_flows_equal_the_naive_reference(synth: tuple) -> None:
    tables, df, got = synth
    want = reference_flows(tables, df)
    flat = {k: v for cols in got.values() for k, v in cols.items()}
    assert want["ma_active"].sum() > 0 and want["mi_long_days"].notna().sum() > 100
    for col in want.columns:
        assert_backend_equal(flat[col], want[col].to_numpy(float), tol="rounding", err_msg=col)


def test_dividends_equal_the_naive_reference(synth: tuple) -> None:
    tables, df, got = synth
    cal = Bdays(tables["calendar"])
    dv = tables["dividend"].sort_values(["PubDate", "PubTime", "RefNo", "Code"]).reset_index(drop=True)
    dv["eff"] = [cal.disclosed(d, tm) for d, tm in zip(days(dv["PubDate"]), dv["PubTime"], strict=True)]
    dv["ex"], dv["order"] = days(dv["ExDate"]), np.arange(len(dv))
    dv["event"] = dv["CARefNo"].where(dv["CARefNo"].notna() & (dv["CARefNo"] != ""), dv["RefNo"])
    by_code = records(dv, "Code")
    want_days, want_yield = [], []
    for code, t, close, cum_t in df[["Code", "t", "C", "cum"]].itertuples(index=False):
        latest: dict[str, dict] = {}  # each event's latest version known at t
        for r in sorted((r for r in by_code.get(code, []) if r["eff"] <= t), key=lambda r: (r["eff"], r["order"])):
            latest[r["event"]] = r
        live = [r for r in latest.values() if r["StatCode"] != "3" and r["ex"] >= t]
        r = min(live, key=lambda r: (r["ex"], -r["eff"], -r["order"])) if live else None
        want_days.append(float(r["ex"] - t) if r else math.nan)
        want_yield.append(pos_ratio(r["DivRate"] * cum_t / cum_at(df, code, int(r["eff"])), close) if r else math.nan)
    assert np.isfinite(want_days).sum() > 100
    assert_backend_equal(got["dividends"]["dv_days_to_ex"], want_days, tol="exact")
    assert_backend_equal(got["dividends"]["dv_next_yield"], want_yield, tol="rounding")


def test_listing_and_every_group_have_values(synth: tuple) -> None:
    tables, df, got = synth
    master = tables["master"].sort_values("Date")
    last = master.groupby("Code").tail(1).set_index("Code")
    final = df.groupby("Code").tail(1)
    scale = {"TOPIX Core30": 1, "TOPIX Large70": 2, "TOPIX Mid400": 3, "TOPIX Small 1": 4, "TOPIX Small 2": 5}
    want = [scale.get(last.loc[c, "ScaleCat"], 6) for c in final["Code"]]
    assert got["listing"]["lst_scale"][final.index].tolist() == want
    assert set(np.unique(got["listing"]["lst_tier"])) <= {1.0, 2.0, 3.0, 4.0}
    for name, cols in got.items():
        assert tuple(cols) == groups()[name].outputs({})
        for col, values in cols.items():
            assert values.dtype == np.float64 and len(values) == len(df), col
            if name != "earnings":  # one snapshot, taken after the last day: nothing known before it
                assert np.isfinite(values).any(), col


# ----------------------------------------------------------------------------- hand-built cases


def hand_market(codes: tuple[str, ...] = ("13010", "13020"), start: str = "2023-10-02",
                end: str = "2025-01-31") -> dict[str, pd.DataFrame]:
    cal = build_calendar(2023, 2025).frame()
    bdays = cal.loc[cal["HolDiv"].isin(["1", "2"]) & cal["Date"].between(start, end), "Date"]
    bars = pd.DataFrame([(c, d) for c in codes for d in bdays], columns=["Code", "Date"])
    bars[["O", "H", "L", "C"]] = 1000.0
    bars["Vo"], bars["Va"], bars["AdjFactor"] = 1e5, 1e8, 1.0
    bars["UL"] = pd.array(np.zeros(len(bars), dtype=bool), dtype="boolean")
    bars["LL"] = bars["UL"]
    topix = pd.DataFrame({"Date": bdays.to_numpy(), "C": 2000.0})
    master = bars[["Date", "Code"]].assign(S33="3050", Mkt="0111", S17="1", ScaleCat="TOPIX Mid400", Mrgn="2")
    return {"calendar": cal, "bars_daily": bars, "topix": topix, "master": master}


def statement(code: str, date: str, time: str, per: str, period_end: str, fy_end: str, no: str,
              **values: float) -> dict:
    doc = "EarnForecastRevision" if per == "REV" else f"{per}FinancialStatements_Consolidated_JP"
    return {"DiscDate": pd.Timestamp(date), "DiscTime": time, "Code": code, "DiscNo": no, "DocType": doc,
            "CurPerType": "FY" if per == "REV" else per, "CurPerEn": pd.Timestamp(period_end),
            "CurFYEn": pd.Timestamp(fy_end), **values}


def at(df: pd.DataFrame, values: np.ndarray, code: str, date: str) -> float:
    mask = ((df["Code"] == code) & (df["t"] == days([date])[0])).to_numpy()
    assert mask.sum() == 1, (code, date)
    return float(values[mask][0])


def test_corrections_replace_values_only_from_their_own_effective_day(tmp_path: Path) -> None:
    c = "13010"
    base = {"Sales": 1000.0, "OP": 150.0, "EPS": 10.0, "BPS": 200.0, "Eq": 2000.0, "TA": 5000.0}
    fins = pd.DataFrame([
        statement(c, "2023-11-10", "15:00:00", "2Q", "2023-09-30", "2024-03-31", "1", **base, NP=100.0),
        statement(c, "2024-05-10", "14:00:00", "FY", "2024-03-31", "2024-03-31", "2", **base, NP=250.0,
                  NxFOP=380.0),
        # 2024-08-09 (Fri) after the close; 08-12 is a holiday: effective Tuesday 08-13
        statement(c, "2024-08-09", "15:00:00", "1Q", "2024-06-30", "2025-03-31", "3", **base, NP=60.0, FOP=390.0),
        # the last 15:00 close: effective 11-05
        statement(c, "2024-11-01", "15:00:00", "2Q", "2024-09-30", "2025-03-31", "4", **base, NP=120.0, FOP=400.0),
        # a correction of Q1 after Q2: a disclosure (days since resets) that must not replace Q2's values
        statement(c, "2024-11-12", "10:00:00", "1Q", "2024-06-30", "2025-03-31", "5", **base, NP=999.0, FOP=390.0),
        # a correction of Q2 at 15:29, before the new 15:30 close: effective the same day
        statement(c, "2024-11-20", "15:29:00", "2Q", "2024-09-30", "2025-03-31", "6", **base, NP=130.0, FOP=400.0),
        # a forecast revision at 15:30: effective the next day
        statement(c, "2024-11-25", "15:30:00", "REV", "2025-03-31", "2025-03-31", "7", FOP=500.0),
    ])
    tables = hand_market() | {"fins_summary": fins}
    write_tables(tmp_path, tables)
    ctx, df = context(CPU, tmp_path)
    st = enrich(CPU, Manifest.load(tmp_path), ctx.panel, ctx.frame, ["statements"])["statements"]
    yoy, since, rev, q = st["st_np_yoy"], st["st_days_since_disclosure"], st["st_rev_op"], st["st_quarter"]
    assert math.isnan(at(df, yoy, c, "2024-08-09")) and at(df, q, c, "2024-08-09") == 4
    assert at(df, q, c, "2024-08-13") == 1 and at(df, since, c, "2024-08-13") == 0
    assert at(df, q, c, "2024-11-01") == 1 and at(df, q, c, "2024-11-05") == 2
    for day in ("2024-11-05", "2024-11-12", "2024-11-19"):  # (120 - 100) / 100: the Q1 correction is ignored
        assert_backend_equal(at(df, yoy, c, day), 0.2, tol="rounding", err_msg=day)
    assert at(df, since, c, "2024-11-12") == 0 and at(df, since, c, "2024-11-19") == 7
    assert_backend_equal(at(df, yoy, c, "2024-11-20"), 0.3, tol="rounding")  # the Q2 correction, from its own day
    assert_backend_equal(at(df, rev, c, "2024-11-25"), 0.0, tol="rounding")  # the Q2 correction repeats FOP 400
    assert_backend_equal(at(df, rev, c, "2024-11-26"), 0.25, tol="rounding")  # 500 against 400
    assert_backend_equal(at(df, st["st_progress_op"], c, "2024-11-26"), 150 / 500, tol="rounding")
    assert math.isnan(at(df, yoy, "13020", "2024-11-26"))  # no statements for the other code


def test_weekly_rows_cover_the_days_until_the_next_publication(tmp_path: Path) -> None:
    def week(st: str, en: str, pub: str, frgn_bal: float) -> dict:
        return {"PubDate": pd.Timestamp(pub), "StDate": pd.Timestamp(st), "EnDate": pd.Timestamp(en),
                "Section": "TSEPrime", "FrgnBal": frgn_bal, "FrgnTot": 100.0, "TotTot": 200.0}

    it = pd.DataFrame([
        week("2024-10-21", "2024-10-25", "2024-10-31", 1.0),  # Thursday: effective Friday 11-01
        week("2024-10-28", "2024-11-01", "2024-11-04", 2.0),  # dated on a holiday: effective 11-05
        week("2024-10-21", "2024-10-25", "2024-11-06", 3.0),  # a late correction of the older week: ignored
        week("2024-10-28", "2024-11-01", "2024-11-07", 4.0),  # the newer week corrected: from 11-08
    ])
    tables = hand_market() | {"investor_types": it}
    write_tables(tmp_path, tables)
    ctx, df = context(CPU, tmp_path)
    net = enrich(CPU, Manifest.load(tmp_path), ctx.panel, ctx.frame,
                 ["investor_types"])["investor_types"]["it_frgn_net"]
    got = [at(df, net, "13010", d) for d in ("2024-10-31", "2024-11-01", "2024-11-05", "2024-11-06", "2024-11-07",
                                              "2024-11-08", "2024-12-20")]
    assert_backend_equal(got, [np.nan, 0.01, 0.02, 0.02, 0.02, 0.04, 0.04], tol="exact")


def test_switches_auto_skips_true_fails_naming_what_to_fetch(tmp_path: Path) -> None:
    write_tables(tmp_path, hand_market())
    switches = {f: "auto" for f in groups()} | {"listing": True, "dividends": False}
    run, status = select(switches, Manifest.load(tmp_path))
    assert run == ["listing"] and status["dividends"] == "off"
    assert status["statements"] == "skipped: the lake has no fins_summary"
    with pytest.raises(EnrichError,
                       match=r"enrich.statements needs fins_summary.*gpuetl fetch --datasets fins_summary"):
        select(switches | {"statements": True}, Manifest.load(tmp_path))
    assert set(EnrichSettings.__dataclass_fields__) == set(groups())


def test_missing_margin_flag_is_nan_not_zero(backend: Backend, tmp_path: Path) -> None:
    # Mrgn absent (null, as the V1 light plan's master has it) or empty: loanable and margin are unknown
    tables = hand_market()
    master = tables["master"]
    master["Mrgn"] = master["Mrgn"].astype(object)
    master.loc[master["Code"] == "13020", "Mrgn"] = None
    master.loc[(master["Code"] == "13010") & (master["Date"] < "2024-01-04"), "Mrgn"] = ""
    write_tables(tmp_path, tables)
    ctx, df = context(backend, tmp_path)
    got = enrich(backend, Manifest.load(tmp_path), ctx.panel, ctx.frame, ["listing"])["listing"]
    host = (lambda a: backend.xp.asnumpy(a)) if backend.is_gpu else np.asarray
    loanable, margin = host(got["lst_loanable"]), host(got["lst_margin"])
    missing = (df["Code"] == "13020") | ((df["Code"] == "13010") & (df["t"] < days(["2024-01-04"])[0]))
    assert missing.any() and (~missing).any()
    np.testing.assert_array_equal(np.isnan(loanable), missing.to_numpy())
    np.testing.assert_array_equal(np.isnan(margin), missing.to_numpy())
    assert np.all(loanable[~missing.to_numpy()] == 1.0) and np.all(margin[~missing.to_numpy()] == 1.0)
