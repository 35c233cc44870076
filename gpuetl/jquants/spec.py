"""The J-Quants dataset catalogue: one source of truth for the client, the fake server and the lake.

Built from the official V2 spec shipped as data (`data/endpoints.json`, from J-Quants' j-quants-doc-mcp),
the V1 names of each V2 field (`data/v1_names.json`, from J-Quants' published V1/V2 field tables) and the
facts below that the spec does not carry: V1 paths and list keys, how to pull a whole history (`fetch`), which
field dates a row in the lake (`date_field`), each field's canonical kind, and how each endpoint encodes missing
values on the wire.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

DATA = Path(__file__).resolve().parent / "data"

Plan = Literal["free", "light", "standard", "premium"]
PLANS: tuple[Plan, ...] = ("free", "light", "standard", "premium")
REQUESTS_PER_MINUTE: Mapping[Plan, int] = {"free": 5, "light": 60, "standard": 120, "premium": 500}
# Years of history each plan covers (the Free plan also lags 12 weeks; see API-NOTES §3.2).
HISTORY_YEARS: Mapping[Plan, int] = {"free": 2, "light": 5, "standard": 10, "premium": 20}
FREE_PLAN_DELAY_WEEKS = 12

# Canonical kinds: how a field is typed in the lake, whatever the wire encoding was.
#   date  -> date32 ("YYYY-MM-DD"; "" / "-" -> null)      time -> string "HH:MM[:SS]"
#   code  -> string, 5 chars for issues (4 for indices/sectors, 9 for derivatives)
#   str   -> string ("" kept as "")                         float -> float64 ("", "-", "*" -> null)
#   flag  -> bool ("1"/"0", "true"/"false"; "" -> null)     json  -> string holding a JSON object
Kind = Literal["date", "time", "code", "str", "float", "flag", "json"]

# How an endpoint writes values on the wire (API-NOTES §3.5 gotcha 3).
#   json:    numbers as JSON numbers, missing as null
#   strings: every value a JSON string, missing as ""  (fins/summary, fins/details)
#   mixed:   numbers as numbers, with "-" / "*" / "" standing in for missing in some numeric fields
Encoding = Literal["json", "strings", "mixed"]

# How to pull a full history of a dataset (the client's plan for a date range).
#   date:    one query per business day with `date=` (all issues at once; never per code)
#   range:   `from`/`to` queries over the range, split into chunks
#   latest:  no date parameter exists; each fetch stores a snapshot stamped with the fetch date
#   code:    only per-code queries exist
Fetch = Literal["date", "range", "latest", "code"]

_DATE_NAMES = {
    "Date", "DiscDate", "PubDate", "StDate", "EnDate", "AppDate", "CalcDate", "PrevRptDate", "BoardDate",
    "RecDate", "ExDate", "ActRecDate", "PayDate", "CurPerSt", "CurPerEn", "CurFYSt", "CurFYEn", "NxtFYSt",
    "NxtFYEn", "LTD", "SQD",
}
_TIME_NAMES = {"DiscTime", "PubTime", "Time"}
_CODE_NAMES = {"Code", "S33", "S17"}
_FLAG_NAMES = {"UL", "LL", "MUL", "MLL", "AUL", "ALL"}


@dataclasses.dataclass(frozen=True)
class Field:
    name: str  # V2 name (the canonical column name)
    v1: str | None  # V1 name; None for a field only V2 serves
    kind: Kind
    premium_only: bool = False  # omitted (not null) from responses below Premium


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One J-Quants dataset as the catalogue describes it: its endpoints, fields, plans and how it is fetched."""

    name: str  # short name used by the lake and the CLI
    path: str  # V2 path
    v1_path: str | None
    v1_key: str | None  # V1 envelope list key
    fields: tuple[Field, ...]
    params: tuple[str, ...]  # accepted query parameters (V2 spelling), pagination_key included
    patterns: tuple[frozenset[str], ...]  # valid parameter combinations (empty set = no parameters)
    plans: tuple[Plan, ...]
    since: str  # first date with data (YYYY-MM-DD)
    paginated: bool
    fetch: Fetch
    date_param: str | None  # the query parameter that selects one day (fetch == "date")
    date_field: str | None  # the row's own date, used to partition the lake and check windows
    encoding: Encoding
    calendar: Literal["equity", "derivatives"] = "equity"  # which business days `fetch: date` walks
    dense: bool = False  # rows on every open day: an empty answer for one is "not there yet", fetched again
    empty_days: frozenset[str] = frozenset()  # open days a dense dataset has no rows on (no trading): final, no hole

    def has_rows_on(self, day: str) -> bool:
        """Whether the API has rows of this dense dataset on open day `day` (YYYY-MM-DD)."""
        return self.dense and day not in self.empty_days

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}; fields: {', '.join(self.columns)}")

    def v1_to_v2(self) -> dict[str, str]:
        return {f.v1: f.name for f in self.fields if f.v1}

    def v2_to_v1_params(self) -> dict[str, str]:
        """V2 query parameter -> V1 spelling (API-NOTES §1.4); identical where absent."""
        return {k: v for k, v in _V1_PARAMS.items() if k in self.params}

    def available_on(self, plan: Plan) -> bool:
        return plan in self.plans


_V1_PARAMS = {
    "hol_div": "holidaydivision", "s33": "sector33code", "disc_date": "disclosed_date",
    "disc_date_from": "disclosed_date_from", "disc_date_to": "disclosed_date_to", "calc_date": "calculated_date",
}

# name, V2 path, V1 path, V1 key, fetch, date_param, date_field, since, encoding, calendar
_FACTS: tuple[tuple[str, str, str | None, str | None, Fetch, str | None, str | None, str, Encoding, str], ...] = (
    ("calendar", "/markets/calendar", "/markets/trading_calendar", "trading_calendar", "range", None, "Date",
     "2008-01-01", "json", "equity"),
    ("master", "/equities/master", "/listed/info", "info", "date", "date", "Date", "2008-05-07", "json", "equity"),
    ("bars_daily", "/equities/bars/daily", "/prices/daily_quotes", "daily_quotes", "date", "date", "Date",
     "2008-05-07", "json", "equity"),
    ("fins_summary", "/fins/summary", "/fins/statements", "statements", "date", "date", "DiscDate",
     "2008-07-07", "strings", "equity"),
    ("fins_details", "/fins/details", "/fins/fs_details", "fs_details", "date", "date", "DiscDate",
     "2009-01-13", "strings", "equity"),
    ("dividend", "/fins/dividend", "/fins/dividend", "dividend", "date", "date", "PubDate", "2013-02-20",
     "mixed", "equity"),
    ("earnings_calendar", "/equities/earnings-calendar", "/fins/announcement", "announcement", "latest", None,
     None, "2008-01-01", "json", "equity"),
    ("investor_types", "/equities/investor-types", "/markets/trades_spec", "trades_spec", "range", None,
     "PubDate", "2008-01-16", "json", "equity"),
    ("margin_interest", "/markets/margin-interest", "/markets/weekly_margin_interest", "weekly_margin_interest",
     "date", "date", "Date", "2012-02-10", "json", "equity"),
    ("margin_alert", "/markets/margin-alert", "/markets/daily_margin_interest", "daily_margin_interest", "date",
     "date", "PubDate", "2008-05-08", "mixed", "equity"),
    ("short_ratio", "/markets/short-ratio", "/markets/short_selling", "short_selling", "date", "date", "Date",
     "2008-11-05", "json", "equity"),
    ("short_sale_report", "/markets/short-sale-report", "/markets/short_selling_positions",
     "short_selling_positions", "date", "disc_date", "DiscDate", "2013-11-07", "mixed", "equity"),
    ("breakdown", "/markets/breakdown", "/markets/breakdown", "breakdown", "date", "date", "Date", "2015-04-01",
     "json", "equity"),
    ("topix", "/indices/bars/daily/topix", "/indices/topix", "topix", "range", None, "Date", "2008-05-07",
     "json", "equity"),
    ("indices", "/indices/bars/daily", "/indices", "indices", "date", "date", "Date", "2008-05-07", "json",
     "equity"),
    ("options_225", "/derivatives/bars/daily/options/225", "/option/index_option", "index_option", "date", "date",
     "Date", "2008-05-07", "mixed", "derivatives"),
    ("futures", "/derivatives/bars/daily/futures", "/derivatives/futures", "futures", "date", "date", "Date",
     "2008-05-07", "mixed", "derivatives"),
    ("options", "/derivatives/bars/daily/options", "/derivatives/options", "options", "date", "date", "Date",
     "2008-05-07", "mixed", "derivatives"),
)

# Datasets with rows on every TSE business day (the calendar: on every day). Derivatives are left out: on an
# OSE holiday-trading day (HolDiv "3") not every product trades, so an empty answer there can be final.
_DENSE = frozenset({"calendar", "master", "bars_daily", "topix", "indices", "short_ratio", "breakdown"})
# Open days without trading: the 2020-10-01 arrowhead outage halted the TSE all day. The calendar, master, daily
# bars (null prices), TOPIX and the indices (the previous close) still have rows; the short-selling and trading
# breakdown data have none (API-NOTES: "No data for 2020-10-01").
_NO_TRADING = frozenset({"2020-10-01"})
_EMPTY_ON_NO_TRADING = frozenset({"short_ratio", "breakdown"})

# Fields the official spec does not list but the API serves: (V2 name, V1 name or None if V1 lacks it, type).
# SigChgInC since 2024-07-22 (API-NOTES §2.8); ShEq/NCShEq/ROE/NCROE since 2026-08-03 (the J-Quants release
# note; jquants-api-client 2.8.0's FIN_SUMMARY_COLUMNS_V2); ProdCat in master (OBSERVED 2026, API-NOTES §2.2;
# EQ_MASTER_COLUMNS_V2).
_EXTRA_FIELDS: dict[str, tuple[tuple[str, str | None, str], ...]] = {
    "/fins/summary": (("SigChgInC", "SignificantChangesInTheScopeOfConsolidation", "Boolean"),
                      ("ShEq", None, "Number"), ("NCShEq", None, "Number"), ("ROE", None, "Number"),
                      ("NCROE", None, "Number")),
    "/equities/master": (("ProdCat", None, "String"),),
}
# Spec fields typed "String" that hold numbers (dividend amounts are "number or string" on the wire).
_NUMERIC_STRINGS = {"DistAmt", "RetEarn", "DeemDiv", "DeemCapGains", "NetAssetDecRatio", "CommDivRate",
                    "SpecDivRate", "ShrtOutRatio", "LongOutRatio"}


def _kind(name: str, spec_type: str) -> Kind:
    if name in _DATE_NAMES:
        return "date"
    if name in _TIME_NAMES:
        return "time"
    if name in _CODE_NAMES:
        return "code"
    if name in _FLAG_NAMES or spec_type == "Boolean":
        return "flag"
    if spec_type in ("Map", "Object"):
        return "json"
    if spec_type == "Number" or name in _NUMERIC_STRINGS:
        return "float"
    return "str"


def _premium_only(path: str, name: str) -> bool:
    """Morning (M*) and afternoon (A*) session fields of daily bars: Premium only, omitted otherwise."""
    return path == "/equities/bars/daily" and name[:1] in "MA" and not name.startswith("Adj")


@functools.cache
def _raw_endpoints() -> dict[str, dict[str, Any]]:
    with open(DATA / "endpoints.json", encoding="utf-8") as fh:
        return {e["path"]: e for e in json.load(fh)["endpoints"]}


@functools.cache
def reference_data() -> dict[str, Any]:
    """The official code tables (sectors, markets, index codes, holiday divisions, ...)."""
    with open(DATA / "reference_data.json", encoding="utf-8") as fh:
        return json.load(fh)["reference_data"]


@functools.cache
def datasets() -> dict[str, DatasetSpec]:
    """Every dataset gpuetl can fetch, by short name, in dependency order (calendar first)."""
    with open(DATA / "v1_names.json", encoding="utf-8") as fh:
        v1_names: dict[str, dict[str, str]] = json.load(fh)
    raw = _raw_endpoints()
    out: dict[str, DatasetSpec] = {}
    for name, path, v1_path, v1_key, fetch, date_param, date_field, since, encoding, calendar in _FACTS:
        e = raw[path]
        spec_fields = [(f["name"], f["type"]) for f in e["response"]["fields"]]
        spec_fields += [(n, t) for n, _v1, t in _EXTRA_FIELDS.get(path, ())]
        names_v1: dict[str, str | None] = {**v1_names.get(path, {}),
                                           **{n: v1 for n, v1, _t in _EXTRA_FIELDS.get(path, ())}}
        fields = tuple(Field(n, names_v1.get(n, n), _kind(n, t), premium_only=_premium_only(path, n))
                       for n, t in spec_fields)
        pag = e.get("pagination") or {}
        out[name] = DatasetSpec(
            name=name, path=path, v1_path=v1_path, v1_key=v1_key, fields=fields,
            params=tuple(p["name"] for p in e["parameters"]),
            patterns=tuple(frozenset(p["params"]) for p in e.get("valid_request_patterns") or []) or (frozenset(),),
            plans=tuple(p.lower() for p in e["plan"]),
            since=since, paginated=bool(pag.get("supported")), fetch=fetch, date_param=date_param,
            date_field=date_field, encoding=encoding, calendar=calendar,  # type: ignore[arg-type]
            dense=name in _DENSE, empty_days=_NO_TRADING if name in _EMPTY_ON_NO_TRADING else frozenset(),
        )
    return out


def get(name_or_path: str) -> DatasetSpec:
    """A dataset by short name ("bars_daily") or V2 path ("/equities/bars/daily"); a miss lists the names."""
    all_ = datasets()
    if name_or_path in all_:
        return all_[name_or_path]
    for d in all_.values():
        if name_or_path in (d.path, d.path.lstrip("/"), d.v1_path):
            return d
    raise KeyError(f"unknown dataset {name_or_path!r}; known: {', '.join(all_)}")


def by_path(path: str, version: Literal["v1", "v2"] = "v2") -> DatasetSpec | None:
    for d in datasets().values():
        if (d.path if version == "v2" else d.v1_path) == path:
            return d
    return None
