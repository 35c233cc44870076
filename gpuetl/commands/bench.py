"""`gpuetl bench`: time gpuetl's stages on the GPU and the CPU against Polars (its CPU and GPU engines) and
plain pandas, same numbers.

Each backend runs in a worker process of its own (gpuetl.bench.worker), the reference (gpuetl on the CPU)
first; each stage's result is printed on stderr as the worker finishes it. At every size (unless --no-check)
every stage output is checked equal to the reference's, a stage at a time so the parent holds two backends'
outputs of one stage, not all of them; a peer that disagrees gets no ratio and makes the command exit 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.npyio import NpzFile
from rich.console import Console

from gpuetl.bench.spec import BACKENDS, PROGRESS, REFERENCE, SIZES, STAGES, Size
from gpuetl.commands.common import MANIFEST, CommandError, config_inputs, local_only
from gpuetl.config import Settings


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bench", parents=[common],
                       help="benchmark gpuetl's stages (GPU, CPU) against Polars (CPU, GPU) and plain pandas")
    p.add_argument("--size", choices=list(SIZES), default="small",
                   help="; ".join(s.label for s in SIZES.values()) + " (default: %(default)s)")
    p.add_argument("--backends", default=",".join(BACKENDS), help="comma list of: %(default)s")
    p.add_argument("--stages", default=",".join(STAGES), help="comma list of: %(default)s")
    p.add_argument("--out", help="results folder (default: <paths.data>/bench/<size>/results)")
    p.add_argument("--lake", help="a raw lake to use instead of the size's cached synthetic one (checked)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per stage (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per stage, at most (default: %(default)s)")
    p.add_argument("--budget", type=float, default=60.0,
                   help="seconds of timed runs a stage aims at: a slow stage gets fewer repeats (default: %(default)s)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the equality check of the peers (done at every size otherwise)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of an earlier bench at --out (never anything else)")
    p.set_defaults(run=run)


def _choices(text: str, valid: tuple[str, ...], what: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in valid]
    if unknown or not chosen:
        raise CommandError(f"unknown {what} {', '.join(unknown) or '(none given)'}; valid: {', '.join(valid)}", 2)
    return [s for s in valid if s in chosen]


def unavailable(name: str) -> str | None:
    """Why a backend cannot run here (None when it can)."""
    if name == "gpu":
        from gpuetl.backend import probe_gpu

        probe = probe_gpu()
        return None if probe.usable else f"no usable GPU ({probe.reason})"
    if name in ("polars", "polars-gpu") and importlib.util.find_spec("polars") is None:
        return "polars is not installed: pip install 'gpuetl[bench]' (or pip install polars)"
    if name == "polars-gpu":
        from gpuetl.backend import probe_gpu

        probe = probe_gpu()
        if not probe.usable:
            return f"no usable GPU ({probe.reason})"
        if importlib.util.find_spec("cudf_polars") is None:
            return "cudf-polars is not installed: pip install 'gpuetl[gpu]'"
    return None


def run(args: argparse.Namespace, settings: Settings) -> int:
    from gpuetl.bench.inputs import ensure_lake, lake_dir
    from gpuetl.lake.outputs import Input, check_output_dir, claimed, replaced_dir

    size = SIZES[args.size]
    backends = _choices(args.backends, BACKENDS, "backends")
    stages = _choices(args.stages, STAGES, "stages")
    console = Console(stderr=True)
    for flag, value in (("--lake", args.lake), ("--out", args.out)):
        local_only(value or "", flag, "bench")
    lake = Path(args.lake) if args.lake else lake_dir(settings.paths.data, size)
    if args.lake and not (lake / MANIFEST).is_file():
        raise CommandError(f"--lake {lake} is not a lake (no {MANIFEST}): pass a lake `gpuetl fetch` or `gpuetl synth` "
                           "wrote", 2)
    # the size's dataset for the tensors/train stages is cached beside its lake; a given lake's is built afresh
    cache = None if args.lake else lake.parent / "dataset"
    out = Path(args.out) if args.out else Path(settings.paths.data) / "bench" / size.name / "results"
    read = [Input(lake, "the lake"), *([Input(cache, "the cached dataset")] if cache else []), *config_inputs(args)]
    check_output_dir(out, "bench", overwrite=args.overwrite, read=read)  # before the work
    with claimed(out):
        if not args.lake and ensure_lake(lake, size, progress=console.is_terminal):
            console.print(f"bench: wrote the synthetic lake of size {size.label} to {lake} (kept for later runs)")
        with replaced_dir(out, "bench", overwrite=args.overwrite, read=read) as tmp:
            code, table = _bench(args, size, backends, stages, lake, tmp, cache or tmp / "dataset", console)
    Console().print(table)
    written_files = [str(out / p) for p in ("results.json", "results.md", "results.png") if (out / p).exists()]
    _say(console, f"bench: results in {', '.join(written_files)}")
    return code


def _bench(args: argparse.Namespace, size: Size, backends: list[str], stages: list[str], lake: Path, out: Path,
           cache: Path, console: Console) -> tuple[int, Any]:
    """Run every backend's worker, check and write the results into `out`; the exit code and the console table."""
    from gpuetl.bench import report as rep
    from gpuetl.bench.inputs import bar_rows
    from gpuetl.bench.measure import LOAD_RETRIES, LOAD_TOLERANCE, machine

    check = not args.no_check
    dataset = _dataset(stages, lake, cache, console)
    facts = machine()
    status: dict[str, dict[str, Any]] = {}
    outputs: dict[str, dict[str, Any]] = {}
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    for name in sorted(backends, key=lambda b: b != REFERENCE):  # the reference first
        why = unavailable(name)
        if why:
            _say(console, f"bench: {name} skipped: {why}")
            status[name] = {"status": "skipped", "note": why}
            continue
        _say(console, f"bench: {name} ({', '.join(stages)}) ...")
        outputs[name] = _worker(name, stages, args, lake, work, check, dataset, console)
        status[name] = {"status": "ran", "device": outputs[name]["device"],
                        "process_peak_rss": outputs[name]["process_peak_rss"]}
    if not outputs:
        raise CommandError("no backend could run: " + "; ".join(f"{b}: {s['note']}" for b, s in status.items()))
    facts["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    gpu = outputs.get("gpu", {}).get("device")
    facts["gpu"] = gpu
    if gpu is None:
        facts["gpu_note"] = status.get("gpu", {}).get("note", "not run")
    rows = bar_rows(lake)
    results = [r | {"backend": b, "rows_per_s": rows / r["median_s"] if r.get("median_s") else None}
               for b, o in outputs.items() for r in o["results"]]
    if check:
        _check(results, work)
    doc = {"created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "size": {"name": size.name, "codes": size.codes, "start": size.start, "end": size.end,
                    "label": size.label if not args.lake else f"lake {lake}"},
           "rows": rows, "machine": facts, "backends": status, "checked": check,
           "settings": {"warmup": args.warmup, "repeat": args.repeat, "budget_s": args.budget,
                        "load_tolerance": LOAD_TOLERANCE, "load_retries": LOAD_RETRIES},
           "results": results}
    doc["ratios"] = rep.ratios(results)
    with_chart = importlib.util.find_spec("matplotlib") is not None
    if not with_chart:
        _say(console, "bench: matplotlib is not installed: no chart (pip install 'gpuetl[bench]')")
    rep.write(doc, out, with_chart)
    unequal = [f"{r['backend']} {r['stage']}" for r in results if r.get("equal") is False]
    if unequal:
        console.print(f"bench: outputs differ from {REFERENCE}'s: {', '.join(unequal)} (see results.md)")
    return (1 if unequal else 0), rep.console_table(doc)


def _dataset(stages: list[str], lake: Path, cache: Path, console: Console) -> Path | None:
    """The dataset the tensors/train stages read, built (untimed, default config) where those stages can run."""
    if not {"tensors", "train"} & set(stages) or importlib.util.find_spec("torch") is None:
        return None
    from gpuetl.bench.inputs import ensure_dataset

    console.print("bench: building the dataset the tensors/train stages read (untimed) ...")
    return ensure_dataset(lake, cache)


def _worker(name: str, stages: list[str], args: argparse.Namespace, lake: Path, work: Path, check: bool,
            dataset: Path | None, console: Console) -> dict[str, Any]:
    """Run one backend's worker, printing each stage's line as it ends; its stderr (and any other output) is
    kept in work/<name>.log."""
    from gpuetl.bench.report import progress_line

    job = {"backend": name, "stages": stages, "warmup": args.warmup, "repeat": args.repeat, "budget_s": args.budget,
           "check": check, "lake": str(lake), "settings": args.settings, "overrides": list(args.overrides),
           "result": str(work / f"{name}.json"), "canonical": str(work / f"{name}.npz"),
           "dataset": str(dataset) if dataset else None}
    path = work / f"{name}-job.json"
    path.write_text(json.dumps(job))
    log = work / f"{name}.log"
    log.write_text("")
    with log.open("a") as err:  # appended to by the worker's stderr and by this loop, line by line
        proc = subprocess.Popen([sys.executable, "-m", "gpuetl.bench.worker", str(path)], stdout=subprocess.PIPE,
                                stderr=err, text=True, bufsize=1)
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                row = _progress(line)
                if row is None:
                    err.write(line)
                    err.flush()
                else:
                    _say(console, progress_line(name, row))
        returncode = proc.wait()
    if returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise CommandError(f"the {name} worker failed: {tail[0]} (log: {log})")
    result: dict[str, Any] = json.loads(Path(job["result"]).read_text())
    return result


def _say(console: Console, line: str) -> None:
    """One progress line as written: no markup (a note's `gpuetl[gpu]` is text), never wrapped."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _progress(line: str) -> dict[str, Any] | None:
    """The result row a worker's progress line carries, else None (any other output of the worker)."""
    if not line.startswith(PROGRESS):
        return None
    try:
        row = json.loads(line[len(PROGRESS):])
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None


def _check(results: list[dict[str, Any]], work: Path) -> None:
    """Mark every result equal or not to the reference backend's output of the same stage. The .npz files are
    read lazily, a stage at a time (np.load reads a key when asked), so the parent's memory holds one stage's
    outputs of the reference and of one peer, not every output of every backend: the medium size fits."""
    from gpuetl.bench.compare import mismatches

    files: dict[str, NpzFile] = {path.stem: np.load(path) for path in work.glob("*.npz")}
    try:
        ref = files.get(REFERENCE)
        for stage in STAGES:
            rows = [r for r in results if r["stage"] == stage and r["status"] == "ok"]
            if not rows or stage in ("tensors", "train"):
                continue
            want = _stage(ref, stage)
            graphs = _stage(ref, "graphs") if stage == "analytics" else {}  # to score the partitions on
            shape = tuple(int(v) for v in graphs["grid"]) if "grid" in graphs else None
            for r in rows:
                if r["backend"] == REFERENCE:
                    r["equal"] = True
                elif not want:
                    r["note"] = "; ".join(filter(None, [r.get("note"),
                                                        f"not checked: no {REFERENCE} output of {stage}"]))
                else:
                    got = _stage(files.get(r["backend"]), stage)
                    r["mismatches"] = mismatches(stage, got, want, graphs or None, shape)  # type: ignore[arg-type]
                    r["equal"] = not r["mismatches"]
                    del got
            del want, graphs
    finally:
        for npz in files.values():
            npz.close()
        for path in work.glob("*.npz"):
            path.unlink()  # the stage outputs are large and served their purpose


def _stage(arrays: NpzFile | None, stage: str) -> dict[str, np.ndarray]:
    """One stage's arrays of an opened .npz (None: no file), read now."""
    if arrays is None:
        return {}
    return {k.split("/", 1)[1]: arrays[k] for k in arrays.files if k.startswith(f"{stage}/")}
