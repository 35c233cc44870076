"""Extremes against TA-Lib (MAX/MIN, MAXINDEX/MININDEX) on walks with and without splits, pandas
references on walks with no-trade days, hand-built cases (ties, drawdown), lookbacks, and the leakage rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from gpuetl.backend import Backend
from gpuetl.features import extremes
from tests._testing import assert_backend_equal
from tests.support.features import (
    assert_causal,
    assert_lookbacks,
    compare,
    compute,
    per_code_frames,
    single_code,
)
from tests.support.panels import make_panel, per_code, random_walk_frame

WINDOWS = (20, 60, 250)
PARAMS = {
    "high_low_distance": {"windows": WINDOWS},
    "drawdown": {},
    "days_since_extreme": {"windows": WINDOWS},
}
assert extremes.__name__  # the import registers the extremes features


@pytest.mark.parametrize("splits", [False, True])
def test_extremes_agree_with_talib(backend: Backend, splits: bool) -> None:
    df = random_walk_frame(seed=41, splits=splits)
    plain = random_walk_frame(seed=41)
    got = compute(backend, make_panel(backend, df), PARAMS)
    for rows in per_code(df):
        h, lo, c = (plain[col].to_numpy()[rows] for col in ("H", "L", "C"))
        refs = {}
        for n in WINDOWS:
            refs[f"dist_high_{n}d"] = c / talib.MAX(h, n) - 1
            refs[f"dist_low_{n}d"] = c / talib.MIN(lo, n) - 1
            # MAXINDEX / MININDEX give the absolute row (0 before the window fills); no ties in a continuous
            # random walk, so the tie rules (see test_ties_on_a_price_grid) cannot differ here
            full = np.arange(len(rows)) >= n - 1
            refs[f"days_since_last_high_{n}d"] = np.where(full, np.arange(len(rows)) - talib.MAXINDEX(h, n), np.nan)
            refs[f"days_since_last_low_{n}d"] = np.where(full, np.arange(len(rows)) - talib.MININDEX(lo, n), np.nan)
        refs["drawdown"] = c / np.maximum.accumulate(c) - 1
        compare(got, rows, refs)


def pandas_extremes(f: pd.DataFrame) -> dict[str, pd.Series]:
    cum = f["AdjFactor"].fillna(1.0).cumprod()
    h, lo, c = f["H"] / cum, f["L"] / cum, f["C"] / cum
    out = {f"dist_high_{n}d": c / h.rolling(n).max() - 1 for n in WINDOWS}
    out |= {f"dist_low_{n}d": c / lo.rolling(n).min() - 1 for n in WINDOWS}
    out["drawdown"] = c / c.cummax() - 1
    # rows back to the latest occurrence of the window's extreme: argmax of the reversed window
    out |= {f"days_since_last_high_{n}d": h.rolling(n).apply(lambda w: np.argmax(w[::-1]), raw=True) for n in WINDOWS}
    out |= {f"days_since_last_low_{n}d": lo.rolling(n).apply(lambda w: np.argmin(w[::-1]), raw=True) for n in WINDOWS}
    return out


def test_extremes_with_no_trade_days_match_pandas(backend: Backend) -> None:
    df = random_walk_frame(seed=42, lengths=(700, 1, 45, 300), gaps=0.005, splits=True)
    got = compute(backend, make_panel(backend, df), PARAMS)
    for rows, f in per_code_frames(df):
        compare(got, rows, pandas_extremes(f))
    idle = df["C"].isna().to_numpy()
    assert idle.any()
    for name, values in got.items():
        assert np.isnan(values[idle]).all(), name
        assert np.isfinite(values[~idle]).any(), name


def test_ties_count_from_the_latest_extreme_and_drawdown_hand_built(backend: Backend) -> None:
    close = np.array([10.0, 12, 9, 12, 15, 15, 11, 13])
    got = compute(backend, single_code(backend, close, spread=0.0),
                  {"drawdown": {}, "days_since_extreme": {"windows": (3,)}})
    assert_backend_equal(got["drawdown"], [0, 0, -0.25, 0, 0, 0, 11 / 15 - 1, 13 / 15 - 1], tol="exact")
    # windows of 3: [10 12 9] [12 9 12] [9 12 15] [12 15 15] [15 15 11] [15 11 13]
    assert_backend_equal(got["days_since_last_high_3d"], [np.nan, np.nan, 1, 0, 0, 0, 1, 2], tol="exact")
    assert_backend_equal(got["days_since_last_low_3d"], [np.nan, np.nan, 0, 1, 2, 2, 0, 1], tol="exact")


def test_ties_on_a_price_grid(backend: Backend) -> None:
    """Real prices sit on a tick grid, so the window's extreme is often reached on several days. The distances
    (TA-Lib MAX/MIN) still match TA-Lib; "days since last" counts from the latest occurrence (pandas
    reference), which is where TA-Lib's MAXINDEX, with its path-dependent tie rule, differs: the reason the
    feature is not called a TA-Lib indicator."""
    df = random_walk_frame(seed=44, lengths=(400, 300), tick=10.0)
    got = compute(backend, make_panel(backend, df), PARAMS)
    tied = differs = 0
    for rows, f in per_code_frames(df):
        h, lo, c = (f[col].to_numpy() for col in ("H", "L", "C"))
        refs = pandas_extremes(f)
        for n in WINDOWS:
            refs[f"dist_high_{n}d"] = c / talib.MAX(h, n) - 1
            refs[f"dist_low_{n}d"] = c / talib.MIN(lo, n) - 1
            peak = pd.Series(h).rolling(n).max().to_numpy()
            tied += sum(int((h[max(0, i - n + 1):i + 1] == peak[i]).sum() > 1) for i in range(n - 1, len(h)))
            ta = np.arange(len(h)) - talib.MAXINDEX(h, n)
            full = np.arange(len(h)) >= n - 1
            differs += int((got[f"days_since_last_high_{n}d"][rows][full] != ta[full]).sum())
        compare(got, rows, refs)
    assert tied > 100 and differs > 0  # the grid does tie extremes, and there the two rules part


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9])
def test_rolling_argmax_any_window(backend: Backend, n: int) -> None:
    """The sparse table covers windows that are and are not powers of two."""
    df = random_walk_frame(seed=43, lengths=(40, 3, 30))
    panel = make_panel(backend, df)
    got = compute(backend, panel, {"days_since_extreme": {"windows": (n,)}})
    for rows, f in per_code_frames(df):
        want = f["H"].rolling(n).apply(lambda w: np.argmax(w[::-1]), raw=True)
        assert_backend_equal(got[f"days_since_last_high_{n}d"][rows], want.to_numpy(), tol="exact")


def test_extremes_lookbacks_are_declared_correctly(backend: Backend) -> None:
    assert_lookbacks(backend, PARAMS)


def test_extremes_features_do_not_leak(backend: Backend) -> None:
    assert_causal(backend, PARAMS)
