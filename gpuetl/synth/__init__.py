"""A seeded synthetic Japanese equity market that produces every J-Quants dataset in canonical form.

Shared by the fake J-Quants server, the tests and the benchmarks. `build_market(MarketConfig(...))`
builds the core (calendar, universe, disclosures, returns, prices) and then each dataset on first use;
`market.truth` holds what the data hides (the planted effects' sizes and rules: reversal, momentum, the
peer graph and its lead-lag; factor loadings, splits, listings).
"""

from gpuetl.synth.config import MarketConfig
from gpuetl.synth.market import SyntheticMarket, build_market, cached_market

__all__ = ["MarketConfig", "SyntheticMarket", "build_market", "cached_market"]
