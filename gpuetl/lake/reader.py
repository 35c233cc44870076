"""Reading the raw lake back, the one way: the files the manifest claims, and its dedupe rule.

`read_raw` loads a dataset's columns straight into the backend's frame library (cuDF on the GPU): the build,
the enrichment ops and the graph stage read the lake this way. `read` / `read_frame` give one dataset, a date
window and some columns as an Arrow table / pandas frame, in a deterministic order (tests, the fetch).

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
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from gpuetl.backend import Backend
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


def read_raw(backend: Backend, manifest: Manifest, dataset: str, columns: list[str],
             error: type[Exception] = RuntimeError, filters: list[tuple[str, str, Any]] | None = None) -> Any:
    """`columns` of raw `dataset` in the lake of `manifest` (load it once per run: it can be megabytes);
    a lake without the dataset, or with a file that cannot be read, raises `error` (the caller's type) saying
    what to fetch or how to repair the lake. `filters` (e.g. `[("Code", "in", codes)]`) keeps matching rows."""
    files = manifest.files(dataset)
    if not files:
        raise error(f"the lake at {manifest.root} has no {dataset!r} data; fetch it first "
                    f"(gpuetl fetch --datasets {dataset} ..., or gpuetl fetch --demo)")
    paths = [str(manifest.root / f) for f in files]
    try:
        if not any(r.spills for r in manifest.units(dataset).values()):
            return backend.read_parquet(paths, columns, filters)
        # a unit that recorded rows dated outside itself may share them with a neighbour: as the lake reader
        # does, drop exact duplicates (whole raw rows, so corrections survive) before selecting columns
        return backend.read_parquet(paths, None, filters).drop_duplicates()[columns]
    except READ_ERRORS as err:
        raise error(read_error(manifest.root, files, err)) from err
