"""Sector-relative features: the day's sector mean return, the stock minus its sector, rank in sector."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from gpuetl.features.panel import Panel
from gpuetl.ops import SOME, Days, feature


def _outputs(p: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(f"{s}_{k}d" for k in p["horizons"] for s in ("sector_ret", "ret_vs_sector", "sector_rank"))


@feature("sector_relative", group="sector", inputs=("close", "sector"), outputs=_outputs,
         lookback=lambda p: max(p["horizons"]),
         normalize=lambda col: "raw" if col.startswith("sector_rank") else "cross_section", axis="day",
         tolerance="sum_order")
def sector_relative(panel: Panel, horizons: Annotated[tuple[Days, ...], SOME]) -> Mapping[str, Any]:
    """Equal-weighted sector return (33 sectors) that day, the stock's excess over it, its rank within it."""
    xp = panel.xp
    b = panel.backend
    sector = panel["sector"]
    known = ~xp.isnan(sector)
    if not bool(known.any()):  # host-ok: one flag; a build's plan says once when the lake has no sector at all
        return {name: panel.nan() for name in _outputs({"horizons": horizons})}
    n_sector = int(xp.max(xp.where(known, sector, 0.0))) + 2  # host-ok: the sector key's stride
    key = panel.date_id * n_sector + xp.where(xp.isnan(sector), n_sector - 1, sector).astype(xp.int64)
    out: dict[str, Any] = {}
    for k in horizons:
        ret = panel.pct_change(panel["close"], k)
        grouped = b.series(ret).groupby(b.series(key), sort=True)
        mean = b.to_array(grouped.transform("mean").reset_index(drop=True))
        rank = b.to_array(grouped.rank(pct=True).reset_index(drop=True))
        unknown = xp.isnan(sector)
        out[f"sector_ret_{k}d"] = xp.where(unknown, xp.nan, mean)
        out[f"ret_vs_sector_{k}d"] = xp.where(unknown, xp.nan, ret - mean)
        out[f"sector_rank_{k}d"] = xp.where(unknown, xp.nan, rank)
    return out
