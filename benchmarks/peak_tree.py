"""Peak resident memory of a command's whole process tree (the command, Dask's nanny and worker processes),
sampled every 0.25 s with psutil; also each process's own peak and the wall time.

    python -m benchmarks.peak_tree -- gpuetl build --lake data/synth4000 --out /tmp/ds --cluster local

Prints one JSON object (stdout); the command's own output goes to stderr. Sampling misses a peak shorter than
the interval, so the figure is a lower bound of the true peak.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil

INTERVAL_S = 0.25


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def run(argv: list[str]) -> dict[str, object]:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=sys.stderr, stderr=sys.stderr)
    root = psutil.Process(proc.pid)
    peak_total, peak_each, most = 0, {}, 0
    while proc.poll() is None:
        total, alive = 0, 0
        for p in _tree(root):
            try:
                rss = p.memory_info().rss
                key = f"{p.pid} {' '.join(p.cmdline()[:3])[:80]}"
            except psutil.Error:  # gone, or a zombie waiting for its parent, between the listing and now
                continue
            alive += 1
            total += rss
            peak_each[key] = max(peak_each.get(key, 0), rss)
        peak_total = max(peak_total, total)
        most = max(most, alive)
        time.sleep(INTERVAL_S)
    gib = 2**30
    return {"command": argv, "exit": proc.returncode, "wall_s": round(time.perf_counter() - start, 1),
            "peak_tree_gib": round(peak_total / gib, 2), "processes": most,
            "peak_per_process_gib": {k: round(v / gib, 2) for k, v in sorted(peak_each.items(), key=lambda kv: -kv[1])
                                     if v > 0.05 * gib}}


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    print(json.dumps(run(args), indent=1))
