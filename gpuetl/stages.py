"""Pipeline bookkeeping: per-stage wall time (device synchronised, so GPU work is counted where it
happens) and the provenance every output's metadata starts with."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.table import Table

from gpuetl import __version__
from gpuetl.backend import Backend


class StageTimer:
    """`with timer("load"): ...` adds the stage's seconds to `timer.timings` (repeated names accumulate)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.backend.synchronize()
        t0 = time.perf_counter()
        yield
        self.backend.synchronize()
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t0, 4)


def provenance(backend: Backend, name: str) -> dict[str, Any]:
    """Name, gpuetl version, creation time, backend and device: the head of a metadata file."""
    return {
        "name": name,
        "gpuetl": __version__,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "backend": backend.name,
        "device": backend.device.name if backend.device else None,
    }


def timings_table(title: str, timings: dict[str, float], label: str = "stage") -> Table:
    """The per-stage seconds as a rich table, with the total."""
    table = Table(label, "seconds", title=title)
    for name, secs in timings.items():
        table.add_row(name, f"{secs:.3f}")
    table.add_row("[bold]total", f"[bold]{sum(timings.values()):.3f}")
    return table


def peak_memory_text(peak_bytes: int | None) -> str:
    """", peak device memory N GiB" on the GPU; nothing on the CPU."""
    return f", peak device memory {peak_bytes / 2**30:.2f} GiB" if peak_bytes else ""
