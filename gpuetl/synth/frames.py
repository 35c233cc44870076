"""Turn column arrays into a dataset's canonical pandas frame (gpuetl.jquants.schema's pandas form).

Columns come out in spec order with the canonical dtypes: dates datetime64[ns], floats float64 (NaN),
flags pandas "boolean", everything else object columns of Python str (None for missing). Columns a
generator does not fill are all-missing. Built without copies or block consolidation, because the
largest tables have ~10M rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from gpuetl.jquants import spec

CONSOLIDATE_CELLS = 20_000_000


def _column(kind: str, values: Any, n: int) -> pd.Series | np.ndarray | pd.api.extensions.ExtensionArray:
    if kind == "date":
        if values is None:
            return np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        return np.asarray(values).astype("datetime64[ns]", copy=False)
    if kind == "float":
        if values is None:
            return np.full(n, np.nan)
        return np.asarray(values, dtype=np.float64)
    if kind == "flag":
        if values is None:
            return pd.arrays.BooleanArray(np.zeros(n, dtype=bool), np.ones(n, dtype=bool))
        if isinstance(values, pd.arrays.BooleanArray):
            return values
        arr = np.asarray(values)
        if arr.dtype == bool:
            return pd.arrays.BooleanArray(arr, np.zeros(n, dtype=bool))
        mask = pd.isna(arr)
        return pd.arrays.BooleanArray(np.where(mask, False, arr).astype(bool), np.asarray(mask, dtype=bool))
    if values is None:
        return pd.Series(np.full(n, None, dtype=object), dtype=object, copy=False)
    return pd.Series(np.asarray(values, dtype=object), dtype=object, copy=False)


def canonical(name: str, columns: Mapping[str, Any], n: int) -> pd.DataFrame:
    """The canonical frame of dataset `name` from `columns` (name -> array of length n); unknown names fail."""
    ds = spec.get(name)
    unknown = set(columns) - set(ds.columns)
    if unknown:
        raise KeyError(f"{name}: no such columns {sorted(unknown)}; columns: {', '.join(ds.columns)}")
    data = {f.name: _column(f.kind, columns.get(f.name), n) for f in ds.fields}
    # small frames are consolidated (no fragmentation warnings downstream); the largest are not copied
    return pd.DataFrame(data, columns=list(ds.columns), copy=n * len(data) <= CONSOLIDATE_CELLS)


def flag(values: np.ndarray, missing: np.ndarray | None = None) -> pd.arrays.BooleanArray:
    """A nullable boolean column from a bool array and an optional missing mask."""
    values = np.asarray(values, dtype=bool)
    mask = np.zeros(values.size, dtype=bool) if missing is None else np.asarray(missing, dtype=bool)
    return pd.arrays.BooleanArray(values & ~mask, mask)


def days_str(dates: np.ndarray) -> np.ndarray:
    """YYYYMMDD strings of datetime64[D] dates (for DiscNo / RefNo)."""
    return np.char.replace(np.asarray(dates, dtype="datetime64[D]").astype("U10"), "-", "")
