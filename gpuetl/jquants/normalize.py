"""Wire records (V1 or V2, any encoding) -> the lake's typed Arrow table.

The API writes the same value many ways (API-NOTES §3.5 gotcha 3): numbers as JSON numbers or as
strings, missing as null, "", "-" or "*", flags as "1"/"0" or "true"/"false", nested objects for
PubReason / FS. This module reads all of them into one canonical schema (`schema.arrow_schema`): V2
names whichever version served the rows, absent keys (Premium-only fields below Premium) as null
columns, unknown extra keys ignored (logged once at debug), codes always strings.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from gpuetl.jquants.schema import ARROW_TYPES, arrow_schema, canonical_json
from gpuetl.jquants.spec import DatasetSpec, Field, Kind

log = logging.getLogger(__name__)

NULL_TOKENS = frozenset({"", "-", "*"})
_FLAGS: dict[Any, bool] = {"1": True, "0": False, "true": True, "false": False, "True": True, "False": False,
                           "TRUE": True, "FALSE": False, 1: True, 0: False}
_logged_unknown: set[tuple[str, str]] = set()
_logged_bad: set[tuple[str, str]] = set()


def to_table(
    ds: DatasetSpec, records: Sequence[Mapping[str, Any]], extra: Mapping[str, pa.Array] | None = None
) -> pa.Table:
    """Records of `ds` -> a table in `arrow_schema(ds)` (plus `extra` columns, e.g. SnapshotDate)."""
    present: set[str] = set()
    for rec in records:
        present.update(rec)
    known = {f.name for f in ds.fields} | {f.v1 for f in ds.fields if f.v1}
    for key in present - known:
        if (ds.name, key) not in _logged_unknown:
            _logged_unknown.add((ds.name, key))
            log.debug("%s: ignoring unknown field %r", ds.name, key)
    arrays: list[pa.Array] = []
    for f in ds.fields:
        src = f.name if f.name in present else f.v1 if f.v1 and f.v1 in present else None
        if src is None:
            arrays.append(pa.nulls(len(records), ARROW_TYPES[f.kind]))
        else:
            arrays.append(column(ds.name, f, [r.get(src) for r in records]))
    extra = dict(extra or {})
    fields = tuple(pa.field(name, arr.type) for name, arr in extra.items())
    return pa.Table.from_arrays(arrays + list(extra.values()), schema=arrow_schema(ds, fields))


def column(dataset: str, f: Field, values: list[Any]) -> pa.Array:
    """One field's wire values -> an Arrow array of its canonical kind."""
    if f.kind == "float":
        try:  # fast path: JSON numbers and nulls
            return pa.array(values, type=pa.float64())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    convert = _CONVERTERS[f.kind]
    out = []
    for v in values:
        try:
            out.append(convert(v))
        except (ValueError, TypeError):
            _bad(dataset, f, v)
            out.append(None)
    return pa.array(out, type=ARROW_TYPES[f.kind])


def _bad(dataset: str, f: Field, value: Any) -> None:
    if (dataset, f.name) not in _logged_bad:
        _logged_bad.add((dataset, f.name))
        log.warning("%s.%s: unreadable %s value %r stored as null (further ones not logged)",
                    dataset, f.name, f.kind, value)


def to_float(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise TypeError("a boolean in a numeric field")
    if isinstance(v, int | float):
        return float(v)
    s = str(v).strip()
    if s in NULL_TOKENS:
        return None
    return float(s.replace(",", ""))


def to_date(v: Any) -> dt.date | None:
    if v is None:
        return None
    if isinstance(v, dt.date):
        return v
    s = str(v).strip()
    if s in NULL_TOKENS:
        return None
    return dt.date.fromisoformat(s[:10] if len(s) > 10 and s[10] in "T " else s)  # also YYYYMMDD


def to_flag(v: Any) -> bool | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        v = v.strip()
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    try:
        return _FLAGS[v]
    except KeyError:
        raise ValueError(f"not a flag: {v!r}") from None


def to_text(v: Any) -> str | None:
    """str / code: numbers become their text (codes never become ints), "" is kept."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, dict | list):
        return to_json(v)
    return str(v)


def to_time(v: Any) -> str | None:
    t = to_text(v)
    return None if t is None or t.strip() in NULL_TOKENS else t.strip()


def to_json(v: Any) -> str | None:
    """Objects (PubReason, FS) -> the schema's canonical JSON text, so equal objects give equal text."""
    if isinstance(v, str) and v.strip() in NULL_TOKENS:
        return None
    return canonical_json(v)


_CONVERTERS: dict[Kind, Callable[[Any], Any]] = {
    "float": to_float, "date": to_date, "flag": to_flag, "time": to_time, "code": to_text, "str": to_text,
    "json": to_json,
}

