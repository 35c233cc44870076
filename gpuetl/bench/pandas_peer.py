"""The pandas peer ("pandas-naive"): the benchmark's stages the plain way a researcher writes them.

A loop over the bar files, `groupby("Code").apply` of a per-code function for the adjustment and the features,
`merge_asof` for the statements, a groupby per feature for the per-day ranks and z-scores, a pivot and a loop
over the days for the graphs (gpuetl.bench.daily_graph) and networkx day by day for their analytics. Same
numbers as gpuetl (checked), including TA-Lib's seeded EMA.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from gpuetl.bench import daily_graph
from gpuetl.bench.inputs import Inputs
from gpuetl.bench.spec import BAR_COLUMNS, CLIP, FEATURES, GRAPH_OVERRIDES
from gpuetl.graphs.config import load_graph_config

ADJUSTED = ("open", "high", "low", "close", "volume")


def adjust_code(g: pd.DataFrame) -> pd.DataFrame:
    cum = g["AdjFactor"].fillna(1.0).cumprod()
    return pd.DataFrame({"open": g["O"] / cum, "high": g["H"] / cum, "low": g["L"] / cum, "close": g["C"] / cum,
                         "volume": g["Vo"] * cum}, index=g.index)


def ema_talib(c: pd.Series, n: int) -> pd.Series:
    """TA-Lib's EMA: the first full window's mean, then alpha 2/(n+1) (pandas carries it over missing rows)."""
    seed = c.rolling(n).mean()
    start = seed.first_valid_index()
    if start is None:
        return seed
    fed = c.where(c.index > start)
    fed[start] = seed[start]
    return fed.ewm(alpha=2.0 / (n + 1), adjust=False).mean()


def features_code(g: pd.DataFrame) -> pd.DataFrame:
    c, vol = g["close"], g["volume"]
    out = {f"ret_{k}d": c / c.shift(k) - 1.0 for k in (1, 5, 20, 60)}
    ma = {f"sma{n}": c.rolling(n).mean() for n in (5, 20, 60)} | {f"ema{n}": ema_talib(c, n) for n in (12, 26)}
    for name, m in ma.items():
        out[f"{name}_gap"] = c / m - 1.0
        out[f"{name}_slope"] = m / m.shift(5) - 1.0
    logret = np.log(c / c.shift(1))
    out |= {f"rvol_{n}d": logret.rolling(n).std() * math.sqrt(252) for n in (20, 60)}
    mean = vol.rolling(20).mean()
    out["volume_ratio_20d"] = (vol / mean).where((mean > 0) & c.notna())
    out |= {f"dist_high_{n}d": c / g["high"].rolling(n).max() - 1.0 for n in (20, 60)}
    out |= {f"dist_low_{n}d": c / g["low"].rolling(n).min() - 1.0 for n in (20, 60)}
    out["drawdown"] = c / c.cummax() - 1.0
    return pd.DataFrame(out, index=g.index)[list(FEATURES)]


def horizon_returns(wide: pd.DataFrame, h: int) -> np.ndarray:
    prev = wide.shift(h)
    r = (wide / prev.where(prev > 0) - 1.0).to_numpy(dtype=np.float64)
    return np.where(np.isfinite(r), r, np.nan)


class PandasStages:
    def __init__(self, inputs: Inputs) -> None:
        self.files = inputs.bar_files
        self.statements = inputs.statements
        self.graph_config = load_graph_config(overrides=GRAPH_OVERRIDES)

    def read(self, state: dict[str, Any]) -> pd.DataFrame:
        bars = pd.concat([pd.read_parquet(f, columns=BAR_COLUMNS) for f in self.files], ignore_index=True)
        bars["Date"] = pd.to_datetime(bars["Date"]).astype("datetime64[ms]")
        return bars

    def adjust(self, state: dict[str, Any]) -> pd.DataFrame:
        bars = state["read"].sort_values(["Code", "Date"]).reset_index(drop=True)
        cols = ["O", "H", "L", "C", "Vo", "AdjFactor"]
        return bars.join(bars.groupby("Code", group_keys=False)[cols].apply(adjust_code))

    def features(self, state: dict[str, Any]) -> pd.DataFrame:
        df = state["adjust"]
        feats = df.groupby("Code", group_keys=False)[["close", "high", "low", "volume"]].apply(features_code)
        return df[["Code", "Date"]].join(feats)

    def asof(self, state: dict[str, Any]) -> pd.DataFrame:
        left = state["adjust"][["Code", "Date", "C"]].sort_values("Date")
        right = self.statements.sort_values("Eff")
        merged = pd.merge_asof(left, right, left_on="Date", right_on="Eff", by="Code", direction="backward")
        merged = merged.sort_values(["Code", "Date"]).reset_index(drop=True)
        c = merged["C"]
        return pd.DataFrame({"st_eps_yield": merged["EPS"] / c, "st_bps_yield": merged["BPS"] / c,
                             "st_fwd_eps_yield": merged["FEPS"] / c,
                             "st_days_since": (merged["Date"] - merged["Eff"]).dt.days.astype("float64")})

    def normalize(self, state: dict[str, Any]) -> pd.DataFrame:
        feats = state["features"]
        g = feats.groupby("Date")
        out = {}
        for f in FEATURES:
            mean, std = g[f].transform("mean"), g[f].transform("std")
            out[f"{f}_rank"] = g[f].rank(pct=True)
            out[f"{f}_z"] = ((feats[f] - mean) / std.where(std > 0)).clip(-CLIP, CLIP)
        return pd.DataFrame(out)

    def graphs(self, state: dict[str, Any]) -> dict[str, np.ndarray]:
        wide = state["adjust"].pivot(index="Date", columns="Code", values="close").sort_index().sort_index(axis=1)
        return daily_graph.all_days(horizon_returns(wide, 1), horizon_returns(wide, 5), self.graph_config)

    def analytics(self, state: dict[str, Any]) -> dict[str, np.ndarray]:
        adjusted = state["adjust"]
        shape = (adjusted["Date"].nunique(), adjusted["Code"].nunique())
        return daily_graph.analytics(state["graphs"], shape, self.graph_config)

    def canonical(self, stage: str, output: Any) -> dict[str, np.ndarray]:
        if stage in ("graphs", "analytics"):
            return output
        frame = output.sort_values(["Code", "Date"]) if stage == "read" else output
        names = {"read": ["O", "H", "L", "C", "Vo", "Va", "AdjFactor"], "adjust": list(ADJUSTED)}.get(
            stage, [c for c in frame.columns if c not in ("Code", "Date")])
        return {n: frame[n].to_numpy(dtype=np.float64) for n in names}
