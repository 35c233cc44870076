"""The dataset build (default config) on a synthetic lake, on either backend.

The lake is written once per size by `gpuetl synth` logic (every dataset `gpuetl fetch` pulls by default,
so enrichment runs too) into benchmarks/results/lakes/ and reused; the timed part is the whole build,
from Parquet to Parquet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.harness import main
from gpuetl.backend import Backend
from gpuetl.config import load_settings
from gpuetl.dataset.build import build_dataset
from gpuetl.dataset.config import load_dataset_config
from gpuetl.lake import Manifest
from gpuetl.synth import MarketConfig, build_market
from gpuetl.synth.lake import write_lake

HERE = Path(__file__).resolve().parent
SIZES = {
    "500x3y": {"codes": 500, "start": "2022-01-04", "end": "2024-12-30"},
    "4000x10y": {"codes": 4000, "start": "2015-01-05", "end": "2024-12-30"},
}
DATASETS = list(load_settings().fetch.datasets)


def setup(backend: Backend, codes: int, start: str, end: str) -> dict[str, Any]:
    lake = HERE / "results" / "lakes" / f"{codes}-{start}-{end}"
    if not set(DATASETS) <= set(Manifest.load(lake).datasets()):
        write_lake(build_market(MarketConfig(codes=codes, start=start, end=end, seed=7)), lake, DATASETS,
                   chunk_days=366, progress=False)
    out = HERE / "results" / "datasets" / f"{codes}-{start}-{end}"  # rewritten by every run
    return {"lake": lake, "out": out, "config": load_dataset_config("configs/dataset/default.yaml")}


def run(backend: Backend, inputs: dict[str, Any]) -> None:
    build_dataset(backend, inputs["config"], inputs["lake"], inputs["out"], progress=False, overwrite=True)


if __name__ == "__main__":
    main("build", SIZES, setup, run, smoke_size="500x3y")
