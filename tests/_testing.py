"""The one parity idiom of the tests (as cuDF's `assert_eq`): compare what two computations produced (GPU and CPU
backends, a CUDA kernel run by tests/support/cudasim and its CPU twin, a fast op and a slow reference such as
TA-Lib or a pandas loop, a batched run and one-at-a-time runs), on the host, with a tolerance whose name says
*why* the two may differ: `assert_backend_equal(got, expected, tol="sum_order")`.

The names and their numbers are `gpuetl.ops.TOLERANCES` (ops declare theirs as `Op.tolerance`); a test never
picks a number. A comparison that needs a new reason adds a named entry there, with the reason beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from gpuetl.backend import Backend
from gpuetl.kernels import KernelSet
from gpuetl.ops import TOLERANCES

CPU = Backend("cpu", pd, np, KernelSet("cpu"), "tests")  # for builders outside fixtures

# (rtol, atol) by reason: one source of numbers, gpuetl.ops.TOLERANCES
TOL: Mapping[str, tuple[float, float]] = TOLERANCES

# pandas before 3.1.2 weighted a new value by 1 - old weight in an unadjusted EWM across missing values when
# com was exactly 1 (alpha 0.5), a rule meant for `times` (GH#54328); the RAPIDS 26.10 env pins pandas < 3.1.
# gpuetl's EWM follows the fixed rule (tests/test_kernel_ewm.py computes it by hand), so pandas serves as the
# reference for that one case only from 3.1.2 on.
PANDAS_EWM_GAP_FIXED = tuple(int(p) for p in pd.__version__.split(".")[:3] if p.isdigit()) >= (3, 1, 2)


def to_host(x: Any) -> Any:
    """A device array, cuDF object or torch tensor -> its NumPy / pandas twin; host objects pass through."""
    if hasattr(x, "to_pandas"):
        return x.to_pandas()
    module = type(x).__module__
    if module.startswith("cupy"):
        return x.get()
    if module.startswith("torch"):
        return x.detach().cpu().numpy()
    return x


def host(backend: Backend, x: Any) -> np.ndarray:
    """An array of `backend` as a NumPy array."""
    return np.asarray(to_host(x)) if backend.is_gpu else np.asarray(x)


def assert_backend_equal(got: Any, expected: Any, *, tol: str, err_msg: str = "", terms: int = 1,
                         check_dtype: bool = False) -> None:
    """`got` equals `expected` within the named tolerance `tol` (a key of `TOL`), NaN equal to NaN.

    Both sides may be scalars, sequences, NumPy/CuPy arrays, torch tensors, pandas/cuDF Series and frames, or
    mappings of those (the same keys; each value compared) or tuples of them (a kernel's several results).
    An `expected` scalar is compared with every element.
    Frames: the same column names in the same order and the same index, column by column. Series: the same index
    as a Series on the other side; against an array, positions, so the Series must have the default index.
    Integer, boolean, date and text values are compared exactly whatever `tol`; `tol="exact"` compares floats bit
    for bit (`-0.0 == 0.0`). `terms`: each compared value is a sum of up to `terms` values that may each differ
    by `tol` (the absolute bounds add up). `check_dtype`: the two dtypes must be the same too.
    """
    if tol not in TOL:
        raise KeyError(f"unknown tolerance {tol!r}; named ones: {', '.join(TOL)} (add a reason to gpuetl.ops)")
    if terms < 1:
        raise ValueError(f"terms must be >= 1, got {terms}")
    _assert_equal(to_host(got), to_host(expected), tol, err_msg, terms, check_dtype)


def _assert_equal(got: Any, expected: Any, tol: str, err_msg: str, terms: int, check_dtype: bool) -> None:
    where = f"{err_msg}: " if err_msg else ""
    if isinstance(expected, Mapping) or isinstance(got, Mapping):
        assert isinstance(got, Mapping) and isinstance(expected, Mapping), \
            f"{where}a mapping against a {type(got if isinstance(expected, Mapping) else expected).__name__}"
        assert set(got) == set(expected), (f"{where}keys differ: only in got {sorted(set(got) - set(expected))}, "
                                           f"only in expected {sorted(set(expected) - set(got))}")
        for key in expected:
            _assert_equal(to_host(got[key]), to_host(expected[key]), tol, f"{err_msg}[{key}]", terms, check_dtype)
        return
    if isinstance(expected, tuple) and isinstance(got, tuple):  # a kernel's several results
        assert len(got) == len(expected), f"{where}{len(got)} results != {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            _assert_equal(to_host(g), to_host(e), tol, f"{err_msg}[{i}]", terms, check_dtype)
        return
    if isinstance(expected, pd.DataFrame) or isinstance(got, pd.DataFrame):
        assert isinstance(got, pd.DataFrame) and isinstance(expected, pd.DataFrame), \
            f"{where}a frame against a {type(got if isinstance(expected, pd.DataFrame) else expected).__name__}"
        assert list(got.columns) == list(expected.columns), \
            f"{where}columns differ: {list(got.columns)} != {list(expected.columns)}"
        _assert_same_index(got.index, expected.index, where)
        for col in expected.columns:
            _assert_equal(got[col], expected[col], tol, f"{err_msg}[{col}]", terms, check_dtype)
        return
    if isinstance(expected, pd.Series) and isinstance(got, pd.Series):
        _assert_same_index(got.index, expected.index, where)
    else:
        for side in (got, expected):
            if isinstance(side, pd.Series):  # against an array: positions, so no index that says otherwise
                assert side.index.equals(pd.RangeIndex(len(side))), \
                    f"{where}a Series with a non-default index compared with an array by position"
    g, e = _array(got), _array(expected)
    if check_dtype:
        assert g.dtype == e.dtype, f"{where}dtype {g.dtype} != {e.dtype}"
    if e.ndim == 0 and g.ndim > 0:  # a scalar reference: every element
        e = np.full(g.shape, e[()], dtype=e.dtype)
    assert g.shape == e.shape, f"{where}shape {g.shape} != {e.shape}"
    floats = g.dtype.kind in "fc" or e.dtype.kind in "fc"
    if tol == "exact" or not floats:
        np.testing.assert_array_equal(g, e, err_msg=err_msg)
        return
    rtol, atol = TOL[tol]
    np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol * terms,
                               equal_nan=True, err_msg=f"{err_msg} (tol={tol!r})")


def _array(x: Any) -> np.ndarray:
    if isinstance(x, pd.Series | pd.Index) and x.dtype.kind in "iuf" and x.hasnans:  # nullable: missing -> NaN
        return x.to_numpy(dtype=np.float64, na_value=np.nan)
    return x.to_numpy() if isinstance(x, pd.Series | pd.Index) else np.asarray(x)


def _assert_same_index(got: pd.Index, expected: pd.Index, where: str) -> None:
    assert got.equals(expected), f"{where}indexes differ: {got[:5].tolist()}... != {expected[:5].tolist()}..."
