"""Reading the raw lake back: one dataset, a date window, some columns, in a deterministic order.

Files come from the manifest (a part file no complete unit claims is never read), are pruned by their
year=/month= directory, scanned with pyarrow.dataset and filtered on the dataset's date column. Rows
are sorted by that date and then every selected column, so two lakes holding the same rows read back
identical tables. When a unit recorded rows dated outside itself (the same rows can then arrive with
a neighbouring unit too), exact duplicates are dropped on read.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from gpuetl.jquants import schema, spec
from gpuetl.lake.canonical import dedupe_sorted, lake_schema, partition_column, sort
from gpuetl.lake.manifest import Manifest
from gpuetl.lake.verify import READ_ERRORS, CorruptLakeError, read_error

_PART = re.compile(r"/year=(\d{4})/month=(\d{2})/")


def read(
    lake: str | Path,
    dataset: str,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """Rows of `dataset` whose date (SnapshotDate for snapshot datasets) lies in [start, end]."""
    ds = spec.get(dataset)
    manifest = Manifest.load(lake)
    full = lake_schema(ds)
    cols = list(columns) if columns is not None else full.names
    unknown = [c for c in cols if c not in full.names]
    if unknown:
        raise KeyError(f"{ds.name} has no column(s) {unknown}; columns: {', '.join(full.names)}")
    lo, hi = _date(start), _date(end)
    files = [f for f in manifest.files(ds.name) if _month_in(f, lo, hi)]
    if not files:
        return full.empty_table().select(cols)
    date_col = partition_column(ds)
    expr = None
    if date_col and lo is not None:
        expr = pc.field(date_col) >= pa.scalar(lo, pa.date32())
    if date_col and hi is not None:
        upper = pc.field(date_col) <= pa.scalar(hi, pa.date32())
        expr = upper if expr is None else expr & upper
    root = Path(lake)
    try:
        data = pads.dataset([str(root / f) for f in files], schema=full, format="parquet")
        table = data.to_table(columns=cols, filter=expr)
    except READ_ERRORS as err:
        raise CorruptLakeError(read_error(root, files, err)) from err
    table = sort(table, date_col)
    if any(r.spills for r in manifest.units(ds.name).values()):
        table = dedupe_sorted(table)
    return table


def read_frame(
    lake: str | Path,
    dataset: str,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """`read` as the canonical pandas frame (datetime64 dates, float64, nullable booleans)."""
    return schema.to_frame(spec.get(dataset), read(lake, dataset, start, end, columns))


def manifest_hash(lake: str | Path, datasets: Sequence[str] | None = None) -> str:
    """What the lake holds, as one hash (for dataset metadata): units, row counts, content hashes."""
    return Manifest.load(lake).digest(datasets)


def _date(value: dt.date | str | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def _month_in(rel: str, lo: dt.date | None, hi: dt.date | None) -> bool:
    m = _PART.search("/" + rel)
    if m is None:
        return True
    ym = int(m.group(1)) * 100 + int(m.group(2))
    return (lo is None or ym >= lo.year * 100 + lo.month) and (hi is None or ym <= hi.year * 100 + hi.month)
