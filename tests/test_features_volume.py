"""Volume features against pandas references (with splits and no-trade days), scale-freeness under a
real split, hand-built cases, declared lookbacks, and the leakage rule."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gpuetl.backend import Backend
from gpuetl.features import volume
from tests._testing import assert_backend_equal
from tests.support.features import (
    assert_causal,
    assert_lookbacks,
    build_panel,
    compare,
    compute,
    per_code_frames,
    with_flags,
)
from tests.support.panels import random_walk_frame

PARAMS = {
    "volume_ratio": {"windows": (5, 20, 60)},
    "turnover_ratio": {"windows": (20,)},
    "amihud": {"windows": (20,), "scale": 1e9},
    "vwap_gap": {},
    "limit_flags": {"windows": (20,)},
}
assert volume.__name__  # the import registers the volume features


def market_frame(seed: int, gaps: float = 0.0, splits: bool = False) -> pd.DataFrame:
    """A random walk whose turnover is volume x a VWAP inside the day's range (not volume x close)."""
    df = with_flags(random_walk_frame(seed=seed, lengths=(300, 1, 45, 260), gaps=gaps, splits=splits), seed)
    weight = np.random.default_rng(seed).random(len(df))
    df["Va"] = df["Vo"] * (df["L"] + weight * (df["H"] - df["L"]))
    return df


def pandas_volume(f: pd.DataFrame) -> dict[str, pd.Series]:
    cum = f["AdjFactor"].fillna(1.0).cumprod()
    vol, close, turnover = f["Vo"] * cum, f["C"] / cum, f["Va"]
    out = {f"volume_ratio_{n}d": vol / vol.rolling(n).mean() for n in (5, 20, 60)}
    out["turnover_ratio_20d"] = turnover / turnover.rolling(20).mean()
    out["amihud_20d"] = (close.pct_change(fill_method=None).abs() / turnover * 1e9).rolling(20).mean()
    out["vwap_gap"] = f["C"] / (f["Va"] / f["Vo"]) - 1
    out |= {"limit_up": f["UL"], "limit_down": f["LL"], "limit_up_count_20d": f["UL"].rolling(20).sum(),
            "limit_down_count_20d": f["LL"].rolling(20).sum()}
    return out


def test_volume_features_match_pandas(backend: Backend) -> None:
    for gaps, splits in ((0.0, False), (0.0, True), (0.04, True)):
        df = market_frame(31, gaps, splits)
        got = compute(backend, build_panel(backend, df), PARAMS)
        for rows, f in per_code_frames(df):
            compare(got, rows, pandas_volume(f))
        idle = df["C"].isna().to_numpy()
        for name, values in got.items():
            if not name.startswith("limit"):
                assert np.isnan(values[idle]).all(), name
            assert np.isfinite(values[~idle]).any(), name


def test_a_real_split_changes_no_volume_feature(backend: Backend) -> None:
    """A 1:4 split (prices / 4, shares x 4, yen turnover unchanged) is invisible to every volume feature."""
    df = market_frame(32)
    split = df.copy()
    at = split["code"].eq(0) & (split.groupby("code").cumcount() >= 150)
    split.loc[at, ["O", "H", "L", "C"]] /= 4
    split.loc[at, "Vo"] *= 4
    split.loc[at & ~at.shift(fill_value=False), "AdjFactor"] = 0.25
    a = compute(backend, build_panel(backend, df), PARAMS)
    b = compute(backend, build_panel(backend, split), PARAMS)
    for name in a:
        assert_backend_equal(b[name], a[name], tol="sum_order", err_msg=name)


def test_volume_hand_built(backend: Backend) -> None:
    n = 25
    df = pd.DataFrame({"code": 0, "date": pd.bdate_range("2020-01-01", periods=n), "O": 100.0, "H": 102.0,
                       "L": 98.0, "C": 101.0, "Vo": 1000.0, "Va": 1000.0 * 100.0, "AdjFactor": 1.0,
                       "UL": 0.0, "LL": 0.0})
    df.loc[[3, 10, 11], "UL"] = 1.0
    df.loc[24, "Vo"] = 3000.0
    got = compute(backend, build_panel(backend, df), PARAMS)
    assert_backend_equal(got["vwap_gap"][:24], 0.01, tol="rounding")  # close 101 over VWAP 100
    assert_backend_equal(got["volume_ratio_5d"][4:24], 1.0, tol="rounding")
    assert_backend_equal(got["volume_ratio_5d"][24], 3000 / 1400, tol="rounding")
    assert_backend_equal(got["limit_up_count_20d"][19:], [3, 3, 3, 3, 2, 2], tol="exact")
    assert_backend_equal(got["amihud_20d"][20:], 0.0, tol="exact")  # the price never moves


def test_volume_lookbacks_are_declared_correctly(backend: Backend) -> None:
    assert_lookbacks(backend, PARAMS)


def test_volume_features_do_not_leak(backend: Backend) -> None:
    assert_causal(backend, PARAMS)
