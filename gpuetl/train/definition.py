"""What defines a dataset's columns and its graphs, apart from the days they hold: what a run records, so that a
model is only ever asked to score a dataset made the way the one it learnt from was.

A run records the dataset's and the graphs' hashes (`dataset_hash`, `graphs_hash`), which change with every
rebuild, new days included. `gpuetl predict` must accept the same dataset updated with later days, so it compares
these definitions instead: the dataset's config but its span and name, its feature columns by group, the
normalised columns and how each feature is normalised, the targets; and the graphs' config and features.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gpuetl.tensors import Dataset
from gpuetl.tensors.graphs import graph_dir

# dataset config keys that say which days a build covers (and what it is called), not how its columns are made
_SPAN = frozenset({"name", "start", "end"})
# graph config keys that say how a graph run was batched (and named), not what it made
_GRAPH_RUN = frozenset({"name", "batch"})


def dataset_definition(ds: Dataset) -> dict[str, Any]:
    """How the dataset's columns are made: equal for the same config built over other (more) days."""
    meta = ds.metadata
    config = {k: v for k, v in meta.get("config", {}).items() if k not in _SPAN}
    normalization = meta.get("normalization", {})
    return {"config": config, "features_by_group": meta["features_by_group"], "normalized": meta["normalized"],
            "normalization": normalization.get("by_feature"), "targets": meta["targets"],
            "default_label": meta["default_label"]}


def graphs_definition(ds: Dataset) -> dict[str, Any] | None:
    """How the dataset's graphs are made (config and features), None without graphs. Read as written, stale or
    not: the run's `graphs_hash` and the readers' check say whether they belong to the dataset."""
    return _graphs_definition(graph_dir(ds.path))


def _graphs_definition(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / "graphs.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return {"config": {k: v for k, v in meta.get("config", {}).items() if k not in _GRAPH_RUN},
            "features": meta.get("features", [])}


def changed_keys(before: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ, one level into `config` (`config.normalize`, `features_by_group`)."""
    out = []
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key), now.get(key)
        if a == b:
            continue
        if key == "config" and isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, f"{prefix}config.")
        else:
            out.append(prefix + key)
    return out
