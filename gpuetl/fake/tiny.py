"""A tiny hand-made market: every catalogue dataset, a few codes over a few weeks, in canonical form.

Small enough to reason about row by row in tests (of this server and of clients), yet it carries the
awkward cases the real API has: a no-trade day (null prices), a preferred share beside its common stock
("86975" vs "86970"), an alphanumeric code ("130A0", listed mid-period), holidays and an OSE
holiday-trading day in the calendar, undecided dividends ("-"), ETF margin ratios ("*"), missing
previous-day changes ("-"), absent derivative sessions (""), blank statement fields ("").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from gpuetl.jquants import schema, spec

CODES = ("13010", "72030", "86970", "86975", "130A0")
LATE_LISTED = "130A0"  # listed from the 5th business day
NO_TRADE = ("72030", 2)  # (code, business-day index) with no trade: null prices
# 2024 TSE holidays (beyond the weekend); 2024-02-12 had OSE holiday trading (HolDiv "3").
HOLIDAYS_2024 = ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-08", "2024-02-12", "2024-02-23",
                 "2024-03-20", "2024-04-29", "2024-05-03", "2024-05-06", "2024-07-15", "2024-08-12",
                 "2024-09-16", "2024-09-23", "2024-10-14", "2024-11-04", "2024-12-31")
HOLIDAY_TRADING = ("2024-02-12",)


@dataclasses.dataclass(frozen=True)
class TinyMarket:
    tables: dict[str, pd.DataFrame]
    business_days: tuple[dt.date, ...]
    codes: tuple[str, ...]


def calendar_frame(first: dt.date, last: dt.date) -> pd.DataFrame:
    days = pd.date_range(first, last, freq="D")
    hol = {dt.date.fromisoformat(d) for d in HOLIDAYS_2024}
    trading = {dt.date.fromisoformat(d) for d in HOLIDAY_TRADING}

    def div(d: dt.date) -> str:
        if d in trading:
            return "3"
        if d.weekday() >= 5 or d in hol or (d.month, d.day) in ((1, 1), (1, 2), (1, 3), (12, 31)):
            return "0"
        return "1"

    return pd.DataFrame({"Date": days, "HolDiv": [div(d.date()) for d in days]})


def tiny_market(start: str = "2024-01-04", end: str = "2024-02-29", codes: Sequence[str] = CODES,
                seed: int = 0) -> TinyMarket:
    """Every dataset over the business days in [start, end]; the calendar spans the whole years."""
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    cal = calendar_frame(dt.date(first.year, 1, 1), dt.date(last.year, 12, 31))
    cal_days = cal["Date"].dt.date
    bd = [d for d, h in zip(cal_days, cal["HolDiv"], strict=True) if h in ("1", "2") and first <= d <= last]
    rng = np.random.default_rng(seed)
    gen = _Gen(bd, tuple(codes), rng)
    tables = {"calendar": cal}
    for name, ds in spec.datasets().items():
        if name != "calendar":
            tables[name] = gen.frame(ds, getattr(gen, name)())
    canonical = {n: schema.to_frame(spec.get(n), schema.to_table(spec.get(n), df)) for n, df in tables.items()}
    return TinyMarket(canonical, tuple(bd), tuple(codes))


Rows = list[dict[str, Any]]


class _Gen:
    """Rows per dataset (the key columns and the awkward values); `frame` fills the rest by kind."""

    def __init__(self, bd: list[dt.date], codes: tuple[str, ...], rng: np.random.Generator) -> None:
        self.bd, self.codes, self.rng = bd, codes, rng

    def listed(self, i: int) -> tuple[str, ...]:
        return tuple(c for c in self.codes if c != LATE_LISTED or i >= 4)

    def frame(self, ds: spec.DatasetSpec, rows: Rows) -> pd.DataFrame:
        n = len(rows)
        cols: dict[str, list[Any]] = {}
        for f in ds.fields:
            given = [r.get(f.name, _UNSET) for r in rows]
            default = _DEFAULTS[f.kind](f.name, n, self.rng, rows, ds)
            cols[f.name] = [default[i] if v is _UNSET else v for i, v in enumerate(given)]
        return pd.DataFrame(cols, columns=list(ds.columns))

    def each_day(self, keys: Callable[[int], Sequence[dict[str, Any]]], every: int = 1) -> Rows:
        return [{"Date": d, **k} for i, d in enumerate(self.bd) if i % every == 0 for k in keys(i)]

    def master(self) -> Rows:
        return self.each_day(lambda i: [{"Code": c, "CoName": f"テスト{c}", "CoNameEn": f"Test {c}", "S17": "16",
                                         "S33": "7200", "Mkt": "0111", "MktNm": "プライム", "Mrgn": "1",
                                         "MrgnNm": "信用", "ScaleCat": "TOPIX Large70", "ProdCat": "011"}
                                        for c in self.listed(i)])

    def bars_daily(self) -> Rows:
        rows = self.each_day(lambda i: [{"Code": c, "UL": False, "LL": False} for c in self.listed(i)])
        code, day = NO_TRADE
        for r in rows:
            if r["Code"] == code and r["Date"] == self.bd[day]:
                r.update({k: np.nan for k in ("O", "H", "L", "C", "Vo", "Va", "AdjO", "AdjH", "AdjL", "AdjC", "AdjVo")})
            r["AdjFactor"] = 1.0
        return rows

    def _disclosures(self) -> Rows:
        return [{"DiscDate": self.bd[(3 + 7 * i + 20 * k) % len(self.bd)], "Code": c, "DiscTime": "15:00:00",
                 "DiscNo": f"2024{i:02d}{k:02d}000001", "DocType": "3QFinancialStatements_Consolidated_IFRS"}
                for i, c in enumerate(self.codes) for k in range(2)]

    def fins_summary(self) -> Rows:
        return [{**r, "OdP": np.nan, "DEPS": np.nan, "MatChgSub": False, "ChgAcEst": True, "SigChgInC": None,
                 "EPS": 66.76, "CurPerType": "3Q"} for r in self._disclosures()]

    def fins_details(self) -> Rows:
        fs = '{"Goodwill (IFRS)": "67374000000", "Type of current period, DEI": "Q3"}'
        return [{**r, "FS": fs} for r in self._disclosures()]

    def dividend(self) -> Rows:
        return [{"PubDate": self.bd[5 + i], "Code": c, "PubTime": "09:21", "RefNo": f"20240{i}1B0000{i}",
                 "StatCode": "1", "IFCode": "2", "FRCode": "2", "IFTerm": "2024-03",
                 "DivRate": np.nan if i == 0 else 25.0, "PayDate": pd.NaT if i == 0 else self.bd[-1],
                 "DistAmt": np.nan, "CommSpecCode": "0"} for i, c in enumerate(self.codes)]

    def earnings_calendar(self) -> Rows:
        return [{"Date": pd.NaT if i == 0 else self.bd[-1], "Code": c, "CoName": f"テスト{c}",
                 "FY": "3月31日", "SectorNm": "情報・通信業", "FQ": "第3四半期", "Section": "プライム"}
                for i, c in enumerate(self.codes)]

    def investor_types(self) -> Rows:
        return [{"PubDate": self.bd[i + 8], "StDate": self.bd[i], "EnDate": self.bd[i + 4], "Section": s}
                for i in range(0, len(self.bd) - 8, 5) for s in ("TSEPrime", "TSEStandard")]

    def margin_interest(self) -> Rows:
        return [{"Date": d, "Code": c, "IssType": "2"} for d in self.bd if d.weekday() == 4 for c in self.codes]

    def margin_alert(self) -> Rows:
        reason = ('{"Restricted": "0", "DailyPublication": "1", "Monitoring": "0", "RestrictedByJSF": "0", '
                  '"PrecautionByJSF": "1", "UnclearOrSecOnAlert": "0"}')
        rows = [{"PubDate": self.bd[i], "AppDate": self.bd[i - 1], "Code": c, "PubReason": reason,
                 "TSEMrgnRegCls": "001"} for i in range(1, len(self.bd), 3) for c in self.codes[:2]]
        for k, r in enumerate(rows):
            if k < 2:
                r.update({n: np.nan for n in ("ShrtOutChg", "LongOutChg", "ShrtNegOutChg", "ShrtStdOutChg",
                                              "LongNegOutChg", "LongStdOutChg")})
            if r["Code"] == "13010":  # an ETF: no listed-share ratio
                r.update({"ShrtOutRatio": np.nan, "LongOutRatio": np.nan})
        return rows

    def short_ratio(self) -> Rows:
        return self.each_day(lambda i: [{"S33": s} for s in ("0050", "3050")])

    def short_sale_report(self) -> Rows:
        return [{"DiscDate": self.bd[i], "CalcDate": self.bd[i - 1], "Code": c, "SSName": "個人", "SSAddr": "",
                 "DICName": "", "DICAddr": "", "FundName": "", "Notes": "",
                 "PrevRptDate": pd.NaT if i == 1 else self.bd[i - 2], "PrevRptRatio": np.nan if i == 1 else 0.0051}
                for i in range(1, len(self.bd), 4) for c in self.codes[:2]]

    def breakdown(self) -> Rows:
        return self.each_day(lambda i: [{"Code": c} for c in self.listed(i)])

    def topix(self) -> Rows:
        return self.each_day(lambda i: [{}])

    def indices(self) -> Rows:
        return self.each_day(lambda i: [{"Code": c} for c in ("0000", "0028")])

    def _derivatives(self, contracts: Sequence[dict[str, Any]], absent: Sequence[str]) -> Rows:
        rows = self.each_day(lambda i: [dict(c) for c in contracts])
        for k, r in enumerate(rows):
            r.update({"EmMrgnTrgDiv": "002", "CM": "2024-03", "LTD": self.bd[-1], "SQD": self.bd[-1]})
            if k < len(contracts):  # first trading day: no night session
                r.update({n: np.nan for n in ("EO", "EH", "EL", "EC")})
            r.update({n: np.nan for n in absent})
        return rows

    def options_225(self) -> Rows:
        return self._derivatives([{"Code": "130060018", "PCDiv": "1"}, {"Code": "140060018", "PCDiv": "2"}], ())

    def futures(self) -> Rows:
        contracts = [{"Code": "169090005", "ProdCat": "TOPIXF", "CCMFlag": "1"},
                     {"Code": "169120005", "ProdCat": "TOPIXF", "CCMFlag": "0"}]
        return self._derivatives(contracts, ("MO", "MH", "ML", "MC"))

    def options(self) -> Rows:
        contracts = [{"Code": "140014505", "ProdCat": "TOPIXE", "UndSSO": "-", "PCDiv": "1", "CCMFlag": "1"},
                     {"Code": "1A0012345", "ProdCat": "EQOP", "UndSSO": "72030", "PCDiv": "2", "CCMFlag": "1"}]
        return self._derivatives(contracts, ("MO", "MH", "ML", "MC"))


_UNSET = object()


def _date_default(name: str, n: int, rng: np.random.Generator, rows: Rows, ds: spec.DatasetSpec) -> list[Any]:
    """Another date column: the row's own date (e.g. CalcDate, BoardDate, period bounds)."""
    own = ds.date_field or "Date"
    return [r.get(own, r.get("Date")) for r in rows]


_DEFAULTS: dict[str, Callable[[str, int, np.random.Generator, Rows, spec.DatasetSpec], list[Any]]] = {
    "float": lambda name, n, rng, rows, ds: list(np.round(rng.uniform(100.0, 3000.0, n), 1)),
    "flag": lambda name, n, rng, rows, ds: [False] * n,
    "date": _date_default,
    "time": lambda name, n, rng, rows, ds: ["15:00"] * n,
    "code": lambda name, n, rng, rows, ds: ["0000"] * n,
    "str": lambda name, n, rng, rows, ds: ["1"] * n,
    "json": lambda name, n, rng, rows, ds: ["{}"] * n,
}
