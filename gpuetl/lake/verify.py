"""Checking a lake against its manifest: every unit's files must read back to the rows and content hash
the manifest recorded when they were written (a truncated download, a disk error, a hand-edited file all
show here). Bad units can be forgotten (`Lake.forget`) so the next fetch requests them again.

Readers use `read_error` to turn a Parquet failure into one line that names the bad file and the repair.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from gpuetl.jquants import spec
from gpuetl.lake.canonical import canonical, content_hash
from gpuetl.lake.manifest import Manifest, UnitRecord
from gpuetl.lake.units import Unit

# what pyarrow (and cuDF on the GPU) raise for a missing, truncated or garbled file
READ_ERRORS = (OSError, ValueError, RuntimeError)
_SOURCE = re.compile(r"^Could not open Parquet input source '[^']*': ")


class CorruptLakeError(RuntimeError):
    """A lake file that cannot be read; the message names it and the repair command (`read_error`)."""


@dataclasses.dataclass(frozen=True)
class BadUnit:
    dataset: str
    unit: str
    problem: str


@dataclasses.dataclass
class VerifyReport:
    lake: str
    units: int = 0  # units checked
    bad: list[BadUnit] = dataclasses.field(default_factory=list)

    def spans(self) -> dict[str, tuple[dt.date, dt.date]]:
        """Per dataset, the first and last day its bad units cover (what a repair fetch must ask for)."""
        out: dict[str, tuple[dt.date, dt.date]] = {}
        for b in self.bad:
            u = Unit.parse(b.unit)
            lo, hi = out.get(b.dataset, (u.start, u.end))
            out[b.dataset] = (min(lo, u.start), max(hi, u.end))
        return out


def verify(root: str | Path, datasets: Iterable[str] | None = None, start: dt.date | None = None,
           end: dt.date | None = None) -> VerifyReport:
    """Hash every unit of `datasets` (default: all) overlapping [start, end] against the manifest."""
    manifest = Manifest.load(root)
    wanted = None if datasets is None else set(datasets)
    report = VerifyReport(str(manifest.root))
    for name in manifest.datasets():
        if wanted is not None and name not in wanted:
            continue
        for uid, rec in sorted(manifest.units(name).items()):
            u = Unit.parse(uid)
            if (start is not None and u.end < start) or (end is not None and u.start > end):
                continue
            report.units += 1
            problem = unit_problem(manifest.root, spec.get(name), rec)
            if problem:
                report.bad.append(BadUnit(name, uid, problem))
    return report


def unit_problem(root: Path, ds: spec.Dataset, rec: UnitRecord) -> str | None:
    """Why a unit's files do not hold what the manifest recorded, or None when they do."""
    parts = []
    for rel in rec.files:
        try:
            parts.append(pq.read_table(root / rel))
        except FileNotFoundError:
            return f"{rel}: missing"
        except READ_ERRORS as err:
            return f"{rel}: {_reason(err)}"
    try:
        table = canonical(ds, pa.concat_tables(parts)) if parts else None
    except (pa.ArrowException, KeyError) as err:  # a file with other columns or types than the lake schema
        return f"{', '.join(rec.files)}: not in the lake schema ({_reason(err)})"
    rows = table.num_rows if table is not None else 0
    if rows != rec.rows:
        return f"{rows} rows, the manifest recorded {rec.rows}"
    if table is not None and content_hash(table) != rec.hash:
        return "content differs from the hash the manifest recorded"
    return None


def read_error(root: Path, files: Sequence[str], err: BaseException) -> str:
    """One line for a failed lake read: the first file that cannot be read, and how to repair the lake."""
    bad = _unreadable(root, files)
    what = f"{root / bad[0]} is {bad[1]}" if bad else f"reading the lake at {root} failed ({_reason(err)})"
    return f"{what}; check and repair the lake with `gpuetl lake verify --repair --lake {root}`"


def _unreadable(root: Path, files: Sequence[str]) -> tuple[str, str] | None:
    """The first file Parquet cannot read and why: footers first (cheap, finds truncation), then whole files."""
    for check in (pq.read_metadata, pq.read_table):
        for rel in files:
            try:
                check(root / rel)
            except FileNotFoundError:
                return rel, "missing"
            except READ_ERRORS as err:
                return rel, f"not a readable Parquet file ({_reason(err)})"
    return None


def _reason(err: BaseException) -> str:
    """The first line of an error, without pyarrow's "Could not open Parquet input source '<path>': " prefix."""
    text = _SOURCE.sub("", str(err)).strip()
    return text.splitlines()[0][:160] if text else type(err).__name__
