"""Random OHLCV walks per code and the feature Panel built from them, as the dataset build builds it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gpuetl.backend import Backend
from gpuetl.features.adjust import add_adjusted
from gpuetl.features.panel import Panel


def random_walk_frame(seed: int = 0, lengths: tuple[int, ...] = (300, 1, 45, 260), gaps: float = 0.0,
                      splits: bool = False, tick: float | None = None) -> pd.DataFrame:
    """Random OHLCV walks per code; `tick` rounds prices to a price grid as exchanges do, so closes, highs and
    lows repeat (tied extremes, flat windows), as real prices do."""
    rng = np.random.default_rng(seed)
    frames = []
    for code, n in enumerate(lengths):
        close = 1000 * np.exp(np.cumsum(rng.standard_normal(n) * 0.02))
        open_ = close * np.exp(rng.standard_normal(n) * 0.005)
        high = np.maximum(open_, close) * (1 + rng.random(n) * 0.01)
        low = np.minimum(open_, close) * (1 - rng.random(n) * 0.01)
        if tick:
            close, open_ = np.round(close / tick) * tick, np.round(open_ / tick) * tick
            high = np.maximum(np.ceil(high / tick) * tick, np.maximum(open_, close))
            low = np.minimum(np.floor(low / tick) * tick, np.minimum(open_, close))
        factor = np.ones(n)
        if splits and n > 50:
            for at, ratio in ((n // 3, 0.5), (2 * n // 3, 0.2)):
                factor[at] = ratio
                scale = np.ones(n)
                scale[at:] = ratio
                open_, high, low, close = (a * scale for a in (open_, high, low, close))
        vol = rng.integers(1_000, 100_000, n).astype(float)
        frame = pd.DataFrame({"code": code, "date": pd.bdate_range("2020-01-01", periods=n), "O": open_, "H": high,
                              "L": low, "C": close, "Vo": vol, "Va": vol * close, "AdjFactor": factor})
        if gaps:
            idle = rng.random(n) < gaps
            frame.loc[idle, ["O", "H", "L", "C", "Vo", "Va"]] = np.nan
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def make_panel(backend: Backend, df: pd.DataFrame) -> Panel:
    xp = backend.xp
    cols = {c: xp.asarray(df[c].to_numpy(dtype=float)) for c in ("O", "H", "L", "C", "Vo", "Va", "AdjFactor")}
    days = df["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    panel = Panel(backend, xp.asarray(df["code"].to_numpy()), xp.asarray(days), cols)
    add_adjusted(panel)
    return panel


def per_code(df: pd.DataFrame) -> list[np.ndarray]:
    return [g.index.to_numpy() for _, g in df.groupby("code", sort=True)]
