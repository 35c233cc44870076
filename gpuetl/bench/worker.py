"""One backend's benchmark stages, in a process of its own (so its memory, threads and GPU pool are its own).

    python -m gpuetl.bench.worker JOB.json

JOB.json (written by gpuetl.commands.bench): backend, stages, warmup, repeat, budget_s, check, lake, settings,
overrides, result (the JSON to write), canonical (the .npz for the stage outputs when check is set). A stage
the backend does not have, or whose input stage failed, is recorded as skipped with the reason; a stage that
raises is recorded as an error (its one-line message) and the others still run.

As each stage ends, one line `PROGRESS` + JSON (its result row; `input: true` for an untimed input stage)
goes to stdout, flushed, for the parent to print while the worker runs. Each stage's outputs are written to
the .npz as soon as they are made, so neither they nor the memory they hold pile up until the end (and the
peak RSS of a later stage does not count them).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
import time
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gpuetl import backend as backend_mod
from gpuetl.bench.gpuetl_stages import GpuetlStages
from gpuetl.bench.inputs import load_inputs
from gpuetl.bench.measure import timed
from gpuetl.bench.pandas_peer import PandasStages
from gpuetl.bench.spec import GPUETL_BACKENDS, NEEDS, PROGRESS, with_needs
from gpuetl.config import load_settings
from gpuetl.stages import peak_host_bytes

Emit = Callable[[dict[str, Any]], None]


def make_runner(job: dict[str, Any]) -> tuple[Any, Any, dict[str, Any] | None]:
    """(stages object, gpuetl Backend or None, device facts or None) for the job's backend."""

    name = job["backend"]
    cpu = backend_mod.create(load_settings(job["settings"], [*job["overrides"], "backend=cpu"]))
    inputs = load_inputs(cpu, Path(job["lake"]))
    if name in GPUETL_BACKENDS:
        b = backend_mod.init(load_settings(job["settings"], [*job["overrides"], f"backend={name}"]))
        device = None
        if b.device is not None:
            d = b.device
            device = {"name": d.name, "memory_gib": round(d.total_bytes / 2**30, 1),
                      "compute_capability": d.compute_capability}
        dataset = Path(job["dataset"]) if job.get("dataset") else None
        return GpuetlStages(b, inputs, dataset), b, device
    if name in ("polars", "polars-gpu"):
        from gpuetl.bench.polars_peer import PolarsStages  # polars: the bench extra, optional

        return PolarsStages(inputs, engine="gpu" if name == "polars-gpu" else "auto"), None, None
    if name == "pandas-naive":

        return PandasStages(inputs), None, None
    raise ValueError(f"unknown backend {name!r}")


def run(job: dict[str, Any], emit: Emit | None = None) -> dict[str, Any]:
    """The job's stages, each result row also given to `emit` as it is made (untimed inputs too)."""
    runner, backend, device = make_runner(job)
    chosen = set(job["stages"])
    state: dict[str, Any] = {}
    failed: dict[str, str] = {}  # stage -> why its output is not there
    results: list[dict[str, Any]] = []
    say = emit or (lambda row: None)
    with _Canonical(job["canonical"] if job["check"] and job.get("canonical") else None) as canonical:
        for stage in with_needs(job["stages"]):
            row: dict[str, Any] = {"stage": stage}
            blocked = [n for n in NEEDS[stage] if n in failed]
            fn: Any = getattr(runner, stage, None)
            if blocked:
                failed[stage] = f"needs {blocked[0]}: {failed[blocked[0]]}"
            elif fn is None:
                failed[stage] = f"{job['backend']} has no {stage} stage"
            elif stage in ("tensors", "train") and importlib.util.find_spec("torch") is None:
                failed[stage] = "torch is not installed: pip install 'gpuetl[train]'"
            if stage in failed:
                if stage in chosen:
                    results.append(row | {"status": "skipped", "note": failed[stage]})
                    say(results[-1])
                continue
            fallbacks = getattr(runner, "fallbacks", None)  # the Polars GPU engine's runs on its CPU engine
            if fallbacks is not None:
                fallbacks.clear()
            try:
                if stage in chosen:
                    timing, first, last = timed(backend, functools.partial(fn, state), warmup=job["warmup"],
                                                repeat=job["repeat"], budget_s=job["budget_s"],
                                                keep_first=job["check"])
                    row |= {"status": "ok", **timing.summary()}
                else:  # an input of a chosen stage: run once, untimed
                    t0 = time.perf_counter()
                    first = last = fn(state)
                    row |= {"status": "ok", "input": True, "seconds": [time.perf_counter() - t0]}
                if job["check"] and stage not in ("tensors", "train"):
                    canonical.add(stage, runner.canonical(stage, first))
                del first
                state[stage] = last
            except Exception as err:  # a stage's failure is a result to report; the other stages still run
                failed[stage] = f"{type(err).__name__}: {err}".splitlines()[0]
                traceback.print_exc(file=sys.stderr)
                if stage in chosen:
                    results.append(row | {"status": "error", "note": failed[stage]})
                    say(results[-1])
                continue
            if fallbacks:
                row["note"] = "ran on the Polars CPU engine in part: " + "; ".join(sorted(set(fallbacks)))
            if stage in chosen:
                results.append(row)
            say(row)
    return {"backend": job["backend"], "device": device, "results": results, "process_peak_rss": peak_host_bytes()}


class _Canonical:
    """The stage outputs for the equality check, written into an .npz (np.load reads it) stage by stage."""

    def __init__(self, path: str | None) -> None:
        self.zip = zipfile.ZipFile(path, "w", allowZip64=True) if path else None

    def __enter__(self) -> _Canonical:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.zip is not None:
            self.zip.close()

    def add(self, stage: str, arrays: dict[str, np.ndarray]) -> None:
        if self.zip is None:
            return
        for name, array in arrays.items():
            with self.zip.open(f"{stage}/{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)


def _print_progress(row: dict[str, Any]) -> None:
    print(PROGRESS + json.dumps(row, default=str), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(args[0]).read_text())
    Path(job["result"]).write_text(json.dumps(run(job, _print_progress), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
