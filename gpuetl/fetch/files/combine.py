"""All files' rows as one table, and duplicates: identical ones counted, conflicting ones refused.

A row is identified by its key: (Code, Date) for daily bars and the master, Date for TOPIX and the calendar,
DiscNo (the disclosure number) for statements. The same row twice (two files holding one day, a file given
twice under two names) is an **identical duplicate: one is kept, the rest counted** (`duplicate`). Two rows with
one key and different values are a **conflict: the import is refused** (`RowError`, exit 1), naming the files and
the first such key, since which one is right is not for the import to guess. Statements without a DiscNo are
checked for identical rows only (J-Quants publishes corrections as further rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from gpuetl.fetch.files.rows import RowError, keys
from gpuetl.jquants.spec import DatasetSpec

FILE = "__file"  # the index of the file a row came from (dropped before the lake sees the rows)


def unique_key(ds: DatasetSpec) -> list[str]:
    """The fields that identify one row of `ds`."""
    return ["DiscNo"] if "DiscNo" in ds.columns else keys(ds)


def concat(parts: Sequence[pa.Table]) -> pa.Table:
    """The files' tables (each with its FILE column) as one; a field some files lack is null in their rows."""
    if not parts:
        return pa.table({FILE: pa.array([], pa.int32())})
    return pa.concat_tables(parts, promote_options="default").combine_chunks()


def duplicates(ds: DatasetSpec, table: pa.Table, files: Sequence[Path]) -> int:
    """How many rows repeat another row exactly (the lake keeps one of each); a RowError for a conflict."""
    data = [c for c in table.column_names if c != FILE]
    if not table.num_rows:
        return 0
    key = [k for k in unique_key(ds) if k in data]
    if not key:
        return table.num_rows - _distinct(table, data).num_rows
    has_key = pc.invert(_any_null(table, key))
    keyed, loose = table.filter(has_key), table.filter(pc.invert(has_key))
    extra = loose.num_rows - _distinct(loose, data).num_rows if loose.num_rows else 0
    counts = keyed.group_by(key).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts.column("count_all"), 1)).select(key)
    if not repeated.num_rows:
        return extra
    rows = keyed.join(repeated, key, join_type="left semi")
    distinct = _distinct(rows, data)
    per_key = distinct.group_by(key).aggregate([([], "count_all")])
    conflicts = per_key.filter(pc.greater(per_key.column("count_all"), 1)).select(key)
    if conflicts.num_rows:
        _refuse(ds, rows, conflicts, key, files)
    return extra + rows.num_rows - distinct.num_rows


def _distinct(table: pa.Table, columns: list[str]) -> pa.Table:
    return table.select(columns).group_by(columns).aggregate([])


def _any_null(table: pa.Table, columns: list[str]) -> pa.Array:
    out = pc.is_null(table.column(columns[0]))
    for c in columns[1:]:
        out = pc.or_(out, pc.is_null(table.column(c)))
    return out


def _refuse(ds: DatasetSpec, rows: pa.Table, conflicts: pa.Table, key: list[str], files: Sequence[Path]) -> None:
    """One line: the first conflicting key (in key order), the files its rows came from and a field they differ in."""
    first = conflicts.sort_by([(k, "ascending") for k in key]).slice(0, 1).to_pylist()[0]
    mask = None
    for k in key:
        eq = pc.fill_null(pc.equal(rows.column(k), pa.scalar(first[k], rows.schema.field(k).type)), False)
        mask = eq if mask is None else pc.and_(mask, eq)
    same = rows.filter(mask)
    where = sorted({str(files[i]) for i in same.column(FILE).to_pylist()})
    differ = [c for c in same.column_names if c != FILE and len(set(same.column(c).to_pylist())) > 1]
    shown = ", ".join(f"{k} {v}" for k, v in first.items())
    place = f"in {where[0]}" if len(where) == 1 else f"in {where[0]} and {where[1]}" + (
        f" (and {len(where) - 2} more)" if len(where) > 2 else "")
    raise RowError(f"{ds.name}: two different rows for {shown} {place} (they differ in {', '.join(differ[:3])}); "
                   "keep the right one and import again")
