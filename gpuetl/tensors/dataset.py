"""`gpuetl.open_dataset`: a built dataset (and its daily graphs) as frames and device tensors.

    ds = gpuetl.open_dataset("data/datasets/demo", backend="cpu")
    panel = ds.panel(ds.normalized[:8])            # (dates x codes x 8) torch tensors, masks, targets
    edge_index, edge_weight = ds.edges("2024-06-03")

The frame comes from the backend's reader (cuDF straight to the device on the GPU) without the `year=`
partition column; the column lists come from metadata.json; tensors share the backend arrays' memory (DLPack).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gpuetl import backend as backend_mod
from gpuetl.backend import Backend
from gpuetl.config import load_settings
from gpuetl.graphs.io import StaleGraphsError, check_graphs
from gpuetl.remote import is_url, remote_input
from gpuetl.tensors.graphs import DailyGraphs, DatasetError, graph_dir, load_daily_graphs
from gpuetl.tensors.panel import PanelTensors, Source, panel_axes, read_panel

KEYS = ("Code", "Date")


class Dataset:
    """A built dataset folder: metadata, the column lists, frames and tensors on one backend."""

    def __init__(self, path: str | Path, backend: Backend) -> None:
        self.path = Path(path)
        self.backend = backend
        meta = self.path / "metadata.json"
        if not meta.is_file():
            raise DatasetError(f"no dataset at {self.path} (no metadata.json): build it with `gpuetl build` "
                               "(`make demo` for the demo market)")
        self.metadata: dict[str, Any] = json.loads(meta.read_text())
        self._graphs_meta: dict[str, Any] | None = None
        self._graphs_problem: str | None = None  # why the graphs beside it cannot be read (stale), or None
        if (graph_dir(self.path) / "graphs.json").is_file():
            try:
                self._graphs_meta = check_graphs(self.path)
            except StaleGraphsError as err:
                self._graphs_problem = str(err)

    def __repr__(self) -> str:
        return (f"Dataset({str(self.path)!r}, backend={self.backend.name}, rows={self.metadata['rows']}, "
                f"codes={self.metadata['codes']}, dates={self.metadata['dates']}, features={len(self.features)})")

    # ----------------------------------------------------------------------------------- column lists

    @property
    def feature_groups(self) -> dict[str, list[str]]:
        return dict(self.metadata["features_by_group"])

    @property
    def features(self) -> list[str]:
        """Raw feature columns, by group in build order."""
        return [f for names in self.metadata["features_by_group"].values() for f in names]

    @property
    def empty_features(self) -> list[str]:
        """Features with no value in any row (metadata.json coverage): what the lake lacks the data for, e.g. the
        sector features of a lake without a master."""
        coverage = self.metadata.get("coverage", {})
        return [f for f in self.features if f in coverage and not coverage[f]["share"]]

    @property
    def suffix(self) -> str:
        return str(self.metadata["config"]["normalize"]["suffix"])

    @property
    def normalized(self) -> list[str]:
        """The per-day normalised columns (`<feature><suffix>`, e.g. `ret_1d_z`)."""
        return [c for c in self.metadata["normalized"] if c.endswith(self.suffix)]

    @property
    def masks(self) -> list[str]:
        """The missing-value flags (`<feature>_missing`: 1 where the raw value was missing)."""
        return [c for c in self.metadata["normalized"] if c.endswith("_missing")]

    @property
    def targets(self) -> list[str]:
        return list(self.metadata["targets"])

    @property
    def default_label(self) -> str:
        return str(self.metadata["default_label"])

    @property
    def has_graphs(self) -> bool:
        """Whether the dataset has graphs beside it (`gpuetl graph` ran), fresh or stale."""
        return self._graphs_meta is not None or self._graphs_problem is not None

    @property
    def graphs_metadata(self) -> dict[str, Any] | None:
        """graphs.json of the dataset's graphs, None when it has none; stale graphs (made from an earlier build)
        are refused here, so no reader uses them (DatasetError naming `gpuetl graph`)."""
        if self._graphs_problem is not None:
            raise DatasetError(self._graphs_problem)
        return self._graphs_meta

    @property
    def graph_features(self) -> list[str]:
        """Per-(Code, Date) graph features (`graph_*`), empty when `gpuetl graph` has not run."""
        meta = self.graphs_metadata
        return list(meta["features"]) if meta else []

    # ----------------------------------------------------------------------------------- frames

    def files(self) -> list[str]:
        files = sorted(str(f) for f in (self.path / "data").rglob("*.parquet"))
        if not files:
            raise DatasetError(f"no data files under {self.path / 'data'}: rebuild it with `gpuetl build`")
        return files

    def frame(self, columns: Sequence[str] | None = None) -> Any:
        """Code, Date and `columns` (default: all) as a cuDF/pandas frame, sorted by (Date, Code).

        `graph_*` columns are joined from the graphs on (Code, Date); no partition column appears.
        """
        wanted = list(columns) if columns is not None else None
        known = {*KEYS, *self.features, *self.metadata["normalized"], *self.targets}
        graph_cols = [c for c in wanted or () if c not in known and c.startswith("graph_")]
        graph_features = self.graph_features if graph_cols else []  # stale graphs: refused here
        missing = [c for c in wanted or () if c not in known and c not in graph_features]
        if missing:
            raise DatasetError(f"{self.path}: no column(s) {', '.join(missing)}")
        own = None if wanted is None else list(KEYS) + [c for c in wanted if c not in graph_cols and c not in KEYS]
        frame = self.backend.read_parquet(self.files(), columns=own)
        if graph_cols:
            files = sorted(str(f) for f in (graph_dir(self.path) / "features").rglob("*.parquet"))
            extra = self.backend.read_parquet(files, columns=[*KEYS, *graph_cols])
            frame = frame.merge(extra, on=list(KEYS), how="left")
        return frame.sort_values(["Date", "Code"]).reset_index(drop=True)

    # ----------------------------------------------------------------------------------- tensors

    def panel(self, columns: Sequence[str], device: torch.device | str | None = None,
              targets: Sequence[str] | None = None) -> PanelTensors:
        """Dense (dates x codes x columns) tensors + row mask + targets (default: all), via DLPack; read part by part
        into the arrays (`read_panel`), never as one frame of every row."""
        targets = self.targets if targets is None else list(targets)
        wanted = [*columns, *targets]
        known = {*self.features, *self.metadata["normalized"], *self.targets}
        graph_cols = [c for c in wanted if c not in known and c.startswith("graph_")]
        graph_features = self.graph_features if graph_cols else []  # stale graphs: refused here
        missing = [c for c in wanted if c not in known and c not in graph_features]
        if missing:
            raise DatasetError(f"{self.path}: no column(s) {', '.join(missing)}")
        sources = [Source(self.files(), [c for c in wanted if c not in graph_cols])]
        if graph_cols:
            sources.append(Source(sorted(str(f) for f in (graph_dir(self.path) / "features").rglob("*.parquet")),
                                  graph_cols, rows=False))
        return read_panel(self.backend, sources, list(columns), targets, self.dates, self.codes, device)

    @functools.cached_property
    def _axes(self) -> tuple[np.ndarray, np.ndarray]:
        return panel_axes(self.backend, self.files())

    @property
    def dates(self) -> np.ndarray:
        """The date axis (datetime64[D], ascending), as `panel` uses it."""
        return self._axes[0]

    @property
    def codes(self) -> np.ndarray:
        """The code axis (sorted), as `panel` and `edges` use it."""
        return self._axes[1]

    def graphs(self, device: torch.device | str | None = None,
               sector: tuple[torch.Tensor, torch.Tensor, int] | None = None) -> DailyGraphs:
        """Every day's edges on the device, for the panel's date and code axes; with `sector` ((D, N) sector codes
        and sizes of the panel, peers), the sector relation too, as `DailyGraphs.with_sector` adds it."""
        if self.graphs_metadata is None:
            raise DatasetError(f"no graphs at {graph_dir(self.path)}: run `gpuetl graph --dataset {self.path}`")
        return load_daily_graphs(self.backend, graph_dir(self.path), self.codes, self.dates, device, sector)

    @functools.cached_property
    def _graphs(self) -> DailyGraphs:
        return self.graphs()

    def edges(self, day: int | str | np.datetime64) -> tuple[torch.Tensor, torch.Tensor]:
        """One day's graph (a date or a date index): edge_index (2, 2E) with both directions, edge_weight (2E,)."""
        if isinstance(day, int | np.integer):
            t = int(day)
        else:
            when = np.datetime64(str(day)[:10], "D")
            pos = np.searchsorted(self.dates, when)
            if pos >= len(self.dates) or self.dates[pos] != when:
                raise DatasetError(f"{day} is not a date of the dataset ({self.dates[0]} .. {self.dates[-1]})")
            t = int(pos)
        return self._graphs.edges(t)


def open_dataset(path: str | Path, backend: Backend | str | None = None, cache: str | Path | None = None) -> Dataset:
    """Open a built dataset. `backend`: a Backend, or "auto" / "gpu" / "cpu" (chosen once per process);
    None uses the process's backend, choosing it from configs/gpuetl.yaml if none was chosen yet. `path` may be a
    URL (s3://bucket/prefix): the dataset is mirrored under `cache` (default: paths.cache) first, only what changed
    being downloaded."""
    settings = None  # loaded only when needed: a Backend and a local path need none
    if isinstance(backend, Backend):
        b = backend
    else:
        settings = load_settings(overrides=[f"backend={backend}"] if backend else [])
        b = backend_mod.init(settings)
    if is_url(path):  # s3://...: a local mirror of the dataset's tree (paths.cache), pulled as it is now
        with remote_input(str(path), cache or (settings or load_settings()).paths.cache) as (local, _):
            path = local
    return Dataset(path, b)
