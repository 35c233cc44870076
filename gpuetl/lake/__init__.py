"""The raw Parquet lake: canonical typed rows per J-Quants dataset, atomic writes, a manifest of
complete fetch units, and a deterministic reader. Host I/O: pandas/pyarrow are used directly here."""

from gpuetl.lake.manifest import Manifest, UnitRecord
from gpuetl.lake.reader import manifest_hash, read, read_frame
from gpuetl.lake.store import Lake
from gpuetl.lake.units import Unit

__all__ = ["Lake", "Manifest", "Unit", "UnitRecord", "manifest_hash", "read", "read_frame"]
