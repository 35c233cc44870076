"""One file's columns -> the lake's typed fields, with every value that could not be taken as it is counted.

Each field is converted by its canonical kind (`spec.Field.kind`), the way `jquants.normalize` reads the API's
wire values, vectorised over Arrow arrays:
- numbers: text with optional thousands separators, or any numeric column; "", "-", "*", "nan", "NA", "null" are
  missing. Anything else is **unparseable: kept as null, counted per field** (as a fetch stores an unreadable wire
  value). A price (open/high/low/close of the day, a session or adjusted) of **0 is stored as null and counted**
  (`zero_price`): J-Quants writes a day without trades as null, and the build reads a non-positive price as
  missing anyway.
- dates: YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD, with or without a time after them, or date/timestamp columns;
  an impossible date (2023-02-30) is unparseable.
- flags: 1/0, true/false (any case), or booleans.
- codes: `Code` as 5 characters, a 4-character one with J-Quants' trailing 0 (`7203` -> `72030`); other text as
  written (a quoted empty CSV field stays "", an unquoted one is null).
The row's keys (its date and, where the dataset has one, its code) must read: a row without them cannot be
placed in a unit, so **the file is refused** (`RowError`, exit 1) naming it, the data row and the value.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from gpuetl.jquants.schema import ARROW_TYPES, canonical_json
from gpuetl.jquants.spec import DatasetSpec, Field

MISSING = ["", "-", "*", "nan", "NaN", "NAN", "NA", "N/A", "null", "NULL", "None"]
WIRE_MISSING = ["", "-", "*"]  # what the API writes for a missing time
_FLOAT = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_PRICE = re.compile(r"^[MA]?(Adj)?[OHLC]$")  # O/H/L/C of the day, a session (M*, A*), adjusted (Adj*)
_CODE = r"^[0-9A-Za-z]{5}$"
FILE_CODE = re.compile(r"^[0-9][0-9A-Za-z]{3,4}$")  # a per-code file's name: 7203, 72030, 130A0


class RowError(ValueError):
    """A row the import cannot place or keep (a data error: exit 1); nothing was written."""


@dataclasses.dataclass
class Counts:
    """What one file (or the whole import) held that could not be taken as it is."""

    rows: int = 0
    kinds: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    unparseable: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)  # per field

    def add(self, other: Counts) -> None:
        self.rows += other.rows
        self.kinds.update(other.kinds)
        self.unparseable.update(other.unparseable)


def keys(ds: DatasetSpec) -> list[str]:
    """The fields every row must have: its date and, where the dataset has one, its code."""
    return [k for k in (ds.date_field, "Code" if "Code" in ds.columns else None) if k]


def code_from_name(stem: str) -> str | None:
    """The code a per-code file's name carries (`7203.csv` -> `72030`), or None."""
    if not FILE_CODE.match(stem):
        return None
    return stem + "0" if len(stem) == 4 else stem


def convert(ds: DatasetSpec, path: Path, table: pa.Table, mapping: dict[str, str],
            code: str | None) -> tuple[pa.Table, Counts]:
    """`table`'s mapped columns ({file column: field}) as the lake's typed fields (only those present; `code` fills
    `Code` for a per-code file), and the counts of what was not taken as it is."""
    counts = Counts(rows=table.num_rows)
    fields = {f.name: f for f in ds.fields}
    arrays: dict[str, pa.Array] = {}
    bad_rows = None
    for col, name in mapping.items():
        raw = table.column(col).combine_chunks()
        typed, bad = _convert(fields[name], raw)
        if name in keys(ds):
            _require(ds, path, name, raw, typed)
        elif bad is not None:
            n = pc.sum(bad).as_py() or 0
            if n:
                counts.unparseable[name] += n
                bad_rows = bad if bad_rows is None else pc.or_(bad_rows, bad)
        arrays[name] = typed
    if bad_rows is not None:
        counts.kinds["unparseable"] += pc.sum(bad_rows).as_py() or 0
    if code is not None and "Code" not in arrays:
        arrays["Code"] = pa.array([code] * table.num_rows, pa.string())
    zero = None
    for name in [n for n in arrays if _PRICE.match(n) and fields[n].kind == "float"]:
        is_zero = pc.fill_null(pc.equal(arrays[name], 0.0), False)
        arrays[name] = pc.if_else(is_zero, pa.scalar(None, pa.float64()), arrays[name])
        zero = is_zero if zero is None else pc.or_(zero, is_zero)
    if zero is not None and (n := pc.sum(zero).as_py()):
        counts.kinds["zero_price"] += n
    order = [f.name for f in ds.fields if f.name in arrays]
    return pa.table({n: arrays[n] for n in order}), counts


def _require(ds: DatasetSpec, path: Path, name: str, raw: pa.Array, typed: pa.Array) -> None:
    """A RowError at the first row whose key did not read."""
    if not typed.null_count:
        return
    i = pc.index(pc.is_null(typed), True).as_py()
    value = raw[i].as_py()
    what = "is empty" if value is None or str(value).strip() in MISSING else f"{value!r} is not a {_what(name)}"
    raise RowError(f"{path}: data row {i + 1}: {name} {what}; every {ds.name} row needs its {' and '.join(keys(ds))} "
                   "(fix or remove the row)")


def _what(name: str) -> str:
    return "code (4 or 5 letters or digits)" if name == "Code" else "date (YYYY-MM-DD or YYYYMMDD)"


# ----------------------------------------------------------------------------------------------- by kind


def _convert(f: Field, arr: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """One column as the field's kind, and where a value did not parse (stored as null; None: none can fail)."""
    if f.kind == "float":
        out = _floats(arr)
    elif f.kind == "date":
        out = _dates(arr)
    elif f.kind == "flag":
        out = _flags(arr)
    elif f.name == "Code":
        out = _codes(arr)
    elif f.kind == "time":
        text = pc.utf8_trim_whitespace(_text(arr))
        out = pc.if_else(pc.is_in(text, pa.array(WIRE_MISSING)), pa.scalar(None, pa.string()), text)
    elif f.kind == "json":
        out = pa.array([canonical_json(v) for v in _text(arr).to_pylist()], pa.string())
    else:
        return _text(arr).cast(ARROW_TYPES[f.kind]), None
    out = out.cast(ARROW_TYPES[f.kind])
    return out, pc.and_(pc.is_null(out), pc.invert(_missing_mask(arr)))


def _missing_mask(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Values that say "missing" (null, or a missing-value token in text)."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        nan = pc.is_nan(arr) if pa.types.is_floating(arr.type) else None
        null = pc.is_null(arr)
        return null if nan is None else pc.or_(null, pc.fill_null(nan, True))
    return pc.or_(pc.is_null(arr), pc.fill_null(pc.is_in(pc.utf8_trim_whitespace(arr), pa.array(MISSING)), True))


def _text(arr: pa.Array) -> pa.Array:
    """Any column as text; integral floats without ".0" (a code or YYYYMMDD read as a float)."""
    if pa.types.is_string(arr.type):
        return arr
    if pa.types.is_floating(arr.type):
        whole = pc.fill_null(pc.equal(pc.floor(arr), arr), False)
        if pc.all(pc.or_(whole, pc.is_null(arr))).as_py():
            clean = pc.if_else(pc.fill_null(pc.is_nan(arr), False), pa.scalar(None, arr.type), arr)
            return pc.cast(pc.cast(clean, pa.int64()), pa.string())
    return pc.cast(arr, pa.string())


def _floats(arr: pa.Array) -> pa.Array:
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        out = pc.cast(arr, pa.float64())
        return pc.if_else(pc.fill_null(pc.is_nan(out), False), pa.scalar(None, pa.float64()), out)
    text = pc.replace_substring(pc.utf8_trim_whitespace(_text(arr)), ",", "")
    ok = pc.fill_null(pc.match_substring_regex(text, _FLOAT), False)
    return pc.cast(pc.if_else(ok, text, pa.scalar(None, pa.string())), pa.float64())


def _dates(arr: pa.Array) -> pa.Array:
    if pa.types.is_date32(arr.type):
        return arr
    if pa.types.is_date64(arr.type) or pa.types.is_timestamp(arr.type):
        return pc.cast(arr, pa.date32())
    text = pc.utf8_trim_whitespace(_text(arr))
    text = pc.replace_substring_regex(text, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
    text = pc.replace_substring_regex(text, r"^(\d{4})/(\d{2})/(\d{2})", r"\1-\2-\3")
    text = pc.replace_substring_regex(text, r"^(\d{4}-\d{2}-\d{2})[T ].*$", r"\1")
    ok = pc.fill_null(pc.match_substring_regex(text, r"^\d{4}-\d{2}-\d{2}$"), False)
    stamps = pc.strptime(pc.if_else(ok, text, pa.scalar(None, pa.string())), format="%Y-%m-%d", unit="s",
                         error_is_null=True)
    real = pc.fill_null(pc.equal(pc.strftime(stamps, format="%Y-%m-%d"), text), False)  # 2023-02-30 rolls over
    return pc.cast(pc.if_else(real, stamps, pa.scalar(None, stamps.type)), pa.date32())


def _flags(arr: pa.Array) -> pa.Array:
    if pa.types.is_boolean(arr.type):
        return arr
    text = pc.utf8_lower(pc.utf8_trim_whitespace(_text(arr)))
    yes = pc.fill_null(pc.is_in(text, pa.array(["1", "true"])), False)
    no = pc.fill_null(pc.is_in(text, pa.array(["0", "false"])), False)
    return pc.if_else(yes, True, pc.if_else(no, False, pa.scalar(None, pa.bool_())))


def _codes(arr: pa.Array) -> pa.Array:
    text = pc.utf8_trim_whitespace(_text(arr))
    padded = pc.if_else(pc.fill_null(pc.equal(pc.utf8_length(text), 4), False),
                        pc.binary_join_element_wise(text, "0", ""), text)
    ok = pc.fill_null(pc.match_substring_regex(padded, _CODE), False)
    return pc.if_else(ok, padded, pa.scalar(None, pa.string()))
