"""Volume, turnover, liquidity and limit-hit features (scale-free ratios; no-trade days are NaN).

Volume is split-adjusted (forward-cumulated, so ratios are continuous across splits); turnover (`Va`,
yen traded) needs no adjustment. The VWAP gap compares the raw close with the raw VWAP (`Va / Vo`), both
in the day's own price units, so it is free of split scaling without touching any factor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from gpuetl.config import Positive
from gpuetl.features.panel import Panel
from gpuetl.ops import SOME, Days, feature


def _ratio_to_mean(panel: Panel, x: Any, n: int) -> Any:
    """x / its mean over the last n rows (today included); NaN on no-trade days and when the mean is 0."""
    xp = panel.xp
    mean = panel.rolling(x, n, "mean")
    positive = mean > 0.0
    out = xp.where(positive, x / xp.where(positive, mean, 1.0), xp.nan)
    return xp.where(xp.isnan(panel["close"]) | xp.isnan(mean), xp.nan, out)


@feature("volume_ratio", group="volume", inputs=("volume", "close"),
         outputs=lambda p: tuple(f"volume_ratio_{n}d" for n in p["windows"]), lookback=lambda p: max(p["windows"]) - 1,
         tolerance="sum_order")
def volume_ratio(panel: Panel, windows: Annotated[Sequence[Days], SOME]) -> Mapping[str, Any]:
    """Volume relative to its mean over each window (1 = a usual day)."""
    return {f"volume_ratio_{n}d": _ratio_to_mean(panel, panel["volume"], n) for n in windows}


@feature("turnover_ratio", group="volume", inputs=("turnover", "close"),
         outputs=lambda p: tuple(f"turnover_ratio_{n}d" for n in p["windows"]),
         lookback=lambda p: max(p["windows"]) - 1, tolerance="sum_order")
def turnover_ratio(panel: Panel, windows: Annotated[Sequence[Days], SOME]) -> Mapping[str, Any]:
    """Turnover (yen traded) relative to its mean over each window."""
    return {f"turnover_ratio_{n}d": _ratio_to_mean(panel, panel["turnover"], n) for n in windows}


@feature("amihud", group="volume", inputs=("close", "turnover"),
         outputs=lambda p: tuple(f"amihud_{n}d" for n in p["windows"]), lookback=lambda p: max(p["windows"]),
         tolerance="sum_order")
def amihud(panel: Panel, windows: Annotated[Sequence[Days], SOME], scale: Positive) -> Mapping[str, Any]:
    """Amihud illiquidity: mean of |daily return| / turnover (yen) over each window, times `scale` (e.g. 1e9)."""
    xp = panel.xp
    close, turnover = panel["close"], panel["turnover"]
    traded = turnover > 0.0
    moved = xp.abs(close / panel.shift(close, 1) - 1.0)
    impact = xp.where(traded, moved / xp.where(traded, turnover, 1.0), xp.nan) * scale
    return {f"amihud_{n}d": panel.rolling(impact, n, "mean") for n in windows}


@feature("vwap_gap", group="volume", inputs=("C", "Vo", "Va"), outputs=lambda p: ("vwap_gap",), lookback=lambda p: 0)
def vwap_gap(panel: Panel) -> Mapping[str, Any]:
    """Raw close over the day's raw VWAP (turnover / volume), minus 1."""
    xp = panel.xp
    close, volume, turnover = panel["C"], panel["Vo"], panel["Va"]
    traded = (volume > 0.0) & (turnover > 0.0)
    gap = close * volume / xp.where(traded, turnover, 1.0) - 1.0
    return {"vwap_gap": xp.where(traded, gap, xp.nan)}


def _limit_outputs(p: Mapping[str, Any]) -> tuple[str, ...]:
    counts = [f"limit_{side}_count_{n}d" for side in ("up", "down") for n in p["windows"]]
    return ("limit_up", "limit_down", *counts)


@feature("limit_flags", group="volume", inputs=("UL", "LL"), outputs=_limit_outputs,
         lookback=lambda p: max(p["windows"]) - 1, normalize="raw")
def limit_flags(panel: Panel, windows: Annotated[Sequence[Days], SOME]) -> Mapping[str, Any]:
    """Daily upper/lower price-limit hits (1/0, NaN where unknown) and their counts over each window."""
    xp = panel.xp
    flags = {side: xp.where(xp.isnan(panel[col]), xp.nan, (panel[col] > 0.0).astype(xp.float64))
             for side, col in (("up", "UL"), ("down", "LL"))}
    out = {"limit_up": flags["up"], "limit_down": flags["down"]}
    for side in ("up", "down"):
        for n in windows:
            out[f"limit_{side}_count_{n}d"] = panel.rolling(flags[side], n, "sum")
    return out
