"""Small lakes for dataset tests: hand-made bars/TOPIX/master/calendar, the synthetic market's every dataset,
rows placed at the edges of a day T's close, and a perturbation of everything published after T."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as pads

from gpuetl.backend import Backend
from gpuetl.dataset.codes import BAR_COLUMNS, build_panel
from gpuetl.enrich.context import Context
from gpuetl.jquants import schema, spec
from gpuetl.lake import Lake, Unit
from gpuetl.lake.canonical import SNAPSHOT_COLUMN
from gpuetl.lake.manifest import Manifest
from gpuetl.lake.reader import read_raw
from gpuetl.synth import MarketConfig, build_market
from tests.support.panels import random_walk_frame

CONFIG = "configs/dataset/default.yaml"
SMALL = ["features=[{op: returns, params: {horizons: [1, 5]}}, {op: sma, params: {windows: [5, 20],"
         " slope_days: 5, crosses: [[5, 20]]}}, {op: ema, params: {windows: [10], slope_days: 2, crosses: []}},"
         " {op: realized_vol, params: {windows: [5]}}, {op: market, params: {horizons: [1], vol_window: 5,"
         " trend_window: 10}}, {op: beta, params: {windows: [20]}}, {op: sector_relative, params: {horizons: [1]}},"
         " {op: calendar}, {op: maturity, params: {windows: [20]}}, {op: range_location}]"]
ENRICH_DATASETS = ("calendar", "master", "bars_daily", "topix", "fins_summary", "investor_types", "margin_interest",
                   "margin_alert", "short_ratio", "earnings_calendar", "dividend")
T = pd.Timestamp("2024-11-05")  # the first 15:30 close: the day the edge rows sit at


def full_frame(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Give a partial frame every column of the dataset's canonical schema (missing -> null)."""
    ds = spec.get(name)
    out = {}
    for f in ds.fields:
        if f.name in df:
            out[f.name] = df[f.name]
        elif f.kind == "float":
            out[f.name] = np.nan
        elif f.kind == "flag":
            out[f.name] = pd.array([pd.NA] * len(df), dtype="boolean")
        else:
            out[f.name] = None
    return pd.DataFrame(out, index=df.index)[list(ds.columns)]


def trading_calendar(lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
    """Weekdays open (HolDiv "1"), weekends closed ("0"), published 90 days past `hi` as J-Quants' is."""
    days = pd.date_range(lo, hi + pd.Timedelta(days=90))
    return pd.DataFrame({"Date": days, "HolDiv": np.where(days.day_of_week < 5, "1", "0")})


def write_lake(root: Path, bars: pd.DataFrame, topix: pd.DataFrame, master: pd.DataFrame,
               calendar: pd.DataFrame | None = None) -> None:
    lake = Lake(root)
    lo, hi = bars["Date"].min(), bars["Date"].max()
    calendar = trading_calendar(lo, hi) if calendar is None else calendar
    for name, df in (("bars_daily", bars), ("topix", topix), ("master", master), ("calendar", calendar)):
        ds = spec.get(name)
        lake.write(ds, Unit.span(df["Date"].min().date(), df["Date"].max().date()),
                   schema.to_table(ds, full_frame(name, df)))
    lake.flush()


def raw_market(seed: int = 0, days: int = 160) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    walk = random_walk_frame(seed=seed, lengths=(days, days, days, days, days * 3 // 4), gaps=0.03, splits=True)
    walk["Code"] = walk["code"].map(lambda c: f"{1300 + c}0" if c != 4 else "130A0")
    walk["Date"] = walk["date"]
    walk["UL"] = pd.array(np.zeros(len(walk), dtype=bool), dtype="boolean")
    walk["LL"] = walk["UL"]
    dates = np.sort(walk["Date"].unique())
    steps = np.random.default_rng(seed + 100).normal(0.0003, 0.01, len(dates))
    topix = pd.DataFrame({"Date": dates, "C": 2000 * np.exp(np.cumsum(steps))})
    master = walk[["Date", "Code"]].copy()
    master["S33"] = master["Code"].map({"13000": "0050", "13010": "0050", "13020": "3050", "13030": "3050",
                                        "130A0": "3650"})
    master["Mkt"] = np.where(master["Code"] == "13030", "0112", "0111")
    return walk, topix, master


def write_tables(root: Path, tables: dict[str, pd.DataFrame]) -> None:
    """A lake holding each frame as one range unit (snapshot units for `latest` datasets, by SnapshotDate)."""
    lake = Lake(root)
    for name, df in tables.items():
        ds = spec.get(name)
        if ds.fetch == "latest":
            for snap, part in df.groupby(SNAPSHOT_COLUMN, sort=True):
                table = schema.to_table(ds, full_frame(name, part.reset_index(drop=True)))
                day = pd.Timestamp(snap).date()
                lake.write(ds, Unit.snapshot(day), table.append_column(
                    SNAPSHOT_COLUMN, schema.pa.array([day] * len(part), schema.pa.date32())))
            continue
        col = ds.date_field or "Date"
        dates = pd.to_datetime(df[col]).dropna()
        lo, hi = (dates.min().date(), dates.max().date()) if len(dates) else (dt.date(2024, 1, 1),) * 2
        lake.write(ds, Unit.span(lo, hi), schema.to_table(ds, full_frame(name, df)))
    lake.flush()


def synthetic_tables(codes: int = 12, start: str = "2023-10-02", end: str = "2025-03-31", seed: int = 5,
                     split: bool = True) -> dict[str, pd.DataFrame]:
    """Every dataset enrichment reads, from the synthetic market, with a 1:2 split planted in one code."""
    m = build_market(MarketConfig(codes=codes, start=start, end=end, seed=seed))
    tables = {name: m.table(name).copy() for name in ENRICH_DATASETS}
    tables["earnings_calendar"][SNAPSHOT_COLUMN] = pd.Timestamp(end) + pd.Timedelta(days=1)
    # corrected filings (the synthetic market has few at this size): restated values 30 or 120 days later,
    # i.e. before or after the next quarter's filing; and a deleted dividend notice
    fins = tables["fins_summary"]
    fs = fins.index[fins["DocType"].str.contains("FinancialStatements")]
    fixes = []
    for i, lag in zip(fs[5::9], (30, 120) * 10, strict=False):
        row = fins.loc[[i]].copy()
        row["DiscDate"] += pd.Timedelta(days=lag)
        row["DiscTime"], row["DiscNo"] = "10:00:00", row["DiscNo"] + "9"
        row[["NP", "EPS", "BPS"]] *= 1.05
        row[["FOP", "FEPS", "FDivAnn", "NxFOP"]] *= 1.1
        fixes.append(row)
    tables["fins_summary"] = pd.concat([fins, *fixes], ignore_index=True)
    div = tables["dividend"]
    gone = div.iloc[[3]].copy()
    gone["StatCode"], gone["CARefNo"], gone["RefNo"] = "3", gone["RefNo"], gone["RefNo"] + "X"
    gone["PubDate"] += pd.Timedelta(days=5)
    tables["dividend"] = pd.concat([div, gone], ignore_index=True)
    if split:
        bars = tables["bars_daily"]
        code = sorted(bars["Code"].unique())[1]
        at = pd.Timestamp("2024-09-02")
        after = (bars["Code"] == code) & (bars["Date"] >= at)
        bars.loc[after, ["O", "H", "L", "C"]] /= 2.0
        bars.loc[after, "Vo"] *= 2.0
        bars.loc[(bars["Code"] == code) & (bars["Date"] == at), "AdjFactor"] = 0.5
    return tables


def days(values: Any) -> np.ndarray:
    return pd.to_datetime(pd.Series(values)).to_numpy().astype("datetime64[D]").astype(np.int64)


class Bdays:
    def __init__(self, calendar: pd.DataFrame) -> None:
        self.days = np.sort(days(calendar.loc[calendar["HolDiv"].isin(["1", "2"]), "Date"]))
        self.set = set(self.days.tolist())

    def after(self, d: int, n: int = 1) -> int:
        i = int(np.searchsorted(self.days, d, side="right")) + n - 1
        return int(self.days[i]) if i < len(self.days) else 2**40

    def disclosed(self, d: int, time: str) -> int:
        close = "15:30:00" if d >= days(["2024-11-05"])[0] else "15:00:00"
        ok = isinstance(time, str) and len(time) >= 5
        time = time if not ok or len(time) == 8 else time + ":00"
        return d if ok and d in self.set and time < close else self.after(d)

    def between(self, a: int, b: int) -> int:
        return int(np.searchsorted(self.days, b, side="right") - np.searchsorted(self.days, a, side="right"))


def read_dataset(out: Path) -> pd.DataFrame:
    df = pads.dataset(out / "data", format="parquet", partitioning="hive").to_table().to_pandas()
    return df.sort_values(["Code", "Date"]).reset_index(drop=True)


def perturb(tables: dict[str, pd.DataFrame], seed: int = 3) -> dict[str, pd.DataFrame]:
    """Every raw value published after T's close changed (by independent rules: each dataset's own dates,
    the close at 15:30 on T, margin interest published two business days after its date)."""
    rng = np.random.default_rng(seed)
    out = {k: v.copy() for k, v in tables.items()}
    cal = Bdays(tables["calendar"])
    t = int(days([T])[0])

    def scale(name: str, rows: pd.Series, cols: list[str]) -> None:
        df = out[name]
        assert rows.any(), name
        for c in cols:
            df.loc[rows, c] = df.loc[rows, c] * rng.uniform(0.5, 2.0, int(rows.sum()))

    bars = out["bars_daily"]
    later = bars["Date"] > T
    scale("bars_daily", later, ["O", "H", "L", "C", "Vo", "Va"])
    bars.loc[later, "AdjFactor"] = rng.choice([1.0, 0.5, 3.0], int(later.sum()))
    scale("topix", out["topix"]["Date"] > T, ["C"])
    master = out["master"]
    master.loc[master["Date"] > T, ["S33", "S17", "ScaleCat", "Mrgn", "Mkt"]] = ["9050", "10", "-", "3", "0113"]
    fins = out["fins_summary"]
    after_close = (fins["DiscDate"] > T) | ((fins["DiscDate"] == T) & (fins["DiscTime"] >= "15:30:00"))
    assert ((fins["DiscDate"] == T) & (fins["DiscTime"] == "15:30:00")).any()
    scale("fins_summary", after_close, [c for c in fins.columns if fins[c].dtype == float])
    it = out["investor_types"]
    scale("investor_types", it["PubDate"] >= T, [c for c in it.columns if it[c].dtype == float])
    mi = out["margin_interest"]
    published = pd.Series([cal.after(d, 3) > t for d in days(mi["Date"])], index=mi.index)
    scale("margin_interest", published, ["ShrtVol", "LongVol", "ShrtStdVol", "LongStdVol", "ShrtNegVol", "LongNegVol"])
    ma = out["margin_alert"]
    scale("margin_alert", ma["PubDate"] >= T, ["ShrtOut", "LongOut", "ShrtOutRatio", "LongOutRatio", "SLRatio"])
    ma.loc[ma["PubDate"] >= T, "PubReason"] = '{"Restricted":"1","RestrictedByJSF":"1"}'
    scale("short_ratio", out["short_ratio"]["Date"] >= T, ["SellExShortVa", "ShrtWithResVa", "ShrtNoResVa"])
    dv = out["dividend"]
    notice = (dv["PubDate"] > T) | ((dv["PubDate"] == T) & (dv["PubTime"] >= "15:30"))
    scale("dividend", notice, ["DivRate"])
    dv.loc[notice, "CommSpecCode"] = "2"
    ec = out["earnings_calendar"]
    assert (ec[SNAPSHOT_COLUMN] >= T).all()  # a snapshot taken on T is effective the next business day
    ec["Date"] = ec["Date"] + pd.Timedelta(days=3)
    return out


def edge_tables(start: str = "2024-01-04", end: str = "2025-03-31", codes: int = 10,
                seed: int = 11) -> dict[str, pd.DataFrame]:
    """The synthetic market plus rows placed right at T's edges, so that a rule off by one session shows:
    filings on T at 15:29 (in T) and 15:30 (after T's close) for a newer period, an investor-type
    correction published on T, margin interest dated two business days before T (published on T after
    the close), a dividend notice at 15:30 on T for an ex-date two days later, an earnings-calendar
    snapshot taken on T."""
    tabs = synthetic_tables(codes=codes, start=start, end=end, seed=seed)
    fins = tabs["fins_summary"]
    fs = fins[fins["DocType"].str.contains("FinancialStatements") & (fins["DiscDate"] < T - pd.Timedelta(days=20))]
    extra = fs.groupby("Code").tail(1).iloc[:2].copy()
    extra["DiscDate"], extra["DiscTime"] = T, ["15:29:00", "15:30:00"]
    extra["CurPerEn"] = extra["CurPerEn"] + pd.offsets.MonthEnd(2)
    extra["DiscNo"] = extra["DiscNo"] + "7"
    tabs["fins_summary"] = pd.concat([fins, extra], ignore_index=True)
    it = tabs["investor_types"]
    fix = it[it["EnDate"] == it.loc[it["PubDate"] < T, "EnDate"].max()].copy()
    fix["PubDate"] = T
    tabs["investor_types"] = pd.concat([it, fix], ignore_index=True)
    mi = tabs["margin_interest"]
    thu = mi[mi["Date"] == pd.Timestamp("2024-10-25")].copy()
    thu["Date"] = pd.Timestamp("2024-10-31")  # + 3 business days (11-01, 11-05, 11-06): effective after T
    tabs["margin_interest"] = pd.concat([mi, thu], ignore_index=True)
    dv = tabs["dividend"]
    notice = dv.iloc[[0]].copy()
    notice[["PubDate", "PubTime", "ExDate", "StatCode", "DivRate"]] = [T, "15:30", T + pd.Timedelta(days=2), "1", 40.0]
    notice["RefNo"] = notice["CARefNo"] = "20241105T0001"
    tabs["dividend"] = pd.concat([dv, notice], ignore_index=True)
    ec = tabs["earnings_calendar"]
    tabs["earnings_calendar"] = pd.concat([ec.assign(**{SNAPSHOT_COLUMN: T}), ec], ignore_index=True)
    return tabs


def build_context(backend: Backend, root: Path) -> Context:
    """The build's panel and enrichment context over the lake at `root`, read as a code part reads it (bars, TOPIX,
    master)."""
    manifest = Manifest.load(root)
    bars = read_raw(backend, manifest, "bars_daily", BAR_COLUMNS)
    topix = read_raw(backend, manifest, "topix", ["Date", "C"]).sort_values("Date")
    master = read_raw(backend, manifest, "master", ["Date", "Code", "S33", "Mkt"])
    frame, panel = build_panel(backend, bars, topix, master)
    return Context.create(backend, manifest, panel, frame)
