"""As-of joins for enrichment, on top of the `segmented_asof` kernel: keys, sorting, and "latest version".

- `asof_join`: pandas `merge_asof` for arrays (one or more `by` columns, either side in any order): it
  groups the `by` columns into one integer key, sorts the right side stably by (key, on) and runs the
  kernel; the answer indexes the right side as given.
- `Latest`: the interval-to-daily projection every published dataset needs. For each left row
  (key, t) it returns the right row with the highest *priority* among the rows of that key effective on
  or before t. With the priority (period, effective day, order) a later period wins over an earlier
  one, and a corrected filing of the same period wins from its own effective day on, never before;
  a correction of an older period published late never replaces a newer period. It is an as-of join
  whose right side carries a running argmax of the priority, computed once per right side. `previous`
  gives, for each row, what was in force just before it (for revisions), from earlier rows only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gpuetl.backend import Backend
from gpuetl.kernels.asof import Direction, take_cpu, through_cpu


def lexorder(xp: Any, keys: Sequence[Any]) -> Any:
    """Stable permutation sorting rows by `keys` (the first key most significant), like np.lexsort reversed."""
    n = len(keys[0]) if keys else 0
    order = xp.arange(n)
    for key in reversed(keys):
        order = order[xp.argsort(key[order], kind="stable")]
    return order


def _dense(xp: Any, values: Any) -> Any:
    """Dense int64 ids of the values (equal values, equal ids); NaN values share one id of their own."""
    if values.dtype.kind == "f":
        nan = xp.isnan(values)
        _, ids = xp.unique(xp.where(nan, 0.0, values), return_inverse=True)
        ids = ids.reshape(-1).astype(xp.int64) * 2 + nan
        _, ids = xp.unique(ids, return_inverse=True)
        return ids.reshape(-1).astype(xp.int64)
    _, ids = xp.unique(values, return_inverse=True)
    return ids.reshape(-1).astype(xp.int64)


def group_keys(xp: Any, left: Sequence[Any], right: Sequence[Any]) -> tuple[Any, Any]:
    """One int64 key per row for several `by` columns, equal across sides exactly when all columns are
    equal (NaN equals NaN, as in pandas)."""
    if len(left) != len(right) or not left:
        raise ValueError("give the same number (>= 1) of by columns on both sides")
    n = len(left[0])
    key = None
    for lcol, rcol in zip(left, right, strict=True):
        ids = _dense(xp, xp.concatenate([xp.asarray(lcol), xp.asarray(rcol)]))
        key = ids if key is None else _dense(xp, key * (int(ids.max()) + 1  # host-ok: one stride per by column
                                                        if len(ids) else 1) + ids)
    assert key is not None
    return key[:n], key[n:]


def asof_join(backend: Backend, left_by: Any | Sequence[Any], left_on: Any, right_by: Any | Sequence[Any],
              right_on: Any, *, direction: Direction = "backward", allow_exact_matches: bool = True,
              tolerance: float | int | None = None) -> Any:
    """For each left row, the index of its pandas-merge_asof match among the right rows as given (or -1)."""
    xp = backend.xp
    lcols: list[Any] = list(left_by) if isinstance(left_by, list | tuple) else [left_by]
    rcols: list[Any] = list(right_by) if isinstance(right_by, list | tuple) else [right_by]
    if len(lcols) == 1 and lcols[0].dtype.kind in "iu" and rcols[0].dtype.kind in "iu":
        lkey, rkey = xp.asarray(lcols[0], dtype=xp.int64), xp.asarray(rcols[0], dtype=xp.int64)
    else:
        lkey, rkey = group_keys(xp, lcols, rcols)
    if right_on.dtype.kind == "f" and len(right_on) \
            and bool(xp.isnan(right_on).any()):  # host-ok: one flag, an input check
        raise ValueError("Merge keys contain null values on right side (the 'on' column)")
    order = lexorder(xp, [rkey, right_on])
    idx = backend.kernels.segmented_asof(lkey, left_on, rkey[order], right_on[order], direction=direction,
                                         allow_exact_matches=allow_exact_matches, tolerance=tolerance)
    return through(xp, order, idx)


def through(xp: Any, table: Any, idx: Any) -> Any:
    """table[idx] for an int64 index with -1 for none (kept -1); safe on an empty table."""
    if len(table) == 0:
        return xp.full(len(idx), -1, dtype=xp.int64)
    if xp is np:
        return through_cpu(table, idx)
    return xp.where(idx >= 0, table[xp.clip(idx, 0, len(table) - 1)], -1)


def take(xp: Any, values: Any, idx: Any) -> Any:
    """values[idx] as float64, NaN where idx is -1 (no match)."""
    values = xp.asarray(values, dtype=xp.float64)
    if len(values) == 0:
        return xp.full(len(idx), xp.nan)
    if xp is np:
        return take_cpu(values, idx)
    return xp.where(idx >= 0, values[xp.clip(idx, 0, len(values) - 1)], xp.nan)


class Latest:
    """A right side prepared for `latest_known` lookups (sorted once, running best priority precomputed)."""

    def __init__(self, backend: Backend, key: Any, effective: Any, priority: Sequence[Any]) -> None:
        """`key` int64 group, `effective` int64 day, `priority`: arrays, most significant first; ties in
        priority go to the later effective day, then to the later row."""
        xp = backend.xp
        self.backend = backend
        n = len(key)
        rows = xp.arange(n)
        self.key = xp.asarray(key, dtype=xp.int64)
        self.effective = xp.asarray(effective, dtype=xp.int64)
        by_time = lexorder(xp, [self.key, self.effective, rows])
        by_priority = lexorder(xp, [self.key, *priority, self.effective, rows])
        rank = xp.empty(n, dtype=xp.int64)
        rank[by_priority] = rows
        # keys are the first sort key of both orders, so every rank of a key is above all ranks of the
        # keys before it: a plain running max along the time order is a running max within each key
        running = xp.asarray(backend.to_array(backend.series(rank[by_time].astype(xp.float64)).cummax()),
                             dtype=xp.int64) if n else rank
        self.by_time = by_time
        self.sorted_key = self.key[by_time]
        self.sorted_eff = self.effective[by_time]
        self.best = by_priority[running] if n else running  # original row of the best row so far

    def previous(self) -> Any:
        """For each right row, the best row of its key among the rows before it in (effective day, row)
        order: what was in force just before it took effect (-1 for none). Never looks at later rows."""
        xp = self.backend.xp
        n = len(self.key)
        out = xp.full(n, -1, dtype=xp.int64)
        if n > 1:
            same = self.sorted_key[1:] == self.sorted_key[:-1]
            out[self.by_time[1:]] = xp.where(same, self.best[:-1], -1)
        return out

    def lookup(self, key: Any, day: Any) -> Any:
        """For each (key, day), the original index of the best right row effective on or before day, or -1."""
        xp = self.backend.xp
        idx = self.backend.kernels.segmented_asof(xp.asarray(key, dtype=xp.int64), xp.asarray(day, dtype=xp.int64),
                                                  self.sorted_key, self.sorted_eff)
        return through(xp, self.best, idx)
