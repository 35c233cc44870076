"""Synthetic market build time: the core (calendar, universe, returns, prices), then every dataset.

    python -m benchmarks.bench_synth --codes 4000 --years 10 --seed 1

Prints one JSON row: total seconds (core + every dataset), and seconds and rows per dataset. The
generator is NumPy on the host whatever the backend (it feeds the fake server, tests and demos), so
`--backend` is accepted for `benchmarks.run` and recorded as "cpu". Each dataset is released after
it is timed, which keeps a 4,000 x 10-year run within a few GB.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from gpuetl.synth import MarketConfig, build_market

SMOKE = {"codes": 50, "years": 1}


def run_once(codes: int, years: int, seed: int, end: str) -> dict[str, Any]:
    start = f"{int(end[:4]) - years + 1}-01-01"
    t0 = time.perf_counter()
    market = build_market(MarketConfig(codes=codes, start=start, end=end, seed=seed))
    core = time.perf_counter() - t0
    datasets: dict[str, dict[str, float | int]] = {}
    for name in market.tables:
        t = time.perf_counter()
        rows = len(market.table(name))
        datasets[name] = {"seconds": round(time.perf_counter() - t, 4), "rows": rows}
        market.tables.release(name)
    return {"total_s": time.perf_counter() - t0, "core_s": round(core, 4), "datasets": datasets}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="bench_synth", description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=4000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--end", default="2024-12-30", help="last date of the range (YYYY-MM-DD)")
    parser.add_argument("--repeat", type=int, default=1, help="builds to time; the median total is reported")
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE['codes']} codes x {SMOKE['years']} year (CI)")
    parser.add_argument("--backend", choices=("auto", "gpu", "cpu"), default="auto",
                        help="accepted for benchmarks.run; the generator always runs on the host")
    parser.add_argument("--out", type=Path, help="write the result rows as JSON here")
    args = parser.parse_args(argv)
    codes, years = (SMOKE["codes"], SMOKE["years"]) if args.smoke else (args.codes, args.years)
    runs = [run_once(codes, years, args.seed, args.end) for _ in range(max(args.repeat, 1))]
    totals = [r["total_s"] for r in runs]
    row = {"suite": "synth", "size": f"{codes}x{years}y", "codes": codes, "years": years, "seed": args.seed,
           "backend": "cpu", "device": platform.processor() or platform.machine(),
           "median_s": statistics.median(totals), "min_s": min(totals), "max_s": max(totals), "repeat": len(runs),
           "core_s": runs[-1]["core_s"], "datasets": runs[-1]["datasets"]}
    print(json.dumps(row))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps([row], indent=2))
    return [row]


if __name__ == "__main__":
    main()
