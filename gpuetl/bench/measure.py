"""Timing a stage the same way every time, and the facts about the machine the timings come from.

`timed` runs warm-ups (the first run's output feeds the equality check), then repetitions, synchronising the
device before each clock read, and returns the median, min, max and spread of the repetitions. A stage whose
warm-up took longer than `budget_s / repeat` gets fewer repetitions, and one whose warm-up alone took longer
than `budget_s` none: its (last) warm-up run is then its one timing, so the per-day Louvain loops of the CPU
do not run for an hour at the medium size. While it runs, a sampler thread reads the process's resident memory
(peak host RSS during the stage); on the GPU, the RMM statistics adaptor's counters give the peak device
bytes the stage allocated beyond what was held before it.

Other work on the machine skews a timing, so the 1-minute load average is read before and after a stage's
timed runs: when it moved by more than LOAD_TOLERANCE (one core) beyond what the stage's own busy cores explain
(its process's CPU seconds per second: a multi-threaded stage raises the load itself), the timed runs are
repeated, at most LOAD_RETRIES more times, and the timing says so (`load_retries`; every try's readings in
`load_history`). The readers are injectable (`LoadProbe`), so the decision is tested without a busy machine.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gpuetl.backend import Backend
from gpuetl.doctor import installed_version
from gpuetl.version import __version__

VERSIONED = ("numpy", "pandas", "pyarrow", "polars", "numba", "networkx", "scipy", "matplotlib", "cudf", "cupy",
             "rmm", "pylibcugraph", "torch")
DISTRIBUTIONS = {"cudf_polars": ("cudf-polars-cu13", "cudf-polars-cu12", "cudf-polars")}  # not in doctor's list
LOAD_TOLERANCE = 1.0  # cores: a 1-minute load average that moved by more than this during the timed runs ...
LOAD_RETRIES = 2  # ... has them run again, at most this many more times



def load_1min() -> float:
    """The machine's 1-minute load average (the number of cores busy or waiting, averaged)."""
    return os.getloadavg()[0]


@dataclasses.dataclass(frozen=True)
class LoadProbe:
    """What `timed` reads around a stage's timed runs: the machine's load and this process's CPU seconds."""
    load: Callable[[], float] = load_1min
    cpu_s: Callable[[], float] = time.process_time  # every thread of the process (Polars', Numba's too)


def load_moved(before: float, after: float, own_cores: float = 0.0, tolerance: float = LOAD_TOLERANCE) -> bool:
    """Did others' load change by more than `tolerance` cores while a stage ran (so its timing is suspect)? A
    rise up to the stage's own busy cores is its own doing (the load average counts its threads too)."""
    change = after - before
    return change > tolerance + own_cores or change < -tolerance


@dataclasses.dataclass
class Timing:
    seconds: list[float]  # the timed repetitions
    warmup_s: list[float]
    peak_rss_bytes: int | None
    peak_device_bytes: int | None
    load_history: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)  # per try: the
    # 1-minute load before and after the timed runs, and the stage's own busy cores during them

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    def summary(self) -> dict[str, Any]:
        med = self.median_s
        return {"median_s": med, "min_s": min(self.seconds), "max_s": max(self.seconds),
                "spread": (max(self.seconds) - min(self.seconds)) / med if med > 0 else 0.0,
                "repeat": len(self.seconds), "warmup_s": self.warmup_s, "seconds": self.seconds,
                "peak_rss_bytes": self.peak_rss_bytes, "peak_device_bytes": self.peak_device_bytes,
                **self.load_summary()}

    def load_summary(self) -> dict[str, Any]:
        """The load around the kept timed runs, how many times they were run again, and every try's load."""
        if not self.load_history:
            return {}
        before, after, own = self.load_history[-1]
        return {"load_before": round(before, 2), "load_after": round(after, 2), "busy_cores": round(own, 2),
                "load_retries": len(self.load_history) - 1,
                "load_history": [[round(x, 2) for x in try_] for try_ in self.load_history]}


def timed(backend: Backend | None, fn: Callable[[], Any], *, warmup: int, repeat: int,
          budget_s: float = math.inf, keep_first: bool = False, probe: LoadProbe | None = LoadProbe(),
          retries: int = LOAD_RETRIES) -> tuple[Timing, Any, Any]:
    """(timing, output of the first run, output of the last run) of `fn` (the first run is a warm-up if any);
    the first run's output is the last one's unless `keep_first` (for the equality check). The timed runs
    are run again, at most `retries` more times, while the `probe` sees the load move (`load_moved`); with
    `probe=None` no load is read."""
    sync = backend.synchronize if backend is not None else (lambda: None)
    outputs: list[Any] = []  # every run's output replaces the last one; the first stays if kept
    warm: list[float] = []
    times: list[float] = []
    history: list[tuple[float, float, float]] = []
    watch = _Watch(probe)

    def run(into: list[float]) -> None:
        seconds, out = _clock(fn, sync)
        into.append(seconds)
        outputs[1 if keep_first else 0:] = [out]

    with rss_sampler() as rss, device_peak(backend) as device:
        watch.start()
        for _ in range(warmup):
            run(warm)
        reps = max(repeat, 1)
        if warm and max(warm) > 0 and budget_s < math.inf:
            reps = min(reps, int(budget_s // max(warm)))
        if reps == 0:  # the warm-up alone took longer than the budget: its last run is the one timing, not rerun
            times, warm = warm[-1:], warm[:-1]
            watch.stop(sum(warm) + sum(times), history)
        while reps:
            watch.start()
            times = []
            for _ in range(reps):
                run(times)
            watch.stop(sum(times), history)
            if not history or len(history) > retries or not load_moved(*history[-1]):
                break
    return Timing(times, warm, rss.peak, device.peak, history), outputs[0], outputs[-1]


class _Watch:
    """The probe's readings from `start` to `stop`: (load before, load after, the process's busy cores)."""

    def __init__(self, probe: LoadProbe | None) -> None:
        self.probe = probe
        self.load = self.cpu = 0.0

    def start(self) -> None:
        if self.probe is not None:
            self.load, self.cpu = self.probe.load(), self.probe.cpu_s()

    def stop(self, wall_s: float, into: list[tuple[float, float, float]]) -> None:
        if self.probe is not None:
            busy = (self.probe.cpu_s() - self.cpu) / wall_s if wall_s > 0 else 0.0
            into.append((self.load, self.probe.load(), busy))


def _clock(fn: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, Any]:
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t0, out


class _Peak:
    peak: int | None = None


@contextmanager
def rss_sampler(every_s: float = 0.005) -> Iterator[_Peak]:
    """The highest resident set size seen while the block runs (sampled; /proc on Linux), else None."""
    result = _Peak()
    statm = Path("/proc/self/statm")
    if not statm.exists():
        yield result
        return
    page = os.sysconf("SC_PAGE_SIZE")
    stop = threading.Event()

    def sample() -> None:
        peak = 0
        while True:
            peak = max(peak, int(statm.read_text().split()[1]) * page)
            result.peak = peak
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()


@contextmanager
def device_peak(backend: Backend | None) -> Iterator[_Peak]:
    """Peak device bytes allocated inside the block beyond those held before it (RMM counters), else None."""
    result = _Peak()
    pool = backend.pool if backend is not None else None
    if pool is None or not hasattr(pool, "push_counters"):
        yield result
        if pool is not None:  # an RMM without counter frames: the process's high-water mark
            result.peak = int(pool.allocation_counts.peak_bytes)
        return
    pool.push_counters()
    try:
        yield result
    finally:
        result.peak = int(pool.pop_counters().peak_bytes)


def machine() -> dict[str, Any]:
    """CPU, cores, memory, load, OS and library versions of this machine (the GPU comes from the GPU worker)."""

    return {
        "cpu": _cpu_model(), "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _memory_gib(), "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(), "python": platform.python_version(), "gpuetl": __version__,
        "versions": {m: installed_version(m) for m in VERSIONED} | {m: _version(d) for m, d in DISTRIBUTIONS.items()},
    }


def _version(dists: tuple[str, ...]) -> str | None:
    return next((v for v in map(installed_version, dists) if v), None)


def _cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return None
