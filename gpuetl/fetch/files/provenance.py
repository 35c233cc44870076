"""The lake's note of what was imported from files: `<lake>/_imports.json`, rewritten atomically.

    {"format": 1,
     "derived": {"calendar": {"r20230104-20240104": {"hash": "sha256:...", "from": "bars_daily",
                                                     "at": "2025-01-06T09:00:00+00:00"}}},
     "imports": [{"dataset": "bars_daily", "at": "...", "inputs": ["prices/"], "files": 12, "rows": 4029,
                  "units_written": 366, "start": "2023-01-04", "end": "2024-06-28"}]}

`derived` names the calendar units an import derived from the daily bars (not from J-Quants' calendar) with the
content hash they were written with: a unit is derived while the manifest still records that hash (a fetch of
the real calendar replaces it, and the note no longer applies). `derived_units` is what `lake verify` and the
build can report; the lake's readers do not need the note (a derived calendar is a calendar).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from gpuetl.lake import atomic
from gpuetl.lake.manifest import Manifest

FILENAME = "_imports.json"
FORMAT = 1
KEEP_IMPORTS = 200  # the latest imports listed; older entries are dropped


def load(root: str | Path) -> dict[str, Any]:
    """The note (an empty one when there is none, or when it cannot be read: it only informs)."""
    try:
        data = json.loads((Path(root) / FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {"format": FORMAT, "derived": {}, "imports": []}
    data.setdefault("derived", {})
    data.setdefault("imports", [])
    return data


def derived_units(root: str | Path, manifest: Manifest | None = None) -> dict[str, list[str]]:
    """Per dataset, the units the manifest records with the hash an import derived them with."""
    manifest = manifest or Manifest.load(root)
    out: dict[str, list[str]] = {}
    for name, units in load(root)["derived"].items():
        held = manifest.units(name)
        ids = sorted(uid for uid, note in units.items() if uid in held and held[uid].hash == note.get("hash"))
        if ids:
            out[name] = ids
    return out


def note_derived(root: str | Path, units: dict[str, str], source: str, dataset: str = "calendar") -> None:
    """Note `units` (unit id -> content hash) of `dataset` as derived from `source`; nothing is written when the note
    has them already."""
    data = load(root)
    notes = data["derived"].get(dataset, {})
    new = {uid: h for uid, h in units.items() if notes.get(uid, {}).get("hash") != h}
    if not new:
        return
    now = _now()
    data["derived"][dataset] = {**notes, **{uid: {"hash": h, "from": source, "at": now} for uid, h in new.items()}}
    _save(root, data)


def log_import(root: str | Path, entry: dict[str, Any]) -> None:
    """Add an import that wrote units to the note's list (the latest KEEP_IMPORTS are kept)."""
    data = load(root)
    data["imports"] = [*data["imports"], {**entry, "at": _now()}][-KEEP_IMPORTS:]
    _save(root, data)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _save(root: str | Path, data: dict[str, Any]) -> None:
    atomic.write_bytes(Path(root) / FILENAME, json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8"))
