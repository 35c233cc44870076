"""Raw lake datasets read straight into the backend's frame library (cuDF on the GPU).

The one reader the dataset build, the enrichment groups and the graph stage share: the files the
manifest claims, and the lake reader's dedupe rule for units that recorded rows outside themselves.
"""

from __future__ import annotations

from typing import Any

from gpuetl.backend import Backend
from gpuetl.lake.manifest import Manifest
from gpuetl.lake.verify import READ_ERRORS, read_error


def read_raw(backend: Backend, manifest: Manifest, dataset: str, columns: list[str],
             error: type[Exception] = RuntimeError, filters: list[tuple[str, str, Any]] | None = None) -> Any:
    """`columns` of raw `dataset` in the lake of `manifest` (load it once per run: it can be megabytes);
    a lake without the dataset, or with a file that cannot be read, raises `error` (the caller's type) saying
    what to fetch or how to repair the lake. `filters` (e.g. `[("Code", "in", codes)]`) keeps matching rows."""
    files = manifest.files(dataset)
    if not files:
        raise error(f"the lake at {manifest.root} has no {dataset!r} data; fetch it first "
                    f"(gpuetl fetch --datasets {dataset} ..., or gpuetl fetch --demo)")
    paths = [str(manifest.root / f) for f in files]
    try:
        if not any(r.spills for r in manifest.units(dataset).values()):
            return backend.read_parquet(paths, columns, filters)
        # a unit that recorded rows dated outside itself may share them with a neighbour: as the lake reader
        # does, drop exact duplicates (whole raw rows, so corrections survive) before selecting columns
        return backend.read_parquet(paths, None, filters).drop_duplicates()[columns]
    except READ_ERRORS as err:
        raise error(read_error(manifest.root, files, err)) from err
