"""The canonical typed schema of each dataset: the lake's Parquet schema and its pandas twin.

One schema per dataset, V2 field names whichever API version served it, typed by `spec.Field.kind`:
date -> date32, float -> float64, flag -> bool, everything else -> string. In pandas the same data is
datetime64[ns] for dates, float64 (NaN) for floats, the nullable "boolean" dtype for flags and object
strings for the rest; `to_table` and `to_frame` convert between the two without loss.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from gpuetl.jquants.spec import DatasetSpec, Kind

ARROW_TYPES: dict[Kind, pa.DataType] = {
    "date": pa.date32(), "time": pa.string(), "code": pa.string(), "str": pa.string(),
    "float": pa.float64(), "flag": pa.bool_(), "json": pa.string(),
}


def arrow_schema(ds: DatasetSpec, extra: tuple[pa.Field, ...] = ()) -> pa.Schema:
    """The lake schema of `ds` (plus any pipeline-owned `extra` columns, e.g. a snapshot date)."""
    return pa.schema([pa.field(f.name, ARROW_TYPES[f.kind]) for f in ds.fields] + list(extra))


def to_table(ds: DatasetSpec, df: pd.DataFrame, extra: tuple[pa.Field, ...] = ()) -> pa.Table:
    """Canonical pandas frame -> Arrow table with the dataset's exact schema (columns in spec order)."""
    schema = arrow_schema(ds, extra)
    missing = [n for n in schema.names if n not in df.columns]
    if missing:
        raise ValueError(f"{ds.name}: frame lacks columns {missing}")
    json_fields = {f.name for f in ds.fields if f.kind == "json"}
    arrays = []
    for field in schema:
        col = df[field.name]
        if pa.types.is_date32(field.type):
            arrays.append(pa.array(pd.to_datetime(col).dt.date.where(col.notna(), None), type=field.type))
        elif pa.types.is_floating(field.type):
            values = col.astype("float64").to_numpy()  # host-ok: canonical pandas -> Arrow for the lake (host I/O)
            arrays.append(pa.array(values, type=field.type, from_pandas=True))
        elif pa.types.is_boolean(field.type):
            arrays.append(pa.array(col.astype("boolean"), type=field.type))
        elif field.name in json_fields:
            arrays.append(pa.array([canonical_json(_text(v)) for v in col], type=field.type))
        else:
            arrays.append(pa.array([_text(v) for v in col], type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def to_frame(ds: DatasetSpec, table: pa.Table) -> pd.DataFrame:
    """Arrow table (lake schema) -> canonical pandas frame."""
    out: dict[str, Any] = {}
    for field in table.schema:
        col = table.column(field.name)
        if pa.types.is_date32(field.type):
            out[field.name] = pd.to_datetime(pd.Series(col.to_pylist(), dtype="object")).astype("datetime64[ns]")
        elif pa.types.is_floating(field.type):
            out[field.name] = col.to_numpy(zero_copy_only=False).astype(np.float64)
        elif pa.types.is_boolean(field.type):
            out[field.name] = pd.array(col.to_pylist(), dtype="boolean")
        else:
            out[field.name] = pd.Series(col.to_pylist(), dtype="object")
    return pd.DataFrame(out, columns=table.schema.names)


def _text(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return None
    return str(v)


def canonical_json(value: Any) -> str | None:
    """The one text form of an object field (PubReason, FS): sorted keys, compact, so equal objects match."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
