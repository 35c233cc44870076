"""The market the server serves, and which of its rows answer a query.

The server needs only an object with `.tables` (dataset name -> canonical pandas frame with exactly
`spec.get(name).columns`, gpuetl.jquants.schema form), so it serves gpuetl.synth's market, a test's
hand-made one, or any other. Business days come from the `calendar` table (HolDiv "1"/"2").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import pandas as pd

from gpuetl.fake.encode import WireTable
from gpuetl.fake.params import Query
from gpuetl.fake.plans import Window
from gpuetl.jquants import spec

# Query parameter -> the column it filters, where the catalogue's date_field / Code do not say it.
_PARAM_COLUMN = {
    "hol_div": "HolDiv", "s33": "S33", "section": "Section", "category": "ProdCat", "contract_flag": "CCMFlag",
    "disc_date": "DiscDate", "disc_date_from": "DiscDate", "disc_date_to": "DiscDate", "calc_date": "CalcDate",
}
_RANGE_LOW = {"from", "disc_date_from"}
_RANGE_HIGH = {"to", "disc_date_to"}
TRADING_HOLDIV = ("1", "2")  # TSE trading day (API-NOTES §5.1)


class Market(Protocol):
    @property
    def tables(self) -> Mapping[str, pd.DataFrame]: ...


@dataclasses.dataclass(frozen=True)
class Selection:
    rows: np.ndarray  # positions in the table, in response order
    overrides: Mapping[str, Any]  # V2 field -> value written on every row (master's as-of Date)


def _day(d: dt.date) -> np.datetime64:
    return np.datetime64(d.isoformat(), "D")


def _date(d: np.datetime64) -> dt.date:
    return dt.date.fromisoformat(str(d.astype("datetime64[D]")))


class Table:
    """One dataset's frame, sorted the way the API answers (by date, then code), with lookup arrays."""

    def __init__(self, ds: spec.DatasetSpec, frame: pd.DataFrame) -> None:
        missing = [c for c in ds.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"market table {ds.name!r} lacks columns {missing}")
        keys = [c for c in (ds.date_field, "Code") if c and c in frame.columns]
        if keys:
            frame = frame.sort_values(keys, kind="stable")
        self.dataset = ds
        self.frame = frame.reset_index(drop=True)
        self._arrays: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.frame)

    def array(self, column: str) -> np.ndarray:
        """Dates as datetime64[D], everything else as objects (for vectorised comparisons)."""
        if column not in self._arrays:
            col = self.frame[column]
            if self.dataset.field(column).kind == "date":
                self._arrays[column] = pd.to_datetime(col).to_numpy().astype(  # host-ok: the fake server is host-only
                    "datetime64[D]")
            else:
                self._arrays[column] = np.asarray(col.astype(object).where(col.notna(), None), dtype=object)
        return self._arrays[column]

    @functools.cached_property
    def wire(self) -> WireTable:
        return WireTable(self.dataset, self.frame)


class MarketIndex:
    """Row selection over a market: the API's filter semantics per parameter, windows, master as-of."""

    def __init__(self, market: Market) -> None:
        self._frames = market.tables  # may build each frame on first access (gpuetl.synth does): stay lazy
        self._names = frozenset(n for n in market.tables if n in spec.datasets())
        self._tables: dict[str, Table] = {}
        self._daily_master: bool | None = None
        self.business_days = self._business_days()

    def table(self, name: str) -> Table | None:
        if name not in self._tables and name in self._names:
            self._tables[name] = Table(spec.get(name), self._frames[name])
        return self._tables.get(name)

    def _business_days(self) -> np.ndarray:
        cal = self.table("calendar")
        if cal is not None and len(cal):
            return np.sort(cal.array("Date")[np.isin(cal.array("HolDiv"), TRADING_HOLDIV)])
        dates = [np.array([], dtype="datetime64[D]")]
        for name, ds in self._datasets():
            t = self.table(name)
            if ds.date_field and t is not None:
                dates.append(t.array(ds.date_field))
        flat = np.concatenate(dates)
        flat = flat[~np.isnat(flat)]
        if not len(flat):
            return flat
        days = np.arange(flat.min(), flat.max() + 1, dtype="datetime64[D]")
        return days[np.is_busday(days)]

    def _datasets(self) -> list[tuple[str, spec.DatasetSpec]]:
        return [(n, spec.get(n)) for n in sorted(self._names)]

    def last_date(self) -> dt.date:
        """The market's last trading date (daily bars, else any dated table)."""
        names = ["bars_daily"] if "bars_daily" in self._names else [n for n, _ in self._datasets()]
        best: np.datetime64 | None = None
        for name in names:
            ds = spec.get(name)
            t = self.table(name)
            if name == "calendar" or not ds.date_field or t is None or not len(t):
                continue
            arr = t.array(ds.date_field)
            arr = arr[~np.isnat(arr)]
            if len(arr) and (best is None or arr.max() > best):
                best = arr.max()
        return _date(best) if best is not None else dt.date.today()

    def next_business_day(self, d: dt.date, *, inclusive: bool = True) -> dt.date:
        bd = self.business_days
        i = int(np.searchsorted(bd, _day(d), side="left" if inclusive else "right"))
        if i < len(bd):
            return _date(bd[i])
        return _date(np.busday_offset(_day(d), 0 if inclusive else 1, roll="forward"))

    def previous_business_day(self, d: dt.date) -> dt.date:
        bd = self.business_days
        i = int(np.searchsorted(bd, _day(d), side="right")) - 1
        return _date(bd[i]) if i >= 0 else _date(np.busday_offset(_day(d), 0, roll="backward"))

    def default_today(self) -> dt.date:
        """The business day after the market's last date: the day a fresh client would fetch on."""
        return self.next_business_day(self.last_date(), inclusive=False)

    # ------------------------------------------------------------------------------------------ selection

    def select(self, q: Query, window: Window, today: dt.date) -> tuple[Table | None, Selection]:
        t = self.table(q.dataset.name)
        if t is None or not len(t):
            return t, Selection(np.array([], dtype=np.int64), {})
        if q.dataset.name == "master":
            return t, self._master(t, q, window, today)
        ds = q.dataset
        mask = np.ones(len(t), dtype=bool)
        for name, value in q.params.items():
            column = self._column(ds, name)
            arr = t.array(column)
            if name == "code":
                mask &= (arr == value) | (arr == value + "0") if len(value) == 4 else arr == value
            elif ds.field(column).kind == "date":
                day = _day(dt.date.fromisoformat(value))
                mask &= arr >= day if name in _RANGE_LOW else arr <= day if name in _RANGE_HIGH else arr == day
            else:
                mask &= arr == value
        if ds.date_field:  # queries without explicit dates are clipped to the plan's window
            mask &= self._in_window(t.array(ds.date_field), window)
        return t, Selection(np.flatnonzero(mask), {})

    @staticmethod
    def _column(ds: spec.DatasetSpec, param: str) -> str:
        if param in ("date", "from", "to"):
            assert ds.date_field is not None, ds.name
            return ds.date_field
        if param == "code":  # options: `code` names the underlying security
            return "UndSSO" if "UndSSO" in ds.columns else "Code"
        return _PARAM_COLUMN[param]

    @staticmethod
    def _in_window(arr: np.ndarray, window: Window) -> np.ndarray:
        ok = arr >= _day(window.start)
        return ok & (arr <= _day(window.end)) if window.end else ok

    def _master(self, t: Table, q: Query, window: Window, today: dt.date) -> Selection:
        """Listed issues as of a day: a holiday means the next business day; no date means today."""
        asked = q.date("date")
        day = min(self.next_business_day(asked or today), today)
        if asked is None and window.end is not None and day > window.end:
            day = self.previous_business_day(window.end)
        dates = t.array("Date")
        codes = t.array("Code")
        upto = dates <= _day(day)
        if not upto.any():
            return Selection(np.array([], dtype=np.int64), {})
        if self._master_is_daily(t):  # one full snapshot per business day: take the latest one
            rows = np.flatnonzero(dates == dates[upto].max())
        else:  # rows only where something changed: the latest row of each code
            rows = np.flatnonzero(upto)
            last = ~pd.Series(codes[rows]).duplicated(keep="last").to_numpy()  # host-ok: the fake server is host-only
            rows = rows[last]
            rows = rows[np.argsort(codes[rows].astype(str), kind="stable")]
        if "code" in q.params:
            code = q.params["code"]
            rows = rows[(codes[rows] == code) | (codes[rows] == code + "0")] if len(code) == 4 \
                else rows[codes[rows] == code]
        return Selection(rows, {"Date": day.isoformat()})

    def _master_is_daily(self, t: Table) -> bool:
        if self._daily_master is None:
            dates = np.unique(t.array("Date"))
            bd = self.business_days
            span = bd[(bd >= dates.min()) & (bd <= dates.max())]
            self._daily_master = len(dates) > 1 and bool(np.isin(span, dates).all())
        return self._daily_master
