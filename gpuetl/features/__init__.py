"""The feature engine: a registry of features computed on a (Code, Date) panel through the backend seam."""

from gpuetl.features import price  # noqa: F401  (registers the price features)
