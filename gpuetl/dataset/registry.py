"""Every op of gpuetl, listed here and nowhere else: the registry the dataset config, the build, the benchmarks
and the tests look ops up in by name (gpuetl.ops.Registry: a name listed twice is an error, a miss lists the
valid names).

An op is a value its module defines (the `gpuetl.ops.op` decorator makes one of a function); importing that
module registers nothing. A new op is listed below, in its stage's block, or no config can name it.
"""

from __future__ import annotations

from gpuetl.enrich import GROUPS as ENRICH
from gpuetl.features import (
    calendar,
    cross_section,
    extremes,
    market,
    momentum,
    normalize,
    price,
    sector,
    targets,
    volatility,
    volume,
)
from gpuetl.graphs import features as graph
from gpuetl.ops import Registry

REGISTRY = Registry([
    # as-of joins of the lake's raw datasets, in the order of the dataset config's switches (gpuetl.enrich)
    *ENRICH,
    # functions of the (Code, Date) panel (gpuetl.features)
    price.returns, price.overnight_intraday, price.range_location, price.sma, price.ema, price.realized_vol,
    momentum.rsi, momentum.macd, momentum.stoch, momentum.willr, momentum.roc, momentum.cci, momentum.adx,
    volatility.parkinson, volatility.garman_klass, volatility.natr, volatility.bollinger,
    volume.volume_ratio, volume.turnover_ratio, volume.amihud, volume.vwap_gap, volume.limit_flags,
    extremes.high_low_distance, extremes.drawdown, extremes.days_since_extreme,
    market.market, market.beta, sector.sector_relative, cross_section.cs_rank_feature,
    calendar.calendar, calendar.maturity,
    # the targets, and the normalised view beside every feature
    targets.targets, normalize.ts_zscore, normalize.normalize,
    # the daily graphs' per-node features (gpuetl.graphs)
    graph.graph,
])
