"""Helpers for feature tests: panels with limit flags, running ops, comparing with references, and the two
generic checks every feature op gets (causality by perturbation, declared lookbacks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from gpuetl import ops
from gpuetl.backend import Backend
from gpuetl.dataset.registry import REGISTRY
from gpuetl.features.panel import Panel
from tests._testing import assert_backend_equal, host
from tests.support.panels import make_panel, per_code, random_walk_frame


def with_flags(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Add limit-hit flags UL/LL (1.0/0.0, NaN on no-trade days) to a random-walk frame."""
    rng = np.random.default_rng(seed)
    out = df.copy()
    for col in ("UL", "LL"):
        out[col] = (rng.random(len(df)) < 0.08).astype(float)
        out.loc[out["C"].isna(), col] = np.nan
    return out


def build_panel(backend: Backend, df: pd.DataFrame) -> Panel:
    """make_panel, plus the UL/LL columns when the frame has them."""
    panel = make_panel(backend, df)
    for col in ("UL", "LL"):
        if col in df:
            panel.columns[col] = backend.xp.asarray(df[col].to_numpy(dtype=float))
    return panel


def compute(backend: Backend, panel: Panel, params: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, p in params.items():
        out |= {k: host(backend, v) for k, v in ops.run(REGISTRY[name], panel, p).items()}
    return out


def assert_causal(backend: Backend, params: Mapping[str, Mapping[str, Any]], seed: int = 4) -> None:
    """Leakage rule: perturb every raw value after day t (prices, volumes, factors, flags); all outputs at or
    before t are bit-identical."""
    gapped = random_walk_frame(seed=seed + 1, lengths=(200,), gaps=0.05, splits=True).assign(code=2)
    df = pd.concat([random_walk_frame(seed=seed, lengths=(300, 120), splits=True), gapped], ignore_index=True)
    df = with_flags(df, seed)
    rng = np.random.default_rng(seed + 1)
    checked: set[str] = set()
    for t_row in (70, 280):  # rows of code 0: before and after its 250-day windows fill
        later = df["date"] > df["date"].iloc[t_row]
        perturbed = df.copy()
        for col in ("O", "H", "L", "C", "Vo", "Va"):
            perturbed.loc[later, col] *= rng.uniform(0.5, 2.0, later.sum())
        perturbed.loc[later, "AdjFactor"] = rng.choice([1.0, 0.5, 0.25, 3.0], later.sum())
        for col in ("UL", "LL"):
            perturbed.loc[later, col] = rng.choice([0.0, 1.0, np.nan], later.sum())
        keep = (~later).to_numpy()
        a = compute(backend, build_panel(backend, df), params)
        b = compute(backend, build_panel(backend, perturbed), params)
        for col in a:
            np.testing.assert_array_equal(a[col][keep], b[col][keep], err_msg=col)
            if np.isfinite(a[col][keep]).any():
                checked.add(col)
    assert checked == set(a), f"never compared a finite value: {set(a) - checked}"


def assert_lookbacks(backend: Backend, params: Mapping[str, Mapping[str, Any]]) -> None:
    """On a gap-free code, the last output of each feature to become valid does so at row `lookback`."""
    df = with_flags(random_walk_frame(seed=8, lengths=(320,)))
    panel = build_panel(backend, df)
    for name, p in params.items():
        out = ops.run(REGISTRY[name], panel, p)
        first = max(int(np.flatnonzero(np.isfinite(host(backend, v)))[0]) for v in out.values())
        assert first == REGISTRY[name].lookback(p), name


def per_code_frames(df: pd.DataFrame) -> list[tuple[np.ndarray, pd.DataFrame]]:
    return [(rows, df.loc[rows].reset_index(drop=True)) for rows in per_code(df)]


def compare(got: Mapping[str, np.ndarray], rows: np.ndarray, refs: Mapping[str, Any],
            tol: Mapping[str, str] | None = None) -> None:
    """Each reference against the op's values on `rows`, to its named tolerance in `tol` (default `reference`: a
    fast op against a slow formula)."""
    for name, ref in refs.items():
        assert_backend_equal(got[name][rows], np.asarray(ref, dtype=float), tol=(tol or {}).get(name, "reference"),
                             err_msg=name)


def single_code(backend: Backend, close: np.ndarray, spread: float = 1.0) -> Panel:
    n = len(close)
    df = pd.DataFrame({"code": 0, "date": pd.bdate_range("2020-01-01", periods=n), "O": close, "H": close + spread,
                       "L": close - spread, "C": close, "Vo": 1.0, "Va": close, "AdjFactor": 1.0})
    return make_panel(backend, df)


def seeded_ewm_ref(x: pd.Series, seed: pd.Series, alpha: float, ignore_na: bool = False) -> pd.Series:
    """pandas reference for a TA-Lib-seeded EWM on one code: start from `seed` where it is first valid."""
    out = pd.Series(np.nan, index=x.index)
    if not seed.notna().any():
        return out
    start = int(np.flatnonzero(seed.notna().to_numpy())[0])
    fed = x.copy()
    fed.iloc[:start] = np.nan
    fed.iloc[start] = seed.iloc[start]
    out.iloc[start:] = fed.ewm(alpha=alpha, adjust=False, ignore_na=ignore_na).mean().iloc[start:]
    return out
