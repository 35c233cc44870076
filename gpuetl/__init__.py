"""gpuetl: GPU-first ETL for Japanese equities (J-Quants -> Parquet lake -> features -> GPU tensors)."""

from typing import Any

from gpuetl.version import __version__

__all__ = ["__version__", "open_dataset"]


def __getattr__(name: str) -> Any:
    """`gpuetl.open_dataset` on first use: `import gpuetl` stays light (no torch until tensors are asked for)."""
    if name == "open_dataset":
        from gpuetl.tensors import open_dataset

        return open_dataset
    raise AttributeError(f"module 'gpuetl' has no attribute {name!r}")
