"""The feature engine: a registry of features computed on a (Code, Date) panel through the backend seam."""

from gpuetl.features import (  # noqa: F401  (importing a module registers its features)
    calendar,
    cross_section,
    extremes,
    market,
    momentum,
    price,
    sector,
    volatility,
    volume,
)
