"""Checking a lake against its manifest and its trading calendar, and rebuilding a lost manifest.

Every unit's files must read back to the rows and content hash the manifest recorded when they were written (a
truncated download, a disk error, a hand-edited file all show here). Every open day of the lake's trading calendar
between a `date` dataset's first and last unit must have a unit with rows where the dataset has rows every open day
(`holes`): a missing day would make the next day's one-day return a two-day one. Bad units are fetched again
while the manifest still records them (`fetch(redo=...)`), so a failed repair changes nothing.

Readers use `read_error` to turn a Parquet failure into one line that names the bad file and the repair; a
manifest that cannot be read is rebuilt from the unit files (`rebuild_manifest`).
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gpuetl.jquants import spec
from gpuetl.lake import atomic
from gpuetl.lake.canonical import canonical, content_hash
from gpuetl.lake.manifest import FILENAME, Manifest, ManifestError, UnitRecord
from gpuetl.lake.store import unit_record, writer_lock
from gpuetl.lake.units import JST, Unit, business_days, gaps, today_jst

log = logging.getLogger(__name__)

# what pyarrow (and cuDF on the GPU) raise for a missing, truncated or garbled file
READ_ERRORS = (OSError, ValueError, RuntimeError)
_SOURCE = re.compile(r"^Could not open Parquet input source '[^']*': ")
HOLE = "missing: an open trading day (calendar) with no unit"
EMPTY = "empty: an open trading day (calendar) with no rows, and the dataset has rows every open day"
NO_CALENDAR = ("no trading calendar in the lake: days missing between units were not checked; fetch it "
               "(gpuetl fetch --datasets calendar --start ...)")
CALENDAR_KINDS = ("equity", "derivatives")


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
    notes: list[str] = dataclasses.field(default_factory=list)  # what could not be checked, and why

    def spans(self) -> dict[str, tuple[dt.date, dt.date]]:
        """Per dataset, the first and last day its bad units cover (what a repair fetch must ask for)."""
        out: dict[str, tuple[dt.date, dt.date]] = {}
        for b in self.bad:
            u = Unit.parse(b.unit)
            lo, hi = out.get(b.dataset, (u.start, u.end))
            out[b.dataset] = (min(lo, u.start), max(hi, u.end))
        return out


def verify(root: str | Path, datasets: Iterable[str] | None = None, start: dt.date | None = None,
           end: dt.date | None = None, *, manifest: Manifest | None = None) -> VerifyReport:
    """Hash every unit of `datasets` (default: all) overlapping [start, end] against the manifest (`manifest`: the
    lake's, when the caller has it loaded), and look for the open days they lack (`holes`)."""
    manifest = manifest or Manifest.load(root)
    wanted = None if datasets is None else set(datasets)
    names = [n for n in manifest.datasets() if wanted is None or n in wanted]
    report = VerifyReport(str(manifest.root))
    for name in names:
        for uid, rec in sorted(manifest.units(name).items()):
            u = Unit.parse(uid)
            if (start is not None and u.end < start) or (end is not None and u.start > end):
                continue
            report.units += 1
            problem = unit_problem(manifest.root, spec.get(name), rec)
            if problem:
                report.bad.append(BadUnit(name, uid, problem))
    try:
        found, report.notes = holes(manifest, names, start, end)
    except CorruptLakeError as err:
        found, report.notes = [], [f"days missing between units were not checked: {err}"]
    seen = {(b.dataset, b.unit) for b in report.bad}
    report.bad += [h for h in found if (h.dataset, h.unit) not in seen]
    return report


def recheck(root: str | Path, bad: Sequence[BadUnit]) -> list[BadUnit]:
    """Which of `bad` are bad still (after a repair): their files hashed again, their holes looked for again;
    nothing else is read."""
    manifest = Manifest.load(root)
    still = []
    for b in bad:
        rec = manifest.get(b.dataset, b.unit)
        problem = unit_problem(manifest.root, spec.get(b.dataset), rec) if rec is not None else None
        if problem:
            still.append(BadUnit(b.dataset, b.unit, problem))
    wanted = {(b.dataset, b.unit) for b in bad} - {(b.dataset, b.unit) for b in still}
    try:
        calendar = open_days(manifest)
    except CorruptLakeError:
        calendar = None
    if calendar is None:  # no calendar to look for holes with: a unit still missing stays bad
        return still + [b for b in bad if (b.dataset, b.unit) in wanted and manifest.get(b.dataset, b.unit) is None]
    spans = VerifyReport(str(manifest.root), bad=list(bad)).spans()
    for name, (lo, hi) in sorted(spans.items()):
        found, _ = holes(manifest, [name], lo, hi, calendar=calendar)
        still += [h for h in found if (h.dataset, h.unit) in wanted]
    return still


# ---------------------------------------------------------------------------------------------- holes


@dataclasses.dataclass(frozen=True)
class OpenDays:
    """The lake's trading calendar: the days it covers, and its open days per calendar kind."""

    first: dt.date
    last: dt.date
    days: dict[str, list[dt.date]]  # "equity", "derivatives" -> sorted open days


def open_days(manifest: Manifest) -> OpenDays | None:
    """The lake's trading calendar (a few thousand rows: cheap), or None when the lake has none; a calendar file
    that cannot be read is a CorruptLakeError."""
    files = manifest.files("calendar")
    if not files:
        return None
    try:
        table = pa.concat_tables([pq.read_table(manifest.root / f, columns=["Date", "HolDiv"]) for f in files])
    except READ_ERRORS as err:
        raise CorruptLakeError(read_error(manifest.root, files, err)) from err
    span = pc.min_max(table.column("Date")).as_py()
    if span["min"] is None:
        return None
    return OpenDays(span["min"], span["max"], {kind: business_days(table, kind) for kind in CALENDAR_KINDS})


def holes(manifest: Manifest, datasets: Iterable[str] | None = None, start: dt.date | None = None,
          end: dt.date | None = None, *,
          calendar: OpenDays | None = None) -> tuple[list[BadUnit], list[str]]:
    """Per `date` dataset of `datasets` (default: all), the open days of its calendar kind in [start, end] between
    its first and last unit that no unit covers, or (a dataset with rows every open day: `spec.DatasetSpec.dense`)
    only a unit with no rows; and notes on what could not be checked (a lake without a calendar: nothing).

    Only days the calendar covers are checked, so a dataset outside the calendar's span is noted, not failed.
    `calendar`: the lake's, when the caller has read it (`open_days`).
    """
    wanted = None if datasets is None else set(datasets)
    catalogue = spec.datasets()
    names = [n for n in manifest.datasets()
             if (wanted is None or n in wanted) and n in catalogue and catalogue[n].fetch == "date"]
    if not names:
        return [], []
    calendar = calendar or open_days(manifest)
    if calendar is None:
        return [], [NO_CALENDAR]
    found: list[BadUnit] = []
    notes: list[str] = []
    for name in names:
        missing, note = _dataset_holes(manifest, catalogue[name], calendar, start, end)
        found += missing
        notes += [note] if note else []
    return found, notes


def _dataset_holes(manifest: Manifest, ds: spec.DatasetSpec, calendar: OpenDays, start: dt.date | None,
                   end: dt.date | None) -> tuple[list[BadUnit], str | None]:
    units = manifest.units(ds.name)
    spans = sorted((u.start, u.end) for uid, rec in units.items()
                   if (u := Unit.parse(uid)).kind != "snapshot"
                   and not (rec.rows == 0 and ds.has_rows_on(u.start.isoformat())))  # no rows where some are due
    if not spans:
        return [], None
    lo = max(spans[0][0], start or spans[0][0], dt.date.fromisoformat(ds.since))
    hi = min(max(b for _, b in spans), end or dt.date.max)
    if lo > hi:
        return [], None
    days = calendar.days[ds.calendar]
    found = []
    for a, b in gaps(lo, hi, spans):
        for day in days[bisect.bisect_left(days, a):bisect.bisect_right(days, b)]:
            uid = Unit.day(day).id
            found.append(BadUnit(ds.name, uid, EMPTY if uid in units else HOLE))
    note = None
    if lo < calendar.first or hi > calendar.last:
        note = (f"{ds.name}: its units span {lo} .. {hi}, the lake's trading calendar {calendar.first} .. "
                f"{calendar.last}: days outside the calendar were not checked (fetch the calendar over them)")
    return found, note


def require_no_holes(manifest: Manifest, datasets: Iterable[str], start: dt.date | str | None,
                     end: dt.date | str | None, error: type[Exception] = RuntimeError) -> None:
    """Raise `error` (the caller's type) when a `date` dataset of `datasets` lacks an open day in [start, end]
    between its units: a build would silently join the days around it (the next day's one-day return would span
    two). One line: the dataset, its first missing days, the repair. A lake without a calendar is not checked."""
    lo, hi = (dt.date.fromisoformat(d) if isinstance(d, str) else d for d in (start, end))
    try:
        found, notes = holes(manifest, datasets, lo, hi)
    except CorruptLakeError as err:
        raise error(str(err)) from err
    for note in notes:
        log.warning("lake %s: %s", manifest.root, note)
    if not found:
        return
    name = found[0].dataset
    missing = [Unit.parse(b.unit).start.isoformat() for b in found if b.dataset == name]
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    others = sorted({b.dataset for b in found} - {name})
    also = f" (and {', '.join(others)} lack days too)" if others else ""
    raise error(f"the lake at {manifest.root} has no {name} for {len(missing)} open trading day(s) between its "
                f"units: {shown}{also}; a build would join the days around them; fetch them with "
                f"`gpuetl lake verify --repair --lake {manifest.root}`")


# ---------------------------------------------------------------------------------------------- units


def unit_problem(root: Path, ds: spec.DatasetSpec, rec: UnitRecord) -> str | None:
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


# ---------------------------------------------------------------------------------------------- lost manifest


@dataclasses.dataclass
class RebuiltManifest:
    """What `rebuild_manifest` did."""

    units: int  # units recorded from their files
    files: int  # part files they hold
    kept: str  # where the unreadable manifest now is ("" when none was there)
    left_out: list[str] = dataclasses.field(default_factory=list)  # "file: why" (not recorded; fetched again)


def rebuild_manifest(root: str | Path, today: dt.date | None = None) -> RebuiltManifest | None:
    """Rebuild a lake's unreadable or missing manifest from its unit files, holding the writer lock; None when the
    manifest reads (another process rebuilt it meanwhile). The unreadable one is kept as `_manifest.json.bad`.

    Each unit's files (`<dataset>/year=*/month=*/part-<unit>.parquet`) are read, put in canonical form and
    recorded as `Lake.write` records them. A unit is final when it ended before its files were written and before
    `today` (default: today in Tokyo), as the fetch decided, except a range whose files span more than one month
    (a killed writer may have left only some of them: the next fetch asks for it again). A unit with an unreadable
    file is left out (listed), and so is a range that a newer one overlaps (it was being replaced). Units that
    were recorded with no rows had no files: the next fetch asks for them again.
    """
    root = Path(root)
    with writer_lock(root):
        try:
            if (root / FILENAME).exists():
                Manifest.load(root)
                return None
        except ManifestError:
            pass
        groups, left_out = _unit_files(root)
        result = RebuiltManifest(0, 0, _keep_unreadable(root / FILENAME), left_out)
        manifest = Manifest(root)
        ranges: dict[str, list[Unit]] = {}
        for (name, uid), files in sorted(groups.items(), key=lambda kv: -_written(root, kv[1]).timestamp()):
            unit = Unit.parse(uid)
            newer = ranges.setdefault(name, [])
            if unit.kind == "range" and any(r.overlaps(unit.start, unit.end) for r in newer):
                result.left_out += [f"{f}: an older range that a newer one overlaps" for f in files]
                continue
            rec = _record(root, spec.get(name), unit, files, today or today_jst())
            if isinstance(rec, str):
                result.left_out.append(rec)
                continue
            manifest.record(name, uid, rec)
            newer += [unit] if unit.kind == "range" else []
            result.units += 1
            result.files += len(files)
        manifest.flush(force=True)  # an empty one too: the lake stays a lake
    return result


def _keep_unreadable(path: Path) -> str:
    """Move the unreadable manifest aside under a free `.bad` name (never delete what cannot be read)."""
    if not path.exists():
        return ""
    bad = path.with_name(path.name + ".bad")
    n = 1
    while bad.exists():
        n += 1
        bad = path.with_name(f"{path.name}.bad{n}")
    os.replace(path, bad)
    atomic.fsync_dir(path.parent)
    return str(bad)


def _unit_files(root: Path) -> tuple[dict[tuple[str, str], list[str]], list[str]]:
    """The lake's part files grouped by (dataset, unit id), and the files that belong to no known unit."""
    groups: dict[tuple[str, str], list[str]] = {}
    stray = []
    catalogue = spec.datasets()
    for path in sorted(root.glob("*/year=*/month=*/part-*.parquet")):
        rel = path.relative_to(root).as_posix()
        name, uid = rel.split("/", 1)[0], path.stem.removeprefix("part-")
        try:
            Unit.parse(uid)
        except ValueError:
            stray.append(f"{rel}: not a unit file (part-<unit id>.parquet)")
            continue
        if name not in catalogue:
            stray.append(f"{rel}: not a dataset gpuetl knows")
            continue
        groups.setdefault((name, uid), []).append(rel)
    return groups, stray


def _written(root: Path, files: Sequence[str]) -> dt.datetime:
    """When a unit's files were written (the newest one's modification time)."""
    return dt.datetime.fromtimestamp(max((root / f).stat().st_mtime for f in files), dt.UTC)


def _record(root: Path, ds: spec.DatasetSpec, unit: Unit, files: Sequence[str], today: dt.date) -> UnitRecord | str:
    """The manifest record of `unit` from its files, or "file: why" when one cannot be read as the lake wrote it."""
    parts = []
    for rel in files:
        try:
            parts.append(pq.read_table(root / rel))
        except READ_ERRORS as err:
            return f"{rel}: {_reason(err)}"
    try:
        table = canonical(ds, pa.concat_tables(parts))
    except (pa.ArrowException, KeyError) as err:
        return f"{', '.join(files)}: not in the lake schema ({_reason(err)})"
    written = _written(root, files)
    months = {rel.rsplit("/", 1)[0] for rel in files}
    final = unit.end < min(today, written.astimezone(JST).date()) and not (unit.kind == "range" and len(months) > 1)
    if unit.kind == "snapshot":  # taken on its day, final from the start (the plan's rule)
        final = True
    return unit_record(ds, unit, table, files, final=final, fetched_at=written)
