"""Pipeline bookkeeping: per-stage wall time (device synchronised at stage boundaries, so GPU work is counted
where it happens) and the provenance every output's metadata starts with."""

from __future__ import annotations

import datetime as dt
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from rich.table import Table

from gpuetl.backend import Backend
from gpuetl.version import __version__


class StageTimer:
    """Seconds per stage: `with timer("load"): ...` adds the stage's time to `timer.timings` (repeated names
    accumulate), the device synchronised at both ends, so queued GPU work is counted in the stage that queued it.

    `with timer.op("feature:rsi"): ...` inside a stage times one op (or another step) on its own only when
    `per_op` is on (by default on the CPU, where there is no device to wait for): on the GPU that means waiting
    for the device around every op, which serialises the work it would otherwise queue. A stage's time excludes
    what the stages and ops timed inside it took, so the timings add up to the wall time.
    """

    def __init__(self, backend: Backend, per_op: bool | None = None) -> None:
        self.backend = backend
        self.per_op = not backend.is_gpu if per_op is None else per_op
        self.timings: dict[str, float] = {}
        self._inner: list[float] = []  # per open section: seconds taken by the sections timed inside it

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.backend.synchronize()
        t0 = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
            self.backend.synchronize()  # before reading the clock: the stage's queued device work is done
        finally:
            inner = self._inner.pop()
        secs = time.perf_counter() - t0
        self.timings[name] = round(self.timings.get(name, 0.0) + secs - inner, 4)
        if self._inner:
            self._inner[-1] += secs

    def op(self, name: str) -> AbstractContextManager[None]:
        """Time `name` on its own when `per_op` is on; otherwise its time counts in the enclosing stage."""
        return self(name) if self.per_op else nullcontext()


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
