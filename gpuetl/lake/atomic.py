"""Atomic file writes: a temp file in the same directory, fsync, `os.replace`, fsync the directory.

A reader (or a crashed writer's successor) sees either the old file or the new one, never half of one. Whole
output folders are swapped in the same way by `gpuetl.lake.outputs`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _commit(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    with _temp_beside(path) as tmp:
        tmp.write_bytes(data)
        _commit(tmp, path)


def write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Let `writer` fill a temp file, then move it into place atomically."""
    path = Path(path)
    with _temp_beside(path) as tmp:
        writer(tmp)
        _commit(tmp, path)


def write_parquet(path: str | Path, table: pa.Table) -> None:
    write_with(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
