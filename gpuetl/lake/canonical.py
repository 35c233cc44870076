"""One canonical form of a dataset's rows: the lake schema, a total row order, no exact duplicates.

The same rows must give the same files and the same content hash whatever order the server sent them
in, however pages were retried, and whether the fetch was interrupted and resumed. So rows are sorted
by the partition date then by every column, and exact duplicate rows are dropped. Rows that share a
logical key but differ in any value (corrections the API publishes as extra rows, API-NOTES §3.5
gotcha 5) are different rows and are all kept.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuetl.jquants.schema import arrow_schema
from gpuetl.jquants.spec import DatasetSpec

SNAPSHOT_COLUMN = "SnapshotDate"
SNAPSHOT_FIELD = pa.field(SNAPSHOT_COLUMN, pa.date32())


def extra_fields(ds: DatasetSpec) -> tuple[pa.Field, ...]:
    """Pipeline-owned columns: "latest" datasets carry the date each snapshot was taken."""
    return (SNAPSHOT_FIELD,) if ds.fetch == "latest" else ()


def lake_schema(ds: DatasetSpec) -> pa.Schema:
    return arrow_schema(ds, extra_fields(ds))


def partition_column(ds: DatasetSpec) -> str | None:
    """The date column that places a row in year=/month= partitions and that reads filter on."""
    return SNAPSHOT_COLUMN if ds.fetch == "latest" else ds.date_field


def sort_keys(names: list[str], first: str | None) -> list[tuple[str, str]]:
    ordered = ([first] if first in names else []) + [n for n in names if n != first]
    return [(n, "ascending") for n in ordered]


def canonical(ds: DatasetSpec, table: pa.Table) -> pa.Table:
    """`table` in the lake schema, totally ordered, exact duplicate rows removed."""
    table = table.select(lake_schema(ds).names).cast(lake_schema(ds))
    return dedupe_sorted(sort(table, partition_column(ds)))


def sort(table: pa.Table, first: str | None) -> pa.Table:
    """Rows ordered by `first`, then every column; tables read back in order are not copied."""
    if table.num_rows < 2:
        return table.combine_chunks()
    order = pc.sort_indices(table, sort_keys=sort_keys(table.column_names, first))
    if np.array_equal(order.to_numpy(),  # host-ok: the lake is host I/O (Arrow on the CPU)
                      np.arange(len(order), dtype=np.uint64)):
        return table.combine_chunks()
    return table.take(order).combine_chunks()


def dedupe_sorted(table: pa.Table) -> pa.Table:
    """Drop rows equal (nulls equal to nulls) to the row before them; `table` must be sorted."""
    n = table.num_rows
    if n < 2:
        return table
    same = None
    for col in table.itercolumns():
        a, b = col.slice(1), col.slice(0, n - 1)
        eq = pc.or_(pc.fill_null(pc.equal(a, b), False), pc.and_(pc.is_null(a), pc.is_null(b)))
        same = eq if same is None else pc.and_(same, eq)
    assert same is not None
    keep = pa.concat_arrays([pa.array([True]), pc.invert(same).combine_chunks()])
    return table if pc.all(keep).as_py() else table.filter(keep)


def content_hash(table: pa.Table) -> str:
    """sha256 of the canonical table's Arrow IPC stream: equal rows, equal hash.

    IPC bytes follow the physical layout (a slice's string offsets do not start at zero), so the table
    is first rebuilt into fresh buffers by a `take` of every row.
    """
    fresh = table.take(pa.array(np.arange(table.num_rows, dtype=np.int64))).combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(fresh)
    return "sha256:" + hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
