"""`gpuetl update` by one business day against the full rebuild it replaces, on a synthetic lake.

Runs the commands as a user would (`python -m gpuetl ...`, CPU backend), each timed from outside:

1. `gpuetl build` to the lake's second-to-last day, then `gpuetl graph` of it (the full rebuild, timed);
2. `gpuetl update --no-fetch` to the lake's last day (timed);
3. `gpuetl build` (and, unless --no-reference-graphs, `gpuetl graph`) to the last day: the reference;
4. checks that the updated dataset is the reference, file for file: equal bytes, or else equal Arrow tables
   (every year file, codes.parquet and every graphs partition; metadata apart from run details).

Writes the facts of the machine (CPU, cores, memory, load average before and after every step) and the timings
as JSON to --out, and prints them as Markdown. The lake: `gpuetl synth --codes 4000 --start 2015-01-05 --end
2024-12-30 --out data/synth4000` (a few minutes); the work folder (two datasets of ~8 GB each) is replaced.

    python -m benchmarks.bench_update --lake data/synth4000 --work data/bench-update \
        --graph-set features.pagerank=false --graph-set features.louvain=false --out update-4000x10y.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from gpuetl.graphs.io import _RUN_DETAILS as RUN_DETAILS
from gpuetl.lake import Manifest, Unit


def machine() -> dict[str, Any]:
    """The facts a timing needs beside it: CPU model, cores, memory, Python, the load average now."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform(), "load_average": os.getloadavg()}


def step(name: str, argv: list[str], log: list[dict[str, Any]]) -> dict[str, Any]:
    """Run one gpuetl command (`--json`), timed; its JSON summary and the load average around it go to `log`."""
    before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gpuetl", *argv, "--backend", "cpu", "--no-progress", "--json"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    summary = json.loads(proc.stdout) if proc.stdout.strip() else {}
    entry = {"step": name, "wall_s": round(wall, 1), "load_before": before, "load_after": os.getloadavg(),
             "stderr": [line for line in proc.stderr.splitlines() if line.startswith("gpuetl ")],
             "summary": {k: v for k, v in summary.items() if k not in ("timings_s", "graph_timings_s")},
             "timings_s": summary.get("timings_s", {}), "graph_timings_s": summary.get("graph_timings_s", {})}
    log.append(entry)
    print(f"{name}: {wall:.1f} s (load {before[0]:.1f} -> {entry['load_after'][0]:.1f})", file=sys.stderr)
    return entry


def same_files(a: Path, b: Path) -> dict[str, Any]:
    """Compare two datasets (with graphs): per Parquet folder, equal bytes or equal tables; the JSON files apart from
    run details. Returns what was compared and what differs."""
    folders: dict[str, dict[str, list[Path]]] = {}
    for root, side in ((a, "a"), (b, "b")):
        for f in sorted(root.rglob("*.parquet")):
            folders.setdefault(f.parent.relative_to(root).as_posix(), {"a": [], "b": []})[side].append(f)
    differ, by_bytes, by_values = [], 0, 0
    for key, sides in sorted(folders.items()):
        fa, fb = sides["a"], sides["b"]
        if len(fa) == len(fb) == 1 and _sha(fa[0]) == _sha(fb[0]):
            by_bytes += 1
            continue
        ta = pq.ParquetDataset(fa).read() if fa else None
        tb = pq.ParquetDataset(fb).read() if fb else None
        if ta is None or tb is None or not ta.equals(tb):
            differ.append(key)
        else:
            by_values += 1
    for name in ("metadata.json", "graphs/graphs.json"):
        ma, mb = (_made(root / name) for root in (a, b))
        if ma != mb:
            differ.append(name)
    return {"folders": len(folders), "equal_bytes": by_bytes, "equal_values": by_values, "differ": differ}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _made(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in RUN_DETAILS}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| step | wall time | load average before -> after (1 min) |", "|---|---:|---|"]
    for s in result["steps"]:
        lines.append(f"| {s['step']} | {s['wall_s']:.1f} s | {s['load_before'][0]:.2f} -> {s['load_after'][0]:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lake", required=True, help="a synthetic lake (gpuetl synth)")
    p.add_argument("--work", required=True, help="a folder for the datasets (replaced)")
    p.add_argument("--config-set", action="append", default=[], help="dataset-config overrides (every build)")
    p.add_argument("--graph-set", action="append", default=[], help="graph-config overrides (every graph run)")
    p.add_argument("--no-reference-graphs", action="store_true", help="skip the reference's graphs (and their check)")
    p.add_argument("--out", default="update.json", help="the JSON results file")
    args = p.parse_args(argv)
    lake, work = Path(args.lake).absolute(), Path(args.work).absolute()
    days = sorted(Unit.parse(u).start.isoformat() for u in Manifest.load(lake).units("bars_daily"))
    prev, last = days[-2], days[-1]
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cset = [a for v in args.config_set for a in ("--config-set", v)]
    gset = [a for v in args.graph_set for a in ("--config-set", v)]
    result: dict[str, Any] = {"machine": machine(), "lake": str(lake), "days": len(days), "from": prev, "to": last,
                              "config_set": args.config_set, "graph_set": args.graph_set, "steps": []}
    log = result["steps"]
    ds, ref = work / "ds", work / "reference"
    step("full build (to the day before)", ["build", "--lake", str(lake), "--out", str(ds), *cset,
                                            "--config-set", f"end={prev}"], log)
    step("full graphs (to the day before)", ["graph", "--dataset", str(ds), "--lake", str(lake), *gset], log)
    step("update by one day", ["update", "--dataset", str(ds), "--lake", str(lake), "--no-fetch", "--end", last], log)
    step("full build (reference)", ["build", "--lake", str(lake), "--out", str(ref), *cset, "--config-set",
                                    f"end={last}"], log)
    if not args.no_reference_graphs:
        step("full graphs (reference)", ["graph", "--dataset", str(ref), "--lake", str(lake), *gset], log)
    else:
        shutil.rmtree(ds / "graphs")
    result["check"] = same_files(ds, ref)
    result["machine"]["load_average_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(markdown(result))
    print(json.dumps(result["check"]))
    return 0 if not result["check"]["differ"] else 1


if __name__ == "__main__":
    sys.exit(main())
