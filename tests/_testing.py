"""The one parity idiom of the tests (as cuDF's `assert_eq`): compare what two backends (or a backend and a
plain reference) produced, on the host, with a tolerance that says *why* the two may differ.

`assert_backend_equal(got, expected, tol="sum_order")` takes NumPy/CuPy arrays, pandas/cuDF Series and
frames (frames column by column: same names and order, non-float columns exactly), NaN equal to NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gpuetl.backend import Backend
from gpuetl.kernels import KernelSet

CPU = Backend("cpu", pd, np, KernelSet("cpu"), "tests")  # for builders outside fixtures

# Named tolerances (rtol, atol): the reason two results may differ, not a number picked to make a test pass.
TOL: dict[str, tuple[float, float]] = {
    "exact": (0.0, 0.0),  # same operations in the same order: bit for bit
    "sum_order": (1e-12, 1e-15),  # libcudf's hash groupby / cuBLAS add in another order than pandas / OpenBLAS
    "float32": (1e-5, 1e-6),  # float64 results that differ in the last bits, stored as float32
    "reference": (1e-9, 0.0),  # a fast op against a slow reference formula (TA-Lib, pandas loops)
    "weight_grid": (0.0, 2.0**-32),  # graph edge weights rounded to the 2^-32 grid
    "pagerank": (0.0, 1e-6),  # power iterations stopped at tol 1e-10 per day's graph
}


def to_host(x: Any) -> Any:
    """A device array or cuDF object -> its NumPy / pandas twin; host objects pass through."""
    if hasattr(x, "to_pandas"):
        return x.to_pandas()
    if hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        return x.get()
    return x


def host(backend: Backend, x: Any) -> np.ndarray:
    """An array of `backend` as a NumPy array."""
    return np.asarray(to_host(x)) if backend.is_gpu else np.asarray(x)


def assert_backend_equal(got: Any, expected: Any, *, tol: str = "exact", rtol: float | None = None,
                         atol: float | None = None, err_msg: str = "") -> None:
    """`got` equals `expected` to the named tolerance `tol` (or explicit rtol/atol), NaN equal to NaN."""
    r, a = TOL[tol]
    r, a = (r if rtol is None else rtol), (a if atol is None else atol)
    got, expected = to_host(got), to_host(expected)
    if isinstance(expected, pd.DataFrame):
        assert isinstance(got, pd.DataFrame), f"{err_msg}: expected a frame, got {type(got).__name__}"
        assert list(got.columns) == list(expected.columns), f"{err_msg}: columns differ"
        for col in expected.columns:
            assert_backend_equal(got[col], expected[col], rtol=r, atol=a, err_msg=f"{err_msg}{col}")
        return
    g, e = np.asarray(got), np.asarray(expected)
    assert g.shape == e.shape, f"{err_msg}: shape {g.shape} != {e.shape}"
    if e.dtype.kind in "fc" or g.dtype.kind in "fc":
        np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64), rtol=r, atol=a, equal_nan=True,
                                   err_msg=err_msg)
    else:
        np.testing.assert_array_equal(g, e, err_msg=err_msg)
