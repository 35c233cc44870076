"""Per-stage wall time for the pipelines, device synchronised so GPU work is counted where it happens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

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
