"""The benchmark harness: one table of sizes, a --backend switch, warm-up, repeats, median, JSON out.

A suite is a module `bench_<name>.py` with `SIZES` (name -> parameters), `setup(backend, **params)`
returning the inputs, and `run(backend, inputs)` doing the timed work. The harness synchronises the
device before reading the clock, so GPU timings measure the work and not its queueing.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gpuetl import backend as backend_mod
from gpuetl.bench.measure import timed
from gpuetl.config import load_settings


def measure(backend: backend_mod.Backend, fn: Callable[[], Any], *, warmup: int, repeat: int) -> dict[str, float]:
    summary = timed(backend, fn, warmup=warmup, repeat=repeat)[0].summary()
    return {k: summary[k] for k in ("median_s", "min_s", "max_s", "repeat")}


def main(suite: str, sizes: Mapping[str, Mapping[str, Any]], setup: Callable[..., Any],
         run: Callable[[backend_mod.Backend, Any], Any], smoke_size: str, argv: list[str] | None = None,
         report: Callable[[backend_mod.Backend, Any, dict[str, float]], dict[str, Any]] | None = None) -> list[dict]:
    """Run the suite's sizes; `report(backend, inputs, stats)`, if given, adds the suite's own figures to a row
    (e.g. a throughput from the median time, peak memory)."""
    parser = argparse.ArgumentParser(prog=f"bench_{suite}")
    parser.add_argument("--backend", choices=("auto", "gpu", "cpu"), default="auto")
    parser.add_argument("--sizes", default=",".join(sizes), help=f"comma list from: {', '.join(sizes)}")
    parser.add_argument("--smoke", action="store_true", help=f"only size {smoke_size!r}, one repeat (CI)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write results as JSON here")
    args = parser.parse_args(argv)
    backend = backend_mod.init(load_settings(overrides=[f"backend={args.backend}"]))
    chosen = [smoke_size] if args.smoke else [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in sizes]
    if unknown:
        parser.error(f"unknown sizes {unknown}; valid: {', '.join(sizes)}")
    results = []
    for size in chosen:
        inputs = setup(backend, **sizes[size])
        stats = measure(backend, lambda inputs=inputs: run(backend, inputs),
                        warmup=0 if args.smoke else args.warmup, repeat=1 if args.smoke else args.repeat)
        row = {"suite": suite, "size": size, **sizes[size], "backend": backend.name,
               "device": backend.device.name if backend.device else platform.processor() or platform.machine(),
               **stats, **(report(backend, inputs, stats) if report else {})}
        results.append(row)
        print(json.dumps(row))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    return results
