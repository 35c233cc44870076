"""What the benchmark measures: sizes, stages, backends, and the exact work of each stage.

Every backend computes the same numbers per stage (checked at every size unless --no-check):
- read: the daily bars (Code, Date, O, H, L, C, Vo, Va, AdjFactor) of the lake, one frame;
- adjust: rows sorted by (Code, Date) and split-adjusted prices (each row divided by the product of its
  code's AdjustmentFactors so far; volume multiplied by it), as gpuetl.features.adjust;
- features: PRICE_OPS (returns, SMA/EMA gaps and slopes with TA-Lib's seeded EMA, realized vol, volume
  ratio, distance to highs/lows, drawdown) per code, as the gpuetl feature ops define them;
- asof: each row's latest statement (fins_summary) effective on or before its date (disclosed before that
  day's close, else the next business day), as yields on the raw close and days since the disclosure;
- normalize: per-day percentile ranks and winsorised z-scores (clip 3) of every feature;
- graphs: the daily EWM-correlation kNN graphs (configs/graph/default.yaml, PageRank and Louvain off):
  edges, degree, weighted degree and peer returns;
- analytics: PageRank and Louvain communities of every daily graph;
- tensors, train: the normalised dataset as dense device tensors (`gpuetl.tensors.open_dataset(...).panel`)
  and one GAT epoch over every day (`gpuetl.train.loop.train_epoch`, configs/train/gat.yaml), on a dataset
  the bench builds once from the lake (untimed); gpuetl only, since no peer has a counterpart.
"""

from __future__ import annotations

import dataclasses
from typing import Any

BACKENDS = ("gpu", "cpu", "polars", "polars-gpu", "pandas-naive")  # polars-gpu: the Polars peer on its GPU engine
GPUETL_BACKENDS = ("gpu", "cpu")
PROGRESS = "@bench-progress "  # a worker's stdout line with this prefix is a stage's result row (JSON) as it ends
REFERENCE = "cpu"  # the backend every other one is checked against
STAGES = ("read", "adjust", "features", "asof", "normalize", "graphs", "analytics", "tensors", "train")
NEEDS: dict[str, tuple[str, ...]] = {  # the stages whose output a stage starts from
    "read": (), "adjust": ("read",), "features": ("adjust",), "asof": ("adjust",), "normalize": ("features",),
    "graphs": ("adjust",), "analytics": ("graphs",), "tensors": (), "train": (),
}
LAKE_DATASETS = ("calendar", "master", "bars_daily", "fins_summary", "topix")
BAR_COLUMNS = ["Code", "Date", "O", "H", "L", "C", "Vo", "Va", "AdjFactor"]
STATEMENT_COLUMNS = ("EPS", "BPS", "FEPS")
CLIP = 3.0

# the feature ops (gpuetl registry names and params) every backend computes
PRICE_OPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("returns", {"horizons": (1, 5, 20, 60)}),
    ("sma", {"windows": (5, 20, 60), "slope_days": 5, "crosses": ()}),
    ("ema", {"windows": (12, 26), "slope_days": 5, "crosses": ()}),
    ("realized_vol", {"windows": (20, 60)}),
    ("volume_ratio", {"windows": (20,)}),
    ("high_low_distance", {"windows": (20, 60)}),
    ("drawdown", {}),
)
FEATURES = (
    "ret_1d", "ret_5d", "ret_20d", "ret_60d", "sma5_gap", "sma20_gap", "sma60_gap", "sma5_slope", "sma20_slope",
    "sma60_slope", "ema12_gap", "ema26_gap", "ema12_slope", "ema26_slope", "rvol_20d", "rvol_60d",
    "volume_ratio_20d", "dist_high_20d", "dist_high_60d", "dist_low_20d", "dist_low_60d", "drawdown",
)
GRAPH_OVERRIDES = ["features.pagerank=false", "features.louvain=false"]  # analytics is a stage of its own


@dataclasses.dataclass(frozen=True)
class Size:
    name: str
    codes: int
    start: str
    end: str
    seed: int = 7

    @property
    def label(self) -> str:
        years = int(self.end[:4]) - int(self.start[:4]) + 1
        return f"{self.name} ({self.codes:,} codes x {years} y)"


SIZES = {
    "small": Size("small", 500, "2023-01-01", "2024-12-31"),
    "medium": Size("medium", 2000, "2020-01-01", "2024-12-31"),
    "full": Size("full", 4000, "2015-01-01", "2024-12-31"),
}


def with_needs(stages: list[str]) -> list[str]:
    """The stages to run, in order: the chosen ones and every stage they start from."""
    wanted = set(stages)
    for stage in reversed(STAGES):
        if stage in wanted:
            wanted |= set(NEEDS[stage])
    return [s for s in STAGES if s in wanted]
