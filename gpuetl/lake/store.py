"""The raw lake on disk: `<root>/<dataset>/year=YYYY/month=MM/part-<unit>.parquet` plus the manifest.

`Lake.write` puts one fetch unit's rows in place (canonical form, split by month of the row date,
each file atomic) and then records the unit; `Lake.flush` writes the manifest and only then deletes
files that a rewrite made obsolete, so the manifest on disk never points at a missing file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from gpuetl.jquants.spec import DatasetSpec
from gpuetl.lake import atomic
from gpuetl.lake.canonical import SNAPSHOT_COLUMN, canonical, content_hash, partition_column
from gpuetl.lake.manifest import Manifest, UnitRecord
from gpuetl.lake.outputs import OutputError
from gpuetl.lake.units import Unit, gaps

LOCK = ".lock"


@contextlib.contextmanager
def writer_lock(root: str | Path) -> Iterator[None]:
    """Hold the writer lock of the lake at `root` (`<lake>/.lock`): a second writer fails at once (OutputError)
    instead of racing this one's manifest, or having its unrecorded files vacuumed. It needs no readable
    manifest, so the rebuild of a lost one holds it too."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"another gpuetl process is writing the lake at {root}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def unit_record(ds: DatasetSpec, unit: Unit, table: pa.Table, files: Iterable[str], *, final: bool,
                fetched_at: dt.datetime) -> UnitRecord:
    """The manifest's record of `unit` holding the canonical `table` in `files`: one way, for a write and for a
    manifest rebuilt from the files."""
    first: dt.date | None = None
    last: dt.date | None = None
    dates = _dates(ds, table)
    if dates.null_count < len(dates):
        first, last = pc.min(dates).as_py(), pc.max(dates).as_py()
    return UnitRecord(
        rows=table.num_rows, hash=content_hash(table), files=tuple(sorted(files)), final=final,
        first=first.isoformat() if first else None, last=last.isoformat() if last else None,
        spills=first is not None and last is not None and (first < unit.start or last > unit.end),
        fetched_at=fetched_at.isoformat(timespec="seconds"),
    )


def _dates(ds: DatasetSpec, table: pa.Table) -> pa.ChunkedArray:
    """The rows' partition dates (all null for a dataset without a date column)."""
    col = partition_column(ds)
    return table.column(col) if col else pa.chunked_array([pa.nulls(table.num_rows, pa.date32())])


class Lake:
    """One lake directory; safe to write from several threads at once."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest = Manifest.load(self.root)
        self._garbage: set[str] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ what is there

    def complete(self, ds: DatasetSpec, unit: Unit) -> bool:
        return self.manifest.complete(ds.name, unit.id)

    def missing_ranges(self, ds: DatasetSpec, start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
        """Sub-ranges of [start, end] that no final unit of `ds` covers."""
        return gaps(start, end, self.manifest.covered(ds.name))

    # ------------------------------------------------------------------ writing

    def write(self, ds: DatasetSpec, unit: Unit, table: pa.Table, *, final: bool = True,
              fetched_at: dt.datetime | None = None) -> UnitRecord:
        """Write one unit's rows and record the unit; replaces whatever the unit held before."""
        if ds.fetch == "latest" and SNAPSHOT_COLUMN not in table.column_names:
            table = table.append_column(SNAPSHOT_COLUMN, pa.array([unit.start] * table.num_rows, pa.date32()))
        table = canonical(ds, table)
        files: list[str] = []
        if table.num_rows:
            dates = pc.fill_null(_dates(ds, table), pa.scalar(unit.start, pa.date32()))
            months = pc.add(pc.multiply(pc.year(dates), 100), pc.month(dates))
            for ym in pc.unique(months).to_pylist():
                part = table.filter(pc.equal(months, ym))
                rel = f"{ds.name}/year={ym // 100:04d}/month={ym % 100:02d}/part-{unit.id}.parquet"
                atomic.write_parquet(self.root / rel, part)
                files.append(rel)
        rec = unit_record(ds, unit, table, files, final=final, fetched_at=fetched_at or dt.datetime.now(dt.UTC))
        old = self.manifest.record(ds.name, unit.id, rec)
        stale = set(old.files) if old else set()
        if unit.kind == "range":  # a provisional range this one overlaps is superseded
            for uid, r in self.manifest.units(ds.name).items():
                u = Unit.parse(uid)
                if uid != unit.id and u.kind == "range" and not r.final and u.overlaps(unit.start, unit.end):
                    self.manifest.drop(ds.name, uid)
                    stale.update(r.files)
        with self._lock:
            self._garbage.update(stale - set(files))
        return rec

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        """Hold the lake's writer lock for a whole run (`writer_lock`)."""
        return writer_lock(self.root)

    def forget(self, dataset: str, unit_id: str) -> None:
        """Drop a unit from the manifest (its files go at the next flush): the next fetch requests it again."""
        old = self.manifest.drop(dataset, unit_id)
        if old is not None:
            with self._lock:
                self._garbage.update(old.files)

    def flush(self) -> None:
        """Write the manifest, then remove files no unit claims any more."""
        self.manifest.flush()
        with self._lock:
            garbage, self._garbage = self._garbage, set()
        claimed = {f for ds in self.manifest.datasets() for f in self.manifest.files(ds)}
        for rel in garbage - claimed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / rel)

    def vacuum(self) -> list[str]:
        """Delete part files that no manifest unit claims and temporary files (both left by a killed writer).
        Only while no other process writes this lake (a fetch calls it before it starts)."""
        self.flush()
        claimed = {f for ds in self.manifest.datasets() for f in self.manifest.files(ds)}
        removed = []
        for path in sorted([*self.root.glob("*/year=*/month=*/*.parquet"), *self.root.glob("*/year=*/month=*/.*.tmp"),
                            *self.root.glob(".*.tmp")]):
            rel = path.relative_to(self.root).as_posix()
            if rel not in claimed:
                path.unlink()
                removed.append(rel)
        return removed
