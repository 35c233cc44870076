"""The one seam between stage code and the compute libraries.

Once per process, `init(settings)` decides between `gpu` (cuDF, CuPy, RMM) and `cpu` (pandas, NumPy)
and says why. Stage code asks the active `Backend` for the frame module (`xdf`), the array module (`xp`)
and the kernels; it never imports cudf, cupy or pandas itself (ruff's banned-api rule enforces it).

On the GPU, one RMM pool backs everything: cuDF allocates from RMM's current device resource, and CuPy's
and PyTorch's allocators are pointed at the same resource, so the ETL and the training loop share one
pool. A `StatisticsResourceAdaptor` on top of the pool gives current and peak bytes to `doctor` and to
the stage timings.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import importlib
import importlib.util
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
from dask.utils import parse_bytes

from gpuetl.config import GpuSettings, Settings
from gpuetl.kernels import KernelSet
from gpuetl.kernels.rolling import rolling_cpu, scan_cpu, shift_cpu
from gpuetl.kernels.segments import segment_offsets

log = logging.getLogger(__name__)

BackendName = Literal["gpu", "cpu"]
RollingStat = Literal["sum", "mean", "std", "var", "min", "max", "count"]
_POOL_ALIGNMENT = 256


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here; the message names what is missing."""


class CpuFallbackRefused(RuntimeError):
    """Work that cannot run on the GPU met `on_cpu_fallback: raise`; the message names it and why."""


@dataclasses.dataclass(frozen=True)
class GpuProbe:
    usable: bool
    reason: str  # why the GPU can or cannot be used: the first missing piece, by name


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    total_bytes: int
    compute_capability: str


@dataclasses.dataclass(frozen=True)
class Backend:
    """What stage code gets: the frame module, the array module, the kernels, and why this backend."""

    name: BackendName
    xdf: ModuleType  # pandas or cudf
    xp: ModuleType  # numpy or cupy
    kernels: KernelSet
    reason: str
    device: DeviceInfo | None = None
    pool: Any = None  # rmm StatisticsResourceAdaptor over the PoolMemoryResource (gpu only)
    # work that fell back to the CPU (`fall_back_to_cpu`), by what it was: never silent, and counted
    fallbacks: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter, compare=False)

    @property
    def is_gpu(self) -> bool:
        return self.name == "gpu"

    def range(self, name: str) -> contextlib.AbstractContextManager[Any]:
        """An NVTX range named `name` around the work inside it, for Nsight Systems timelines; a no-op on the CPU
        and where no NVTX binding imports (the `nvtx` package, else CuPy's)."""
        annotate = _nvtx_annotate() if self.is_gpu else None
        return annotate(name) if annotate is not None else contextlib.nullcontext()

    def fall_back_to_cpu(self, what: str, why: str) -> Backend:
        """Count `what` as run on the CPU instead of this backend because of `why`, and return the CPU backend to
        run it on; with `on_cpu_fallback: raise` (the default) refuse instead, with `warn` log it by name."""
        self.fallbacks[what] += 1
        message = f"{what} cannot run on the {self.name} backend ({why})"
        if self.kernels.on_cpu_fallback == "raise":
            raise CpuFallbackRefused(f"{message}; set on_cpu_fallback=warn to run it on the CPU")
        log.warning("%s: running it on the CPU on host copies (on_cpu_fallback=warn)", message)
        return Backend("cpu", importlib.import_module("pandas"), np, KernelSet("cpu"),
                       f"the CPU fallback of the {self.name} backend")

    def memory_stats(self) -> dict[str, int] | None:
        """Pool size and current/peak bytes allocated through the RMM pool; None on the CPU."""
        if self.pool is None:
            return None
        counts = self.pool.allocation_counts
        return {
            "pool_bytes": int(self.pool.get_upstream().pool_size()),
            "current_bytes": int(counts.current_bytes),
            "peak_bytes": int(counts.peak_bytes),
            "total_bytes": int(counts.total_bytes),
        }

    def series(self, values: Any) -> Any:
        """A frame-library Series over array `values`, NaN meaning missing on both backends.

        cuDF keeps NaN distinct from null unless asked; pandas treats NaN as missing. Converting NaN to
        null on the GPU gives groupby/rolling the same missing-value rules as pandas.
        """
        if self.is_gpu:
            return self.xdf.Series(values, nan_as_null=True)
        return self.xdf.Series(values)

    def to_array(self, series: Any) -> Any:
        """Series -> float64 array of this backend (device array on the GPU), missing as NaN."""
        if self.is_gpu:
            return series.astype("float64").to_cupy(na_value=float("nan"))
        nan = float("nan")
        return series.to_numpy(dtype="float64", na_value=nan)  # host-ok: the CPU backend: pandas to NumPy, on the host

    def read_parquet(self, files: list[str], columns: list[str] | None = None,
                     filters: list[tuple[str, str, Any]] | None = None) -> Any:
        """Parquet files -> one frame of this backend (cuDF reads straight to the device); `filters` keeps the
        rows that match every (column, op, value) condition, pushed down to the reader."""
        if self.is_gpu:  # dataset_kwargs={}: no year=/month= columns from the folder names, as on the CPU
            return self.xdf.read_parquet(files, columns=columns, filters=filters, dataset_kwargs={})
        import pyarrow.dataset as pads
        import pyarrow.parquet as pq

        expr = pq.filters_to_expression(filters) if filters else None
        # local files (a lake on object storage is read from its local mirror): pre-buffering, which coalesces
        # a remote file's reads, only costs here (-17% on the 1,223 one-day files of the medium bench's lake)
        fmt = pads.ParquetFileFormat(default_fragment_scan_options=pads.ParquetFragmentScanOptions(pre_buffer=False))
        table = pads.dataset(files, format=fmt).to_table(columns=columns, filter=expr)
        return table.to_pandas(date_as_object=False)  # host-ok: the CPU backend reads into pandas

    def write_parquet(self, columns: Mapping[str, Any], path: str | Path, dictionary: list[str] | None = None) -> None:
        """Equal-length columns (arrays or Series of this backend, default index) -> one Parquet file.

        cuDF encodes on the device (choosing encodings itself); on the CPU the arrays go to Arrow without the
        copy a pandas frame makes, and only the `dictionary` columns are dictionary-encoded when given:
        trying it on every float column makes Arrow's writer ~3x slower for no smaller a file.
        """
        if self.is_gpu:
            self.xdf.DataFrame(dict(columns)).to_parquet(str(path), index=False)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(dict(columns)), str(path), use_dictionary=True if dictionary is None else dictionary)

    def rolling(self, x: Any, window: int, stat: RollingStat, min_periods: int, groups: Any = None,
                offsets: Any = None) -> Any:
        """Trailing `window`-row statistic of array `x` (per group of `groups` when given: rows sorted by
        group; `offsets`, the groups' segment offsets, spares recomputing them), with pandas' rolling semantics
        on both backends; a float64 array of this backend.

        The CPU runs pandas' own arithmetic per segment in Numba (gpuetl.kernels.rolling: pandas' groupby
        bookkeeping cost more than the sums). A window of equal values gives exactly that value (mean) and
        exactly 0 (var, std), as pandas does: libcudf divides a plain window sum by the count, which can miss
        the value by a rounding step, and a mean that is not exact leaves a variance that is tiny instead of 0;
        features that compare such a result with 0 or with another mean (crosses, CCI, Bollinger, z-scores)
        would then differ by backend.
        """
        if not self.is_gpu:
            x = np.asarray(x, dtype=np.float64)
            if offsets is None:
                offsets = segment_offsets(np, np.asarray(groups)) if groups is not None else np.array([0, len(x)])
            return rolling_cpu(x, offsets, window, stat, min_periods)
        s = self.series(x)
        roll = (s.groupby(self.series(groups), sort=True) if groups is not None else s).rolling(
            window, min_periods=min_periods)
        res = self._rolled(roll, stat)  # rows are sorted by group, so the group-ordered result is in row order
        if stat in ("mean", "var", "std"):
            res = exact_when_flat(self.xp, res, self._rolled(roll, "max"), self._rolled(roll, "min"), stat)
        return res

    def code_date_order(self, frame: Any) -> tuple[Any, Any, Any]:
        """(order, code ids, codes) of a frame's rows by (Code, Date): `order` the row positions in that order,
        `code ids` each ordered row's index into `codes` (the sorted distinct codes). Ties keep their row order.

        The CPU factorises the codes once and sorts small integers (a stable radix sort of the code ids when the
        dates already rise, as a lake read in date order does), instead of pandas' two-key sort of strings."""
        if self.is_gpu:
            keyed = frame[["Code", "Date"]].assign(_row=self.xp.arange(len(frame)))
            keyed = keyed.sort_values(["Code", "Date"], kind="stable")
            code_id, codes = keyed["Code"].factorize()
            return keyed["_row"].to_cupy(), self.xp.asarray(code_id), codes
        code_id, codes = self.xdf.factorize(frame["Code"], sort=True)
        days = frame["Date"].to_numpy().astype("datetime64[D]").astype(np.int64)  # host-ok: the CPU backend
        small = code_id.astype(np.int16) if len(codes) < 2**15 else code_id
        if len(days) < 2 or bool((days[1:] >= days[:-1]).all()):
            order = np.argsort(small, kind="stable")  # radix for 16-bit keys: rows already in date order
        else:
            order = np.lexsort((days, code_id))
        return order, code_id[order], codes

    def segmented_shift(self, x: Any, k: int, offsets: Any, group: Any) -> Any:
        """x[t - k] within each segment of sorted rows (k > 0 looks back), NaN across segment boundaries; the CPU
        in one Numba pass (gpuetl.kernels.rolling), the GPU in CuPy from the rows' segment ids `group`."""
        if not self.is_gpu:
            return shift_cpu(x, offsets, k)
        xp, n = self.xp, len(group)
        src = xp.arange(n) - k
        ok = (src >= 0) & (src < n)
        src_c = xp.clip(src, 0, max(n - 1, 0))
        ok &= group[src_c] == group
        return xp.where(ok, x[src_c], xp.nan)

    def segmented_scan(self, x: Any, op: Literal["prod", "max"], offsets: Any, group: Any) -> Any:
        """Running product or maximum within each segment, missing values skipped (and left NaN), as pandas'
        groupby cumprod / cummax: Numba on the CPU, cuDF's groupby scan on the GPU."""
        if not self.is_gpu:
            return scan_cpu(x, offsets, op)
        grouped = self.series(x).groupby(self.series(group), sort=True)
        return self.to_array((grouped.cumprod() if op == "prod" else grouped.cummax()).reset_index(drop=True))

    def _rolled(self, roll: Any, stat: str) -> Any:
        return self.to_array(getattr(roll, stat)().reset_index(drop=True))

    def free_device_bytes(self) -> int | None:
        """Bytes of the RMM pool not in use (the GPU's budget for batched work); None on the CPU."""
        stats = self.memory_stats()
        return None if stats is None else max(stats["pool_bytes"] - stats["current_bytes"], 0)

    def days(self, series: Any) -> Any:
        """A date/datetime Series -> int64 days since 1970-01-01 as an array of this backend."""
        ns = series.astype("datetime64[ns]").astype("int64")
        days = ns.to_cupy() if self.is_gpu else ns.to_numpy()  # host-ok: to_numpy only on the CPU backend
        return days // 86_400_000_000_000

    def to_host(self, values: Any) -> Any:
        """A small array, Series or Index of this backend as a NumPy array: plans, per-date summaries and axis
        labels between tasks, never a stage's columns. Callers mark the call `host-ok`, as any transfer."""
        if hasattr(values, "to_pandas"):
            values = values.to_pandas()  # host-ok: cuDF Series/Index (the caller says why)
        if self.is_gpu and hasattr(values, "get"):
            values = values.get()  # host-ok: a CuPy array (the caller says why)
        return np.asarray(values)

    def synchronize(self) -> None:
        """Wait for queued device work (before reading a clock); a no-op on the CPU."""
        if self.is_gpu:
            self.xp.cuda.runtime.deviceSynchronize()


@functools.cache
def _nvtx_annotate() -> Callable[[str], contextlib.AbstractContextManager[Any]] | None:
    """The NVTX range maker of this process: `nvtx.annotate` where the package is installed, else CuPy's
    `time_range`; None without either (the ranges are then no-ops)."""
    maker: Callable[[str], contextlib.AbstractContextManager[Any]]
    if importlib.util.find_spec("nvtx") is not None:
        maker = importlib.import_module("nvtx").annotate
        return maker
    try:
        maker = importlib.import_module("cupyx.profiler").time_range
    except (ImportError, AttributeError):
        return None
    return maker


def exact_when_flat(xp: ModuleType, res: Any, hi: Any, lo: Any, stat: str) -> Any:
    """A window statistic made exact where the window's values are all equal (max == min): the value itself
    for a mean, 0 for a variance or standard deviation (see `Backend.rolling`)."""
    flat = (hi == lo) & ~xp.isnan(res)
    return xp.where(flat, hi if stat == "mean" else 0.0, res)


def probe_gpu() -> GpuProbe:
    """Can this process use the GPU backend? Checks CuPy, a visible device, RMM and cuDF, in that order."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as err:
        return GpuProbe(False, f"cupy is not installed ({err}); install the `gpu` extra or the conda env")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as err:  # CUDARuntimeError without a driver; the message is what the user needs
        return GpuProbe(False, f"no CUDA device is visible ({type(err).__name__}: {err})")
    if count == 0:
        return GpuProbe(False, "no CUDA device is visible (cudaGetDeviceCount returned 0)")
    for module in ("rmm", "cudf"):
        try:
            importlib.import_module(module)
        except Exception as err:  # ImportError, or a CUDA/driver error raised while cuDF loads
            return GpuProbe(False, f"{module} does not import ({type(err).__name__}: {err})")
    return GpuProbe(True, f"cudf imports and {count} CUDA device(s) are visible")


def resolve(requested: str) -> tuple[BackendName, str]:
    """Turn `auto|gpu|cpu` into a concrete backend and the reason for it."""
    if requested == "cpu":
        return "cpu", "backend: cpu was requested"
    if requested not in ("auto", "gpu"):
        raise ValueError(f"backend must be auto, gpu or cpu, not {requested!r}")
    probe = probe_gpu()
    if probe.usable:
        return "gpu", f"backend: {requested}; {probe.reason}"
    if requested == "gpu":
        raise BackendUnavailable(f"backend: gpu was requested but the GPU cannot be used: {probe.reason}")
    return "cpu", f"backend: auto chose cpu because {probe.reason}"


def create(settings: Settings) -> Backend:
    """Build a backend from settings (on the GPU this sets up the RMM pool). Prefer `init` in programs."""
    name, reason = resolve(settings.backend)
    if name == "cpu":
        return Backend("cpu", importlib.import_module("pandas"), importlib.import_module("numpy"),
                       KernelSet("cpu", settings.on_cpu_fallback), reason)
    pool, device = _init_gpu_memory(settings.gpu)
    return Backend("gpu", importlib.import_module("cudf"), importlib.import_module("cupy"),
                   KernelSet("gpu", settings.on_cpu_fallback), reason, device, pool)


_ACTIVE: Backend | None = None


def init(settings: Settings) -> Backend:
    """Choose the backend for this process, once. A second call must agree with the first."""
    global _ACTIVE
    if _ACTIVE is not None:
        if settings.backend not in ("auto", _ACTIVE.name):
            raise BackendUnavailable(
                f"the backend is already {_ACTIVE.name} in this process; cannot switch to {settings.backend}"
            )
        return _ACTIVE
    _ACTIVE = create(settings)
    log.info("%s", _ACTIVE.reason)
    return _ACTIVE


def get() -> Backend:
    """The backend chosen by `init`; stage code calls this instead of importing a frame library."""
    if _ACTIVE is None:
        raise RuntimeError("no backend chosen yet: call gpuetl.backend.init(settings) first")
    return _ACTIVE


def pool_size_bytes(spec: str, total_bytes: int) -> int:
    """`"70%"` of `total_bytes`, or a size like `"40GB"`, rounded down to RMM's 256-byte alignment."""
    text = str(spec).strip()
    if text.endswith("%"):
        share = float(text[:-1])
        if not 0 < share <= 100:
            raise ValueError(f"gpu.rmm_pool {spec!r}: a share must be in (0%, 100%]")
        size = int(total_bytes * share / 100)
    else:
        size = int(parse_bytes(text))
    if size <= 0 or size > total_bytes:
        raise ValueError(f"gpu.rmm_pool {spec!r} = {size} bytes does not fit the device's {total_bytes} bytes")
    return size - size % _POOL_ALIGNMENT


def _init_gpu_memory(cfg: GpuSettings) -> tuple[Any, DeviceInfo]:
    cupy = importlib.import_module("cupy")
    rmm = importlib.import_module("rmm")
    from rmm.allocators.cupy import rmm_cupy_allocator

    cupy.cuda.Device(cfg.device).use()
    props = cupy.cuda.runtime.getDeviceProperties(cfg.device)
    _free, total = rmm.mr.available_device_memory()
    device = DeviceInfo(
        index=cfg.device,
        name=props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"]),
        total_bytes=int(total),
        compute_capability=f"{props['major']}.{props['minor']}",
    )
    pool = rmm.mr.PoolMemoryResource(rmm.mr.CudaMemoryResource(),
                                     initial_pool_size=pool_size_bytes(cfg.rmm_pool, int(total)))
    stats = rmm.mr.StatisticsResourceAdaptor(pool)
    rmm.mr.set_current_device_resource(stats)
    cupy.cuda.set_allocator(rmm_cupy_allocator)
    if cfg.share_pool_with_torch:
        _share_pool_with_torch()
    return stats, device


def _share_pool_with_torch() -> None:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return
    if not torch.cuda.is_available():
        return
    if torch.cuda.is_initialized():
        raise BackendUnavailable(
            "PyTorch already initialised CUDA, so its allocator can no longer be pointed at the RMM pool: "
            "call gpuetl.backend.init() before any torch CUDA work, or set gpu.share_pool_with_torch=false"
        )
    from rmm.allocators.torch import rmm_torch_allocator

    if rmm_torch_allocator is None:
        raise BackendUnavailable("rmm was built without its PyTorch allocator; set gpu.share_pool_with_torch=false")
    torch.cuda.memory.change_current_allocator(rmm_torch_allocator)
