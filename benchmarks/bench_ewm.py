"""Segmented EWM (mean and variance, halflife 30) over a (codes x days) panel, on either backend."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.harness import main
from gpuetl.backend import Backend
from gpuetl.kernels.ewm import center_of_mass

SIZES = {
    "500x750": {"codes": 500, "days": 750},
    "4000x2450": {"codes": 4000, "days": 2450},  # 4,000 codes x 10 years: ~9.8M rows
}


def setup(backend: Backend, codes: int, days: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    values = rng.standard_normal(codes * days)
    values[rng.random(values.size) < 0.02] = np.nan
    offsets = np.arange(0, codes * days + 1, days, dtype=np.int64)
    return {"values": backend.xp.asarray(values), "offsets": backend.xp.asarray(offsets),
            "com": center_of_mass(halflife=30.0)}


def run(backend: Backend, inputs: dict[str, Any]) -> None:
    ewm = backend.kernels.segmented_ewm
    ewm(inputs["values"], inputs["offsets"], com=inputs["com"], stat="mean")
    ewm(inputs["values"], inputs["offsets"], com=inputs["com"], stat="var")


if __name__ == "__main__":
    main("ewm", SIZES, setup, run, smoke_size="500x750")
