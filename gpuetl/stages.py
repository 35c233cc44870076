"""Pipeline bookkeeping: per-stage wall time (device synchronised, so GPU work is counted where it
happens) and the provenance every output's metadata starts with."""

from __future__ import annotations

import datetime as dt
import resource
import sys
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


def peak_host_bytes() -> int:
    """The peak resident memory of this process so far (the kernel's high-water mark, not a sample)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux


def peak_memory_text(device_bytes: int | None, host_bytes: int | None = None) -> str:
    """", peak memory: host N GiB, device M GiB" (device only on the GPU)."""
    parts = [f"{name} {b / 2**30:.2f} GiB" for name, b in (("host", host_bytes), ("device", device_bytes)) if b]
    return f", peak memory: {', '.join(parts)}" if parts else ""
