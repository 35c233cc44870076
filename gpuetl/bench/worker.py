"""One backend's benchmark stages, in a process of its own (so its memory, threads and GPU pool are its own).

    python -m gpuetl.bench.worker JOB.json

JOB.json (written by gpuetl.commands.bench): backend, stages, warmup, repeat, budget_s, check, lake, settings,
overrides, result (the JSON to write), canonical (the .npz for the stage outputs when check is set). A stage
the backend does not have, or whose input stage failed, is recorded as skipped with the reason; a stage that
raises is recorded as an error (its one-line message) and the others still run.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from gpuetl import backend as backend_mod
from gpuetl.bench.gpuetl_stages import GpuetlStages
from gpuetl.bench.inputs import load_inputs
from gpuetl.bench.measure import timed
from gpuetl.bench.pandas_peer import PandasStages
from gpuetl.bench.spec import GPUETL_BACKENDS, NEEDS, with_needs
from gpuetl.config import load_settings
from gpuetl.stages import peak_host_bytes


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
    if name == "polars":
        from gpuetl.bench.polars_peer import PolarsStages  # polars: the bench extra, optional

        return PolarsStages(inputs), None, None
    if name == "pandas-naive":

        return PandasStages(inputs), None, None
    raise ValueError(f"unknown backend {name!r}")


def run(job: dict[str, Any]) -> dict[str, Any]:
    runner, backend, device = make_runner(job)
    chosen = set(job["stages"])
    state: dict[str, Any] = {}
    failed: dict[str, str] = {}  # stage -> why its output is not there
    results: list[dict[str, Any]] = []
    canonical: dict[str, np.ndarray] = {}
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
            continue
        try:
            if stage in chosen:
                timing, first, last = timed(backend, functools.partial(fn, state), warmup=job["warmup"],
                                            repeat=job["repeat"], budget_s=job["budget_s"], keep_first=job["check"])
                row |= {"status": "ok", **timing.summary()}
            else:
                first = last = fn(state)  # an input of a chosen stage: run once, untimed
            if job["check"] and stage not in ("tensors", "train"):
                canonical |= {f"{stage}/{k}": v for k, v in runner.canonical(stage, first).items()}
            del first
            state[stage] = last
        except Exception as err:  # a stage's failure is a result to report; the other stages still run
            failed[stage] = f"{type(err).__name__}: {err}".splitlines()[0]
            traceback.print_exc(file=sys.stderr)
            if stage in chosen:
                results.append(row | {"status": "error", "note": failed[stage]})
            continue
        if stage in chosen:
            results.append(row)
    if job["check"] and job.get("canonical"):
        np.savez(job["canonical"], **canonical)  # type: ignore[arg-type]  # numpy's stub reads **kw as allow_pickle
    return {"backend": job["backend"], "device": device, "results": results, "process_peak_rss": peak_host_bytes()}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(args[0]).read_text())
    Path(job["result"]).write_text(json.dumps(run(job), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
