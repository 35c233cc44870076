"""The CPU shortcuts that order rows and index dates, against pandas' sort and NumPy's unique."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuetl.features.panel import _distinct_days
from gpuetl.kernels.segments import segment_ids, segment_offsets
from tests._testing import CPU


@pytest.mark.parametrize("date_ordered", [True, False])
def test_code_date_order_is_pandas_stable_sort(date_ordered: bool) -> None:
    rng = np.random.default_rng(1)
    n = 5000
    frame = pd.DataFrame({"Code": rng.choice(["7203", "6758", "13010", "9984", "8306"], n),
                          "Date": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 400, n), "D"),
                          "C": rng.standard_normal(n)})
    if date_ordered:  # as a lake read in date order: the radix path
        frame = frame.sort_values("Date", kind="stable").reset_index(drop=True)
    order, code_id, codes = CPU.code_date_order(frame)
    want = frame.sort_values(["Code", "Date"], kind="stable")
    np.testing.assert_array_equal(order, want.index.to_numpy())  # ties (same code and day) keep their row order
    np.testing.assert_array_equal(np.asarray(codes)[code_id], want["Code"].to_numpy())
    assert list(codes) == sorted(set(frame["Code"]))


@pytest.mark.parametrize("days", [np.array([18000, 17990, 18000, 18005, 17990]), np.array([0, 10**7, 5]),
                                  np.zeros(0, dtype=np.int64)])
def test_distinct_days_equal_numpy_unique(days: np.ndarray) -> None:
    got, inverse = _distinct_days(np, days)
    want, want_inverse = np.unique(days, return_inverse=True)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(inverse, want_inverse)


def test_segment_ids_with_empty_segments() -> None:
    offsets = np.array([0, 2, 2, 5, 5])
    np.testing.assert_array_equal(segment_ids(np, offsets), [0, 0, 2, 2, 2])
    np.testing.assert_array_equal(segment_offsets(np, segment_ids(np, offsets)), [0, 2, 5])
