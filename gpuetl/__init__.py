"""gpuetl: GPU-first ETL for Japanese equities (J-Quants -> Parquet lake -> features -> GPU tensors)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gpuetl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
