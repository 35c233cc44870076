"""Segments: runs of rows with the same key (a code's history, a day's cross-section), as offsets.

The segmented kernels (EWM, as-of, per-day statistics, the union graphs) and the panel describe their groups
this way: rows sorted by key, `offsets` [0, ..., n] marking where each segment starts, so a segment is the
slice offsets[i]:offsets[i + 1]. Pure array code, for NumPy and CuPy alike.
"""

from __future__ import annotations

import numpy as np

from gpuetl.arrays import Array, ArrayModule


def segment_offsets(xp: ArrayModule, keys: Array) -> Array:
    """Offsets [0, ..., n] of the runs of equal consecutive `keys` (rows already sorted by key).

    Shapes:
        keys: (n,) -> offsets: (segments + 1,) int64
    """
    n = len(keys)
    if n == 0:
        return xp.zeros(1, dtype=np.int64)
    starts = xp.flatnonzero(keys[1:] != keys[:-1]) + 1
    return xp.concatenate([xp.zeros(1, dtype=np.int64), starts.astype(np.int64), xp.full(1, n, dtype=np.int64)])


def segment_ids(xp: ArrayModule, offsets: Array) -> Array:
    """The segment number of every row, from offsets [0, ..., n] (empty segments allowed).

    Shapes:
        offsets: (segments + 1,) -> ids: (n,) int64

    Built with searchsorted, not `repeat(arange, counts)`: CuPy's repeat takes no device array of counts.
    """
    if xp is np:  # NumPy repeats in one pass; the binary search is for CuPy
        return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
    return xp.searchsorted(offsets[1:], xp.arange(int(offsets[-1])),  # host-ok: the row count sizes the output
                           side="right")
