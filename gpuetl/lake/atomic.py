"""Atomic file writes: a temp file in the same directory, fsync, `os.replace`, fsync the directory.

A reader (or a crashed writer's successor) sees either the old file or the new one, never half of one.
Whole output folders (a dataset, its graphs) are written beside their place (`.<name>.tmp`) and swapped in
at the end. gpuetl replaces only a folder it wrote itself: each output folder carries a marker
(`.gpuetl-output.json`: written_by gpuetl, its kind), and any other non-empty folder is refused
(`OutputError`) unless the caller passes `overwrite`. gpuetl outputs nested in a replaced folder (a
dataset's `graphs/`) move into the new one instead of being deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MARKER = ".gpuetl-output.json"


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


class OutputError(RuntimeError):
    """An output folder gpuetl may not or cannot write; the message names the folder and the fix."""


def output_kind(folder: str | Path) -> str | None:
    """The kind of gpuetl output `folder` holds ("dataset", "graphs"), or None when gpuetl did not write it."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("kind") if isinstance(data, dict) and data.get("written_by") == "gpuetl" else None


def check_writable_dir(path: str | Path, flag: str) -> Path:
    """Raise OutputError unless `path` is a folder gpuetl can write in, or can be created (a file, or a file
    among its parents, or missing permissions, would fail only after the work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path} is a file, not a folder: choose another {flag}")
    parent = next(p for p in path.absolute().parents if p.exists() or p == p.parent)
    if not parent.is_dir():
        raise OutputError(f"{flag} {path} cannot be created: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.is_dir() and not os.access(path, os.W_OK | os.X_OK)):
        raise OutputError(f"{flag} {path} is not writable (permissions of {path if path.is_dir() else parent})")
    return path


def check_output_dir(out: str | Path, kind: str, *, overwrite: bool = False, flag: str = "--out") -> Path:
    """Raise OutputError unless `out` can become a `kind` folder: absent, empty, or a `kind` gpuetl wrote
    (anything with `overwrite`), with a writable parent. Call it before the work, so a bad `flag` fails at once;
    it also finishes a swap a killed run left half done and removes its temporary folder."""
    out = check_writable_dir(out, flag)
    _recover(out)
    _check_owner(out, kind, overwrite, flag)
    return out


def _check_owner(out: Path, kind: str, overwrite: bool, flag: str) -> None:
    if out.is_dir() and not overwrite:
        found = output_kind(out)
        names = sorted(c.name for c in out.iterdir())
        if found is None and names:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise OutputError(f"{out} is not empty ({shown}) and gpuetl did not write it: choose a new or empty "
                              f"{flag}, or pass --overwrite to replace it")
        if found is not None and found != kind:
            raise OutputError(f"{out} holds a gpuetl {found}, not a {kind}: choose another {flag}, "
                              "or pass --overwrite to replace it")


@contextlib.contextmanager
def replaced_dir(out: str | Path, kind: str, *, overwrite: bool = False) -> Iterator[Path]:
    """Fill the yielded empty folder beside `out`; on success it replaces `out` (see `check_output_dir` for
    which folders may be replaced). gpuetl outputs nested in the old `out` move into the new one. An error
    leaves `out` as it was and removes the temporary folder; a killed run's is removed by the next one."""
    out = check_output_dir(out, kind, overwrite=overwrite)
    tmp = _beside(out, "tmp")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        write_bytes(tmp / MARKER, json.dumps({"written_by": "gpuetl", "kind": kind}).encode("utf-8"))
        _check_owner(out, kind, overwrite, "--out")  # nothing foreign appeared there meanwhile
        old = _beside(out, "old")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        fsync_dir(out.parent)
        _adopt_nested(old, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _beside(out: Path, what: str) -> Path:
    return out.with_name(f".{out.name}.{what}")


def _recover(out: Path) -> None:
    """Finish what a killed `replaced_dir` left: its temporary folder goes; a folder it moved aside comes
    back (when the swap stopped half way) or hands its nested outputs to the new folder and goes."""
    shutil.rmtree(_beside(out, "tmp"), ignore_errors=True)
    old = _beside(out, "old")
    if old.is_dir() and not out.exists():
        old.rename(out)
    else:
        _adopt_nested(old, out)


def _adopt_nested(old: Path, new: Path) -> None:
    """Move gpuetl outputs (marked folders) from `old` into `new` where `new` has none of that name; drop `old`."""
    if not old.is_dir():
        return
    for child in sorted(old.iterdir()):
        if child.is_dir() and output_kind(child) is not None and not (new / child.name).exists():
            child.rename(new / child.name)
    fsync_dir(new)
    shutil.rmtree(old)
