"""Canonical rows -> the JSON the API writes, per endpoint encoding, version and plan.

Each endpoint writes missing values its own way (API-NOTES §3.5 gotcha 3): bars JSON null, statements
"" with every value a string, dividends "-" for undecided, margin alerts "-"/"*", derivatives "" for absent
sessions. Values are the same in V1 and V2 (only the keys differ), so each column is converted once per
dataset and records are assembled per request with the version's keys and the plan's omissions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from gpuetl.fake.params import Version
from gpuetl.jquants.spec import DatasetSpec, Field, Plan

# Missing-value tokens that differ from the encoding's default, per dataset and field.
_MISSING: Mapping[str, Mapping[str, str]] = {
    "dividend": {"DivRate": "-", "PayDate": "-"},  # "-" = undecided
    "margin_alert": {  # "-": not published the previous day; "*": ratio not computed (ETFs)
        "ShrtOutChg": "-", "LongOutChg": "-", "ShrtNegOutChg": "-", "ShrtStdOutChg": "-",
        "LongNegOutChg": "-", "LongStdOutChg": "-", "ShrtOutRatio": "*", "LongOutRatio": "*",
    },
}
# A missing number on a "mixed" endpoint: "" unless listed (margin alerts keep null elsewhere).
_MIXED_FLOAT: Mapping[str, str | None] = {"margin_alert": None}
# V1 omits these below Standard (API-NOTES §3.5 gotcha 4); V2 serves them on every plan.
_V1_STANDARD_ONLY: Mapping[str, frozenset[str]] = {"master": frozenset({"Mrgn", "MrgnNm"})}
# Keys the real V2 API sends that the canonical schema does not keep (daily bars since 2026-08; the official
# Python client ignores them too), sent unless FakeOptions.extra_keys is off, for testing clients' tolerance.
EXTRA_KEYS: Mapping[str, Mapping[str, Any]] = {
    "bars_daily": {"ExRT": "", "MktCap": None},
}


def missing_token(ds: DatasetSpec, field: Field) -> Any:
    """What the endpoint writes for a missing value of `field`."""
    override = _MISSING.get(ds.name, {}).get(field.name)
    if override is not None:
        return override
    if field.kind == "float" and ds.encoding != "strings":
        return None if ds.encoding == "json" else _MIXED_FLOAT.get(ds.name, "")
    return ""


def _num_text(v: float) -> str:
    """A number as fins/summary writes it: "100529000000", "66.76"."""
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def wire_column(ds: DatasetSpec, field: Field, col: pd.Series) -> list[Any]:
    """One canonical column -> its wire values (version independent)."""
    missing = missing_token(ds, field)
    strings = ds.encoding == "strings"
    if field.kind == "float":
        values = col.to_numpy(dtype="float64", na_value=np.nan).tolist()
        fmt = _num_text if strings else float
        return [fmt(v) if math.isfinite(v) else missing for v in values]
    if field.kind == "date":
        days = pd.to_datetime(col).to_numpy().astype("datetime64[D]")  # host-ok: the fake server is host-only
        return [missing if t == "NaT" else t for t in np.datetime_as_string(days, unit="D").tolist()]
    if field.kind == "flag":
        on, off = ("true", "false") if strings else ("1", "0")
        return [missing if pd.isna(v) else (on if v else off) for v in col.astype(object).tolist()]
    if field.kind == "json":  # PubReason, FS: objects on the wire, JSON text in the canonical frame
        return [json.loads(v) if isinstance(v, str) and v else {} for v in col.astype(object).tolist()]
    return [missing if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            for v in col.astype(object).tolist()]


class WireTable:
    """A dataset's rows in wire form, column by column."""

    def __init__(self, ds: DatasetSpec, frame: pd.DataFrame) -> None:
        self.dataset = ds
        self.columns = {f.name: wire_column(ds, f, frame[f.name]) for f in ds.fields}

    def fields(self, version: Version, plan: Plan) -> list[Field]:
        """The fields a response carries: Premium-only keys, V1's Standard-only keys and (in V1) V2-only keys
        are omitted."""
        drop = _V1_STANDARD_ONLY.get(self.dataset.name, frozenset()) if version == "v1" else frozenset()
        return [f for f in self.dataset.fields
                if not (f.premium_only and plan != "premium")
                and not (f.name in drop and plan in ("free", "light"))
                and not (version == "v1" and f.v1 is None)]

    def records(self, rows: Sequence[int], version: Version, plan: Plan, *, extra_keys: bool = True,
                overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The JSON objects for `rows`, keyed by the version's names; `overrides` replace V2-named values."""
        fields = self.fields(version, plan)
        keys = [f.v1 if version == "v1" and f.v1 else f.name for f in fields]  # fields() left V1 no V2-only one
        cols = [self.columns[f.name] for f in fields]
        tail: dict[str, Any] = {}
        if overrides:
            by_name = {f.name: k for f, k in zip(fields, keys, strict=True)}
            tail.update({by_name[n]: v for n, v in overrides.items() if n in by_name})
        if extra_keys and version == "v2":
            tail.update(EXTRA_KEYS.get(self.dataset.name, {}))
        out = []
        for i in rows:
            rec = {k: c[i] for k, c in zip(keys, cols, strict=True)}
            rec.update(tail)
            out.append(rec)
        return out
