"""Segmented as-of join equals pandas.merge_asof on random inputs (CPU twin and the array wrapper), and
GPU == CPU."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuetl.backend import Backend
from gpuetl.enrich.asof import Latest, asof_join, group_keys, lexorder, through
from gpuetl.kernels import KernelSet
from gpuetl.kernels.asof import asof_cpu
from tests._testing import assert_backend_equal

CPU = Backend("cpu", pd, np, KernelSet("cpu"), "tests")


@st.composite
def sides(draw: st.DrawFn) -> dict:
    """Left and right frames sorted by `t` (as pandas requires): few keys so groups are ragged, empty or
    one-sided; a narrow `t` range so ties are common; int or float times; one or two `by` columns."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, m = draw(st.integers(0, 30)), draw(st.integers(0, 30))
    span = draw(st.sampled_from([3, 10, 50]))
    floats = draw(st.booleans())
    n_keys = draw(st.integers(1, 2))

    def frame(rows: int, key_hi: int) -> pd.DataFrame:
        t = rng.integers(0, span, rows)
        df = pd.DataFrame({"t": np.sort(t + rng.choice([0.0, 0.25, 0.5], rows) if floats else t)})
        for k in range(n_keys):
            df[f"k{k}"] = rng.integers(0, key_hi, rows)
        return df

    # key ranges differ so some keys exist on one side only
    left, right = frame(n, draw(st.integers(1, 5))), frame(m, draw(st.integers(1, 5)))
    right["ri"] = np.arange(m)
    if draw(st.booleans()) and n_keys == 1:  # float keys with NaN groups: pandas matches NaN with NaN
        left["k0"] = np.where(rng.random(n) < 0.3, np.nan, left["k0"].astype(float))
        right["k0"] = np.where(rng.random(m) < 0.3, np.nan, right["k0"].astype(float))
    return {"left": left, "right": right, "by": [f"k{k}" for k in range(n_keys)]}


def pandas_index(left: pd.DataFrame, right: pd.DataFrame, by: list[str], **kw: object) -> np.ndarray:
    res = pd.merge_asof(left, right, on="t", by=by, **kw)  # type: ignore[arg-type]
    return res["ri"].fillna(-1).to_numpy(dtype=np.int64)


@settings(max_examples=300, deadline=None)
@given(data=sides(), direction=st.sampled_from(["backward", "forward"]), exact=st.booleans(),
       tolerance=st.sampled_from([None, 0, 1, 2.5, 10]))
def test_wrapper_equals_pandas_merge_asof(data: dict, direction: str, exact: bool, tolerance: float | None) -> None:
    left, right, by = data["left"], data["right"], data["by"]
    if tolerance is not None and left["t"].dtype.kind == "i":
        tolerance = int(tolerance)
    want = pandas_index(left, right, by, direction=direction, allow_exact_matches=exact, tolerance=tolerance)
    got = asof_join(CPU, [left[c].to_numpy() for c in by], left["t"].to_numpy(), [right[c].to_numpy() for c in by],
                    right["t"].to_numpy(), direction=direction, allow_exact_matches=exact,  # type: ignore[arg-type]
                    tolerance=tolerance)
    assert_backend_equal(got, want, tol="exact")


@settings(max_examples=100, deadline=None)
@given(data=sides(), direction=st.sampled_from(["backward", "forward"]), exact=st.booleans())
def test_kernel_on_presorted_right_equals_pandas(data: dict, direction: str, exact: bool) -> None:
    """The kernel itself, right side sorted by (key, t) stably: indices map back through that order."""
    left, right, by = data["left"], data["right"], data["by"]
    want = pandas_index(left, right, by, direction=direction, allow_exact_matches=exact)
    lkey, rkey = group_keys(np, [left[c].to_numpy() for c in by], [right[c].to_numpy() for c in by])
    order = lexorder(np, [rkey, right["t"].to_numpy()])
    got = asof_cpu(lkey, left["t"].to_numpy(), rkey[order], right["t"].to_numpy()[order],
                   direction=direction, allow_exact_matches=exact)  # type: ignore[arg-type]
    assert_backend_equal(through(np, order, got), want, tol="exact")


def test_unsorted_left_is_answered_row_by_row() -> None:
    """pandas rejects an unsorted left side; here each left row is answered on its own."""
    rng = np.random.default_rng(1)
    left = pd.DataFrame({"t": np.sort(rng.integers(0, 40, 60)), "k": rng.integers(0, 4, 60)})
    right = pd.DataFrame({"t": np.sort(rng.integers(0, 40, 50)), "k": rng.integers(0, 4, 50), "ri": np.arange(50)})
    want = pandas_index(left, right, ["k"])
    perm = rng.permutation(60)
    got = asof_join(CPU, left["k"].to_numpy()[perm], left["t"].to_numpy()[perm], right["k"].to_numpy(),
                    right["t"].to_numpy())
    assert_backend_equal(got, want[perm], tol="exact")
    with pytest.raises(ValueError, match="left keys must be sorted"):
        pd.merge_asof(left.iloc[perm], right, on="t", by="k")


def test_hand_cases_ties_exact_and_tolerance() -> None:
    # right, sorted by (key, t): key 0 at t = 1, 3, 3, 7; key 2 at t = 5
    rby, ron = np.array([0, 0, 0, 0, 2]), np.array([1, 3, 3, 7, 5])
    lby, lon = np.array([0, 0, 0, 0, 1, 2]), np.array([0, 3, 4, 8, 5, 4])
    # backward: ties go to the last equal row (2); exact off skips t == 3 -> row 0; key 1 is absent
    assert asof_cpu(lby, lon, rby, ron).tolist() == [-1, 2, 2, 3, -1, -1]
    assert asof_cpu(lby, lon, rby, ron, allow_exact_matches=False).tolist() == [-1, 0, 2, 3, -1, -1]
    assert asof_cpu(lby, lon, rby, ron, tolerance=0).tolist() == [-1, 2, -1, -1, -1, -1]
    # forward: ties go to the first equal row (1)
    assert asof_cpu(lby, lon, rby, ron, direction="forward").tolist() == [0, 1, 3, -1, -1, 4]
    assert asof_cpu(lby, lon, rby, ron, direction="forward", allow_exact_matches=False).tolist() == [0, 3, 3, -1, -1, 4]
    assert asof_cpu(lby, lon, rby, ron, direction="forward", tolerance=1).tolist() == [0, 1, -1, -1, -1, 4]


def test_empty_sides() -> None:
    empty = np.zeros(0, dtype=np.int64)
    assert asof_cpu(empty, empty, np.array([1]), np.array([1])).tolist() == []
    assert asof_cpu(np.array([1, 2]), np.array([5, 6]), empty, empty).tolist() == [-1, -1]
    assert asof_join(CPU, np.array([1]), np.array([5]), empty, empty).tolist() == [-1]


def test_bad_inputs_are_rejected_with_clear_errors() -> None:
    one = np.array([0])
    with pytest.raises(ValueError, match=r"sorted by \(by, on\)"):
        asof_cpu(one, one, np.array([0, 0]), np.array([5, 1]))
    with pytest.raises(ValueError, match=r"sorted by \(by, on\)"):
        asof_cpu(one, one, np.array([1, 0]), np.array([1, 5]))
    with pytest.raises(ValueError, match="null values on left side"):
        asof_cpu(one, np.array([np.nan]), one, np.array([1.0]))
    with pytest.raises(ValueError, match="null values on right side"):
        asof_cpu(one, np.array([1.0]), np.array([0, 0]), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="null values on right side"):
        asof_join(CPU, one, np.array([1.0]), np.array([0, 0]), np.array([np.nan, 1.0]))
    with pytest.raises(TypeError, match="integer group key"):
        asof_cpu(np.array([0.5]), one, one, one)
    with pytest.raises(ValueError, match="direction must be"):
        asof_cpu(one, one, one, one, direction="nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        asof_cpu(one, one, one, one, tolerance=-1)
    with pytest.raises(ValueError, match="one value per row"):
        asof_cpu(one, np.array([1, 2]), one, one)
    # pandas agrees on the NaN rule
    with pytest.raises(ValueError, match="null values on left side"):
        pd.merge_asof(pd.DataFrame({"t": [1.0, np.nan]}), pd.DataFrame({"t": [0.0]}), on="t")


def test_latest_known_prefers_priority_and_applies_corrections_from_their_own_day() -> None:
    """Weekly rows (week, effective day): a correction of week 1 published after week 2 must not replace
    week 2; a correction of week 2 replaces it from its own effective day only."""
    key = np.array([0, 0, 0, 0, 1])
    week = np.array([1, 2, 1, 2, 1])  # rows 2, 3: corrections of weeks 1 and 2
    eff = np.array([10, 17, 19, 22, 10])
    latest = Latest(CPU, key, eff, [week])
    days = np.array([9, 10, 16, 17, 19, 21, 22, 30])
    assert latest.lookup(np.zeros(8, dtype=np.int64), days).tolist() == [-1, 0, 0, 1, 1, 1, 3, 3]
    assert latest.lookup(np.array([1, 1, 2]), np.array([9, 10, 50])).tolist() == [-1, 4, -1]
    # ties in priority and day: the later row wins
    tie = Latest(CPU, np.array([0, 0]), np.array([5, 5]), [np.array([1, 1])])
    assert tie.lookup(np.array([0]), np.array([5])).tolist() == [1]


def test_registered_in_the_kernel_set() -> None:
    assert KernelSet("cpu").segmented_asof is asof_cpu


@pytest.mark.gpu
@pytest.mark.parametrize("direction", ["backward", "forward"])
@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize(("floats", "tolerance"), [(False, None), (False, 3), (True, None), (True, 2.5)])
def test_gpu_equals_cpu(gpu_backend: Backend, direction: str, exact: bool, floats: bool,
                        tolerance: float | None) -> None:
    xp = gpu_backend.xp
    rng = np.random.default_rng(0)
    m, n = 200_000, 300_000
    rby = np.sort(rng.integers(0, 5000, m))
    ron = rng.integers(0, 400, m).astype(np.float64 if floats else np.int64)
    order = np.lexsort((ron, rby))
    rby, ron = rby[order], ron[order]
    lby = rng.integers(-5, 5100, n)  # some keys absent on the right
    lon = rng.integers(-10, 410, n).astype(np.float64 if floats else np.int64)
    kw = {"direction": direction, "allow_exact_matches": exact, "tolerance": tolerance}
    want = asof_cpu(lby, lon, rby, ron, **kw)  # type: ignore[arg-type]
    got = gpu_backend.kernels.segmented_asof(xp.asarray(lby), xp.asarray(lon), xp.asarray(rby), xp.asarray(ron),
                                             **kw)
    assert_backend_equal(got, want, tol="exact")
    with pytest.raises(ValueError, match=r"sorted by \(by, on\)"):
        gpu_backend.kernels.segmented_asof(xp.asarray(lby), xp.asarray(lon), xp.asarray(rby[::-1].copy()),
                                           xp.asarray(ron))


@pytest.mark.gpu
def test_gpu_wrapper_equals_pandas(gpu_backend: Backend) -> None:
    xp = gpu_backend.xp
    rng = np.random.default_rng(5)
    left = pd.DataFrame({"t": np.sort(rng.integers(0, 500, 5000)), "a": rng.integers(0, 30, 5000),
                         "b": rng.integers(0, 3, 5000)})
    right = pd.DataFrame({"t": np.sort(rng.integers(0, 500, 4000)), "a": rng.integers(0, 35, 4000),
                          "b": rng.integers(0, 3, 4000), "ri": np.arange(4000)})
    want = pandas_index(left, right, ["a", "b"], allow_exact_matches=False)
    got = asof_join(gpu_backend, [xp.asarray(left["a"].to_numpy()), xp.asarray(left["b"].to_numpy())],
                    xp.asarray(left["t"].to_numpy()), [xp.asarray(right["a"].to_numpy()),
                                                       xp.asarray(right["b"].to_numpy())],
                    xp.asarray(right["t"].to_numpy()), allow_exact_matches=False)
    assert_backend_equal(got, want, tol="exact")


@pytest.mark.parametrize("direction", ["backward", "forward"])
@pytest.mark.parametrize("exact", [True, False])
def test_left_sorted_by_key_and_time_walks_to_the_pandas_answer(direction: str, exact: bool) -> None:
    """A (Code, Date)-sorted panel as the left side, long enough for several chunks: the kernel walks forward
    instead of searching, and must land where pandas' merge_asof does (pandas wants the left sorted by time)."""
    rng = np.random.default_rng(11)
    n_keys = 300
    left = pd.DataFrame({"k": np.repeat(np.arange(n_keys), 120), "t": np.tile(np.arange(120) * 3, n_keys)})
    left = left[rng.random(len(left)) > 0.1].reset_index(drop=True)  # gaps, some keys shorter
    right = pd.DataFrame({"k": rng.integers(0, n_keys + 5, 4000), "t": rng.integers(-10, 400, 4000)})
    right = right.sort_values("t", kind="stable").reset_index(drop=True)  # pandas wants both sides by time
    right["ri"] = np.arange(len(right))
    by_time = left.assign(row=np.arange(len(left))).sort_values("t", kind="stable")
    want = np.empty(len(left), dtype=np.int64)
    want[by_time["row"].to_numpy()] = pandas_index(by_time.drop(columns="row"), right, ["k"], direction=direction,
                                                   allow_exact_matches=exact)
    got = asof_join(CPU, left["k"].to_numpy(), left["t"].to_numpy(), right["k"].to_numpy(), right["t"].to_numpy(),
                    direction=direction, allow_exact_matches=exact)  # type: ignore[arg-type]
    assert_backend_equal(got, want, tol="exact")
