"""The as-of join of a daily (code x day) panel against every statement filed over the same years.

What the statements enrichment does for each row: the latest filing of its code effective on or before
the day (`gpuetl.enrich.asof.asof_join`: group keys, a stable sort of the filings by (code, effective
day), the `segmented_asof` kernel, and the index mapped back). Filings: one per code and quarter at a
random day of the quarter's second month, plus 5% corrections a few weeks later, in no particular order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.harness import main
from gpuetl.backend import Backend
from gpuetl.enrich.asof import asof_join

SIZES = {
    "500x750": {"codes": 500, "days": 750},
    "4000x2450": {"codes": 4000, "days": 2450},  # 4,000 codes x 10 years (9.8M rows) vs ~168k filings
}


def setup(backend: Backend, codes: int, days: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    left_code = np.repeat(np.arange(codes, dtype=np.int64), days)
    left_day = np.tile(np.arange(days, dtype=np.int64), codes)
    quarters = days // 61 + 1  # ~245 business days a year
    code = np.repeat(np.arange(codes, dtype=np.int64), quarters)
    day = np.tile(np.arange(quarters, dtype=np.int64) * 61, codes) + rng.integers(20, 41, codes * quarters)
    fix = rng.random(code.size) < 0.05
    code, day = np.concatenate([code, code[fix]]), np.concatenate([day, day[fix] + rng.integers(5, 30, fix.sum())])
    shuffle = rng.permutation(code.size)
    xp = backend.xp
    return {"left": (xp.asarray(left_code), xp.asarray(left_day)),
            "right": (xp.asarray(code[shuffle]), xp.asarray(day[shuffle]))}


def run(backend: Backend, inputs: dict[str, Any]) -> None:
    (lcode, lday), (rcode, rday) = inputs["left"], inputs["right"]
    asof_join(backend, lcode, lday, rcode, rday)


if __name__ == "__main__":
    main("asof", SIZES, setup, run, smoke_size="500x750")
