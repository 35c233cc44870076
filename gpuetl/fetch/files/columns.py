"""Which file column is which lake field: V2 short names, V1 long names, common variants, `--columns NEW=OLD`.

Tools write J-Quants data under several spellings: the V2 API's short names (`O`, `Vo`, `AdjFactor`), the V1
API's long ones (`Open`, `Volume`, `AdjustmentFactor`: the official client's V1 DataFrames, bulk CSVs), and a
few others (`TradingValue`, Kaggle JPX's `SecuritiesCode`). A column matches a field exactly first, then ignoring
case and punctuation (`adj_factor`, `OPEN`); explicit `--columns` mappings win over both. A column that matches no
field is unknown: it is reported, never imported; two columns that name one field are refused (which one is
right is not for the import to guess).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from gpuetl.jquants.spec import DatasetSpec

# Spellings neither API uses that common tools write, by the V2 field they mean (used where the dataset has it).
ALIASES: Mapping[str, str] = {
    "SecuritiesCode": "Code",  # Kaggle JPX (stock_prices.csv, stock_list.csv)
    "LocalCode": "Code",  # V1 statements' code column, also written for prices by some tools
    "TradingValue": "Va",
    "Turnover": "Va",
    "33SectorCode": "S33",  # Kaggle JPX stock_list.csv
    "17SectorCode": "S17",
    "33SectorName": "S33Nm",
    "17SectorName": "S17Nm",
    "HolidayDivision": "HolDiv",
}


class ColumnError(ValueError):
    """Columns that cannot be mapped (a usage error: exit 2)."""


def _loose(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _names(ds: DatasetSpec) -> tuple[dict[str, str], dict[str, str]]:
    """Exact spellings -> field, and loose spellings -> field (a loose spelling two fields share is left out)."""
    exact: dict[str, str] = {}
    for f in ds.fields:
        exact.setdefault(f.name, f.name)
    for f in ds.fields:
        if f.v1:
            exact.setdefault(f.v1, f.name)
    for alias, field in ALIASES.items():
        if field in ds.columns:
            exact.setdefault(alias, field)
    loose: dict[str, str] = {}
    clash: set[str] = set()
    for spelling, field in exact.items():
        key = _loose(spelling)
        if loose.get(key, field) != field:
            clash.add(key)
        loose.setdefault(key, field)
    return exact, {k: v for k, v in loose.items() if k not in clash}


def field_name(ds: DatasetSpec, name: str) -> str | None:
    """The lake field `name` spells for `ds` (V2, V1 or a variant), or None."""
    exact, loose = _names(ds)
    return exact.get(name) or loose.get(_loose(name))


def parse_mappings(ds: DatasetSpec, values: Sequence[str]) -> dict[str, str]:
    """`--columns NEW=OLD` values -> {file column: field}; NEW may be a field's V2 or V1 name."""
    out: dict[str, str] = {}
    taken: dict[str, str] = {}
    for value in values:
        new, sep, old = value.partition("=")
        new, old = new.strip(), old.strip()
        if not sep or not new or not old:
            raise ColumnError(f"--columns {value!r} is not NEW=OLD (e.g. --columns C=close_price)")
        field = field_name(ds, new)
        if field is None:
            raise ColumnError(f"--columns {value}: {ds.name} has no field {new!r}; fields: {', '.join(ds.columns)}")
        if field in taken and taken[field] != old:
            raise ColumnError(f"--columns maps both {taken[field]!r} and {old!r} to {field}: keep one")
        if old in out and out[old] != field:
            raise ColumnError(f"--columns maps {old!r} to both {out[old]} and {field}: keep one")
        out[old], taken[field] = field, old
    return out


def resolve(ds: DatasetSpec, columns: Iterable[str], explicit: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """A file's columns -> ({file column: field}, unknown columns). `explicit` ({file column: field}) wins; a field
    two columns name is a ColumnError naming both."""
    exact, loose = _names(ds)
    cols = list(columns)
    mapping = {c: explicit[c] for c in cols if c in explicit}
    claimed = {f: c for c, f in mapping.items()}
    unknown: list[str] = []
    for col in cols:
        if col in mapping:
            continue
        field = exact.get(col) or loose.get(_loose(col))
        if field is None:
            unknown.append(col)
            continue
        if field in claimed:
            if claimed[field] in explicit:  # --columns chose another column for it: this one is not imported
                unknown.append(col)
                continue
            raise ColumnError(f"columns {claimed[field]!r} and {col!r} both name {ds.name}.{field}: choose one with "
                              f"--columns {field}={claimed[field]}")
        mapping[col], claimed[field] = field, col
    return mapping, unknown
