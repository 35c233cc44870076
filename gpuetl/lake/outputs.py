"""Output folders: what gpuetl may write where, one writer at a time, swapped in whole.

Inputs are never outputs. Every command names what it reads (`Input`: the lake, the dataset, configs); an output
that is one of them, inside one or above one is refused whatever the flags (`check_not_input`), and so is the
current folder. Every output folder carries a marker (`.gpuetl-output.json`: written by gpuetl, its kind), and:

| the output folder is                 | without --overwrite | with --overwrite |
|--------------------------------------|---------------------|------------------|
| absent or empty                      | written             | written          |
| a gpuetl output of the same kind     | refused             | replaced         |
| another kind, a user's folder, a file | refused            | refused          |

A folder is written beside its place (`.<name>.tmp`, marked from the start), then swapped in; gpuetl outputs
nested in the old folder (a dataset's `graphs/`) move into the new one. One process writes an output at a time
(`.<name>.lock` beside it, held for the whole command: `claimed`). A killed writer's temporary folder is removed
by the next writer only when it carries the marker, after the ownership check; a resumable output (a training
run) keeps it, to be continued with `resume`. A lake is the one output that `fetch` adds to in place, unit by unit
(see `gpuetl.lake.store`): `check_lake_dir` accepts an absent or empty folder or a lake of the same source (the
real API or a synthetic market), never anything else; `gpuetl synth` writes a whole synthetic lake.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from gpuetl.lake.atomic import fsync_dir, write_bytes
from gpuetl.lake.manifest import FILENAME as MANIFEST
from gpuetl.lake.manifest import ManifestError
from gpuetl.lake.units import has_unit_files

MARKER = ".gpuetl-output.json"
LakeSource = Literal["synthetic", "jquants"]  # a lake of a synthetic market (demo, synth) or of the real API


class OutputError(RuntimeError):
    """An output folder gpuetl may not or cannot write; the message names the folder and the fix."""


@dataclasses.dataclass(frozen=True)
class Input:
    """Something a command reads: a file or folder, how the user named it (`--lake`), and the folders inside it
    that are outputs of their own (a dataset's `graphs/`, which `gpuetl graph` writes)."""

    path: Path
    what: str
    outputs_inside: tuple[Path, ...] = ()


def inputs(*named: tuple[str | Path | None, str]) -> list[Input]:
    """`Input`s from (path, what) pairs, leaving out paths not given."""
    return [Input(Path(p), what) for p, what in named if p is not None and str(p) != ""]


# ----------------------------------------------------------------------------- markers


def marker(folder: str | Path) -> dict[str, Any] | None:
    """The marker of a folder gpuetl wrote, or None."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("written_by") == "gpuetl" else None


def output_kind(folder: str | Path) -> str | None:
    """The kind of complete gpuetl output `folder` holds ("dataset", "graphs", "lake", ...), or None. A lake from
    before markers is known by its manifest."""
    data = marker(folder)
    if data is None:
        return "lake" if (Path(folder) / MANIFEST).is_file() else None
    return str(data.get("kind")) if data.get("state", "complete") == "complete" else None


def write_marker(folder: Path, kind: str, state: str = "complete", **extra: Any) -> None:
    write_bytes(folder / MARKER, json.dumps({"written_by": "gpuetl", "kind": kind, "state": state, **extra})
                .encode("utf-8"))


# ----------------------------------------------------------------------------- checks before the work


def check_writable_dir(path: str | Path, flag: str) -> Path:
    """`path` made absolute, or OutputError unless it is a folder gpuetl can write in or create (a file, a file
    among its parents, or missing permissions would fail only after the work)."""
    path = Path(os.path.abspath(path))
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path} is a file, not a folder: choose another {flag}")
    parent = next(p for p in path.parents if p.exists() or p == p.parent)
    if not parent.is_dir():
        raise OutputError(f"{flag} {path} cannot be created: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.is_dir() and not os.access(path, os.W_OK | os.X_OK)):
        raise OutputError(f"{flag} {path} is not writable (permissions of {path if path.is_dir() else parent})")
    return path


def check_not_input(out: str | Path, flag: str, read: Sequence[Input]) -> None:
    """OutputError when `out` is the current folder (or holds it), or one of `read`, inside one or above one
    (symbolic links resolved): an output must never replace, or land in, what the command reads."""
    real = Path(out).resolve()
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise OutputError(f"{flag} {out} is the current folder{'' if real == cwd else ' or holds it'}: name a "
                          f"folder for the output, e.g. {flag} {Path(out) / 'out'}")
    for item in read:
        path = item.path.resolve()
        if real in {p.resolve() for p in item.outputs_inside}:
            continue
        if real == path:
            where = f"is the {item.what} this command reads"
        elif path in real.parents:
            where = f"is inside {item.what} {item.path}, which this command reads"
        elif real in path.parents:
            where = f"holds {item.what} {item.path}, which this command reads"
        else:
            continue
        raise OutputError(f"{flag} {out} {where}: an output never replaces or enters an input; choose an {flag} "
                          f"outside it")


def check_output_dir(out: str | Path, kind: str, *, overwrite: bool = False, flag: str = "--out",
                     read: Sequence[Input] = ()) -> Path:
    """`out` made absolute, or OutputError unless it can become a `kind` folder (see the module's table), with a
    writable parent and no overlap with what the command reads. Call it before the work, so a bad `flag` fails at
    once; no file is touched."""
    out = check_writable_dir(out, flag)
    check_not_input(out, flag, read)
    _check_owner(out, kind, overwrite, flag)
    return out


def _check_owner(out: Path, kind: str, overwrite: bool, flag: str) -> None:
    if not out.is_dir():
        return
    names = sorted(c.name for c in out.iterdir())
    if not names:
        return
    found = output_kind(out)
    if found is None:
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise OutputError(f"{flag} {out} is not empty ({shown}) and gpuetl did not write it: choose a new or empty "
                          f"{flag} (gpuetl never deletes what it did not write)")
    if found != kind:
        raise OutputError(f"{flag} {out} holds a gpuetl {found}, not a {kind}: choose another {flag}")
    if not overwrite:
        raise OutputError(f"{flag} {out} holds a gpuetl {kind} already: pass --overwrite to replace it, or choose "
                          f"another {flag}")


def check_lake_dir(lake: str | Path, flag: str, source: LakeSource, read: Sequence[Input] = ()) -> Path:
    """`lake` made absolute, or OutputError unless it is absent, empty, or a lake of the same `source` (fetch and
    synth add to a lake unit by unit; a synthetic market never mixes with the real one)."""
    lake = check_writable_dir(lake, flag)
    check_not_input(lake, flag, read)
    if not lake.is_dir() or not any(lake.iterdir()):
        return lake
    found = output_kind(lake)
    if not (lake / MANIFEST).is_file() and has_unit_files(lake):
        raise ManifestError(lake / MANIFEST, "is missing, though the lake holds unit files (a fetch would take them "
                                             "for a killed run's leftovers)")
    if found != "lake":
        what = f"holds a gpuetl {found}" if found else "is not empty and is not a lake (no _manifest.json)"
        raise OutputError(f"{flag} {lake} {what}: choose a new or empty {flag}, or an existing lake")
    had = (marker(lake) or {}).get("source")
    if had is not None and had != source:
        holds = "the real J-Quants API" if had == "jquants" else "a synthetic market"
        adds = "a synthetic market" if source == "synthetic" else "a J-Quants fetch"
        raise OutputError(f"{flag} {lake} holds a lake of {holds}; {adds} never mixes into it: choose another {flag}")
    if (marker(lake) or {}).get("signal") is False:  # `gpuetl synth --no-signal`: the demo server serves the other
        raise OutputError(f"{flag} {lake} holds the null market (gpuetl synth --no-signal); the demo server's market "
                          f"has its planted signal and never mixes into it: write the days you need with "
                          f"`gpuetl synth --no-signal --overwrite`, or choose another {flag}")
    return lake


def check_synthetic_lake(lake: str | Path, flag: str, overwrite: bool, read: Sequence[Input] = ()) -> Path:
    """`lake` made absolute, or OutputError unless a synthetic market may be written there whole: absent, empty, or
    (with `overwrite`) a lake of a synthetic market; a lake of the real API, or one from before lakes were marked,
    is never replaced."""
    lake = check_writable_dir(lake, flag)
    check_not_input(lake, flag, read)
    if output_kind(lake) == "lake" and (marker(lake) or {}).get("source") != "synthetic":
        raise OutputError(f"{flag} {lake} holds a lake that is not known to be synthetic (fetched from J-Quants, "
                          "or from before lakes were marked): a synthetic market never replaces it; choose another "
                          f"{flag}")
    return check_output_dir(lake, "lake", overwrite=overwrite, flag=flag, read=read)


def mark_lake(lake: Path, source: LakeSource) -> None:
    """Mark a lake folder (created if absent) as a gpuetl lake of `source`, unless it is marked already."""
    lake.mkdir(parents=True, exist_ok=True)
    if marker(lake) is None:
        write_marker(lake, "lake", source=source)


# ----------------------------------------------------------------------------- one writer per output

_HELD: dict[Path, int] = {}  # lock file -> how many times this process holds it (claims nest)


@contextlib.contextmanager
def claimed(out: str | Path, flag: str = "--out") -> Iterator[Path]:
    """Hold `.<name>.lock` beside `out` for the block: a second writer of the same output fails at once with
    OutputError. The lock file goes when the block ends; nested claims of one process share it."""
    out = Path(os.path.abspath(out))
    lock = _beside(out, "lock")
    if lock in _HELD:
        _HELD[lock] += 1
        try:
            yield out
        finally:
            _HELD[lock] -= 1
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = _lock(lock, out, flag)
    _HELD[lock] = 1
    try:
        yield out
    finally:
        del _HELD[lock]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)  # while holding it: a process that opened the old file sees it is gone and retries
        os.close(fd)


def _lock(lock: Path, out: Path, flag: str) -> int:
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise OutputError(f"another gpuetl process is writing {flag} {out}; wait for it to finish "
                                  f"(lock: {lock})") from None
            raise
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder before us removed the file after we opened it: lock the new one


# ----------------------------------------------------------------------------- writing a folder whole


@contextlib.contextmanager
def replaced_dir(out: str | Path, kind: str, *, overwrite: bool = False, flag: str = "--out",
                 read: Sequence[Input] = (), resume: bool = False, resumable: bool = False,
                 marked: Mapping[str, Any] | None = None) -> Iterator[Path]:
    """Fill the yielded folder beside `out`; on success it replaces `out` (see the module's table for which
    folders may be replaced), under the output's lock. gpuetl outputs nested in the old `out` move into the new
    one. An error leaves `out` as it was and removes the temporary folder, unless the output is `resumable`:
    then it stays, and `resume` continues in it (or, when there is none, in a copy of the finished `out`). `marked`
    adds facts to the marker (a lake's source)."""
    with claimed(out, flag) as out:
        check_output_dir(out, kind, overwrite=overwrite or resume, flag=flag, read=read)
        _check_beside(out, kind, flag)
        _recover(out, kind, overwrite, flag, resume, resumable)
        _check_owner(out, kind, overwrite or resume, flag)  # a folder the recovery brought back is the old output
        if resume:
            tmp = _resume_from(out, kind, flag)
        else:
            tmp = _beside(out, "tmp")
            tmp.mkdir(parents=True)
            write_marker(tmp, kind, "writing", **(marked or {}))
        done = False
        try:
            yield tmp
            _check_owner(out, kind, overwrite or resume, flag)  # nothing foreign appeared there meanwhile
            write_marker(tmp, kind, **(marked or {}))
            old = _beside(out, "old")
            if out.exists():
                out.rename(old)
            tmp.rename(out)
            fsync_dir(out.parent)
            done = True
            _adopt_nested(old, out)
        finally:
            if not done and not resumable:
                shutil.rmtree(tmp, ignore_errors=True)


def _resume_from(out: Path, kind: str, flag: str) -> Path:
    """The folder a resumed run continues in: a killed run's temporary folder, else a copy of the finished `out`."""
    tmp = _beside(out, "tmp")
    if tmp.is_dir():
        return tmp
    if output_kind(out) != kind:
        raise OutputError(f"{flag} {out} holds no {kind} to resume: drop --resume to start one there")
    shutil.copytree(out, tmp)
    write_marker(tmp, kind, "writing")
    return tmp


def _beside(out: Path, what: str) -> Path:
    return out.with_name(f".{out.name}.{what}")


def partial_dir(out: str | Path) -> Path:
    """Where an output is written before it is swapped in (and a resumable one that stopped stays)."""
    return _beside(Path(os.path.abspath(out)), "tmp")


def _check_beside(out: Path, kind: str, flag: str) -> None:
    """OutputError when a folder in the place of `out`'s temporary or set-aside copy is not gpuetl's: the swap
    would fail on it, and it is never removed."""
    for what in ("tmp", "old"):
        path = _beside(out, what)
        if path.exists() and (not path.is_dir() or (marker(path) or {}).get("kind") != kind):
            raise OutputError(f"{flag} {out}: {path} is in the way and gpuetl did not write it: move it elsewhere")


def _recover(out: Path, kind: str, overwrite: bool, flag: str, resume: bool, resumable: bool) -> None:
    """Finish what a killed writer left, touching only folders that carry gpuetl's marker for `kind`: a folder it
    moved aside comes back (the swap stopped half way) or hands its nested outputs to the new one and goes; its
    temporary folder goes, unless the output is resumable (then --resume continues it, --overwrite drops it)."""
    old = _beside(out, "old")
    if old.is_dir() and output_kind(old) == kind:
        if not out.exists():
            old.rename(out)
            fsync_dir(out.parent)
        else:
            _adopt_nested(old, out)
    tmp = _beside(out, "tmp")
    if not tmp.is_dir() or (marker(tmp) or {}).get("kind") != kind:
        return
    if resumable and not resume and not overwrite:
        raise OutputError(f"{flag} {out}: a {kind} that did not finish is at {tmp}: pass --resume to continue it, "
                          "or --overwrite to start afresh")
    if not (resumable and resume):
        shutil.rmtree(tmp)


def _adopt_nested(old: Path, new: Path) -> None:
    """Move complete gpuetl outputs (marked folders) from `old` into `new` where `new` has none of that name;
    drop `old`."""
    if not old.is_dir():
        return
    for child in sorted(old.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and output_kind(child) is not None \
                and not (new / child.name).exists():
            child.rename(new / child.name)
    fsync_dir(new)
    shutil.rmtree(old)
