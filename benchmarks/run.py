"""Run every benchmark suite (benchmarks/bench_*.py), each in its own process, and write JSON + Markdown.

    python -m benchmarks.run [--backend gpu|cpu|auto] [--smoke] [--suites ewm,synth] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def suites() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def markdown(rows: list[dict]) -> str:
    lines = ["| suite | size | backend | device | median s | min s |", "|---|---|---|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['suite']} | {r['size']} | {r['backend']} | {r['device']} | "
                     f"{r['median_s']:.4f} | {r['min_s']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.run")
    parser.add_argument("--backend", choices=("auto", "gpu", "cpu"), default="auto")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--suites", default=",".join(suites()))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    wanted = [s for s in args.suites.split(",") if s]
    unknown = sorted(set(wanted) - set(suites()))
    if unknown:
        parser.error(f"unknown suites {unknown}; valid: {', '.join(suites())}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows: list[dict] = []
    for suite in wanted:
        part = args.out / f"{stamp}-{suite}.json"
        cmd = [sys.executable, "-m", f"benchmarks.bench_{suite}", "--backend", args.backend, "--out", str(part)]
        subprocess.run(cmd + (["--smoke"] if args.smoke else []), check=True, cwd=HERE.parent)
        rows += json.loads(part.read_text())
    (args.out / f"{stamp}.json").write_text(json.dumps(rows, indent=2))
    (args.out / f"{stamp}.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
