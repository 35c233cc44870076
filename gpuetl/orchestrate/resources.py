"""The Dagster resource of the daily job: where it reads and writes and the settings it runs with, the flags the
commands take (`gpuetl fetch --demo --lake`, `build --config --config-set`, `graph`, `predict --run --out`). Its
defaults are the demo's (`make demo`, `make train`): override them in `dagster dev`'s launchpad or in
`make_definitions(resource=...)`."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from gpuetl.commands.common import demo_lake
from gpuetl.config import Settings, load_settings
from gpuetl.lake.outputs import Input
from gpuetl.remote.urls import is_url
from gpuetl.resources import config_path


class GpuetlResource(dg.ConfigurableResource):
    """Paths and settings of the lake -> dataset -> graphs -> predictions job (relative paths: from the folder
    Dagster runs in, the repository root under `make dagster`)."""

    settings: str = "configs/gpuetl.yaml"  # runtime settings (--settings)
    overrides: list[str] = Field(default_factory=list)  # --set a.b=value, e.g. backend=cpu
    demo: bool = True  # fetch from the built-in fake J-Quants server (fetch --demo), else from the J-Quants API
    lake: str | None = None  # None: <paths.data>/demo/raw with demo, else paths.lake
    fetch_start: str | None = None  # the first day fetched (fetch is resumable); None: demo.start (demo only)
    datasets: list[str] | None = None  # J-Quants datasets to fetch (None: fetch.datasets)
    dataset: str = "data/datasets/demo"  # the dataset folder (its graphs in <dataset>/graphs)
    dataset_config: str = "configs/dataset/default.yaml"
    dataset_overrides: list[str] = Field(default_factory=list)  # --config-set of the build (`end`: the day)
    graph_config: str = "configs/graph/default.yaml"
    graph_overrides: list[str] = Field(default_factory=list)
    run: str = "data/runs/gat"  # the finished run of `gpuetl train` / `gpuetl baseline` that scores
    predictions: str | None = None  # one folder per day under it; None: <paths.data>/predictions/<run name>
    format: str = "parquet"  # of the ranking file: parquet or csv

    def load(self) -> Settings:
        return load_settings(self.settings, self.overrides)

    def lake_path(self, settings: Settings) -> Path:
        if self.lake:
            return Path(self.lake)
        if not self.demo and is_url(settings.paths.lake):
            raise ValueError(f"paths.lake is a URL ({settings.paths.lake}): the Dagster job works on local folders; "
                             "set the resource's `lake` to a folder")
        return demo_lake(settings) if self.demo else Path(settings.paths.lake)

    def predictions_path(self, settings: Settings, day: str) -> Path:
        root = Path(self.predictions) if self.predictions else Path(settings.paths.data) / "predictions" / Path(
            self.run).name
        return root / day

    def config_inputs(self, *configs: str) -> list[Input]:
        """The config files a step reads (the settings and its own config): never an output."""
        return [Input(config_path(c), f"the {c} file") for c in (self.settings, *configs)]
