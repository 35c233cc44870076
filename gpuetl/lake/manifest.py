"""The lake's manifest: which fetch units of which dataset are complete, with rows and a content hash.

One JSON file, `<lake>/_manifest.json`, rewritten atomically:

    {"format": 1,
     "datasets": {"bars_daily": {"d20240105": {"rows": 4012, "hash": "sha256:...", "final": true,
                                                "files": ["bars_daily/year=2024/month=01/part-d20240105.parquet"],
                                                "first": "2024-01-05", "last": "2024-01-05", "spills": false,
                                                "fetched_at": "2025-01-06T09:00:00+00:00"}, ...}}}

A unit is recorded only after its files are in place; the pipeline flushes the manifest every few
seconds and at the end (a unit written but not yet flushed is fetched again and its files replaced).
`final: false` marks a unit that covers today or later, whose data may still change: it is fetched
again on the next run. The reader lists files from here, so a file no unit claims is never read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gpuetl.lake import atomic
from gpuetl.lake.units import Unit

FILENAME = "_manifest.json"
FORMAT = 1


@dataclasses.dataclass(frozen=True)
class UnitRecord:
    rows: int
    hash: str
    files: tuple[str, ...]  # relative to the lake root
    final: bool = True
    first: str | None = None  # smallest / largest row date (the dataset's date_field)
    last: str | None = None
    spills: bool = False  # some rows are dated outside the unit (they may repeat in a neighbour)
    fetched_at: str = ""

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["files"] = list(self.files)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UnitRecord:
        return cls(**{**d, "files": tuple(d.get("files", ()))})


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file and the repair (`lake verify --repair` rebuilds
    it from the lake's unit files)."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"{path} {problem}; rebuild it from the lake's files with "
                         f"`gpuetl lake verify --repair --lake {path.parent}`")

    def __reduce__(self) -> tuple[type[ManifestError], tuple[Path, str]]:  # raised in a Dask task, read in the client
        return type(self), (self.path, self.problem)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:160] if text else type(err).__name__


class Manifest:
    """In-memory manifest with thread-safe updates and atomic flushes."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.path = self.root / FILENAME
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time, so an older snapshot never lands last
        self._units: dict[str, dict[str, UnitRecord]] = {}
        self._dirty = False

    @classmethod
    def load(cls, root: str | Path) -> Manifest:
        m = cls(root)
        try:
            data = json.loads(m.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return m
        except ValueError as err:  # truncated, garbled, not UTF-8
            raise ManifestError(m.path, f"is not a readable manifest ({_first_line(err)})") from err
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ManifestError(m.path, f"is not a manifest of format {FORMAT} (found {found!r})")
        try:
            m._units = {ds: {uid: UnitRecord.from_json(r) for uid, r in units.items()}
                        for ds, units in data.get("datasets", {}).items()}
        except (AttributeError, TypeError, ValueError) as err:  # valid JSON, not the records we write
            raise ManifestError(m.path, f"holds a malformed unit record ({_first_line(err)})") from err
        return m

    # ------------------------------------------------------------------ queries

    def datasets(self) -> list[str]:
        with self._lock:
            return sorted(n for n, u in self._units.items() if u)

    def units(self, dataset: str) -> dict[str, UnitRecord]:
        with self._lock:
            return dict(self._units.get(dataset, {}))

    def get(self, dataset: str, unit_id: str) -> UnitRecord | None:
        with self._lock:
            return self._units.get(dataset, {}).get(unit_id)

    def complete(self, dataset: str, unit_id: str) -> bool:
        rec = self.get(dataset, unit_id)
        return rec is not None and rec.final

    def covered(self, dataset: str) -> list[tuple[dt.date, dt.date]]:
        """The (start, end) of every final unit of `dataset` (ranges for gap planning)."""
        out = []
        for uid, rec in self.units(dataset).items():
            if rec.final:
                u = Unit.parse(uid)
                out.append((u.start, u.end))
        return sorted(out)

    def files(self, dataset: str) -> list[str]:
        return sorted(f for rec in self.units(dataset).values() for f in rec.files)

    def digest(self, datasets: Iterable[str] | None = None) -> str:
        """A hash of what the lake holds (units, rows, content hashes), independent of fetch times."""
        wanted = None if datasets is None else set(datasets)
        with self._lock:
            items = sorted((ds, uid, r.rows, r.hash, r.final) for ds, units in self._units.items()
                           if wanted is None or ds in wanted for uid, r in units.items())
        return "sha256:" + hashlib.sha256(json.dumps(items).encode()).hexdigest()

    # ------------------------------------------------------------------ updates

    def record(self, dataset: str, unit_id: str, rec: UnitRecord) -> UnitRecord | None:
        """Mark a unit complete (its files must already be in place); returns the record it replaced."""
        with self._lock:
            old = self._units.setdefault(dataset, {}).get(unit_id)
            self._units[dataset][unit_id] = rec
            self._dirty = True
            return old

    def drop(self, dataset: str, unit_id: str) -> UnitRecord | None:
        with self._lock:
            old = self._units.get(dataset, {}).pop(unit_id, None)
            self._dirty = self._dirty or old is not None
            return old

    def flush(self, *, force: bool = False) -> bool:
        """Write the manifest if it changed since the last flush (or with `force`); True if it wrote."""
        with self._flush_lock:
            with self._lock:
                if not (self._dirty or force):
                    return False
                data = {"format": FORMAT, "datasets": {
                    ds: {uid: units[uid].to_json() for uid in sorted(units)}
                    for ds, units in sorted(self._units.items()) if units}}
                self._dirty = False
            try:
                atomic.write_bytes(self.path, json.dumps(data, separators=(",", ":")).encode("utf-8"))
            except BaseException:
                with self._lock:
                    self._dirty = True
                raise
            return True
