"""The feature engine: a registry of features computed on a (Code, Date) panel through the backend seam."""

from gpuetl.features import calendar, market, price, sector  # noqa: F401  (register their features)
