"""The kernel set: numeric primitives cuDF lacks, each with a GPU version and a CPU twin.

A kernel is registered once by name with both implementations behind one signature; the backend hands
stage code a `KernelSet` bound to `gpu` or `cpu`, so `backend.kernels.<name>(...)` runs the right one.

A GPU version may need an optional library (cuGraph's pylibcugraph for PageRank and Louvain). Where it is
missing, the GPU kernel set never falls back silently: with `on_cpu_fallback: raise` (the default, and in
tests/CI) the call fails naming the kernel and the library; with `warn` it logs that by name, runs the CPU
twin on host copies of the arguments and hands the results back on the device.
CUDA sources live in the top-level `kernels/` folder and are loaded by `load_cuda_module` (CuPy
`RawModule`, compiled once and cached per device).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import logging
from collections.abc import Callable
from typing import Any, Literal

from gpuetl.resources import resource_dir

log = logging.getLogger(__name__)
Fallback = Literal["raise", "warn"]


class KernelUnavailable(RuntimeError):
    """A GPU kernel cannot run here (an optional library is missing) and CPU fallback is not allowed."""


@dataclasses.dataclass(frozen=True)
class Kernel:
    name: str
    cpu: str  # "module:function" of the CPU twin (pandas/NumPy/Numba)
    gpu: str  # "module:function" of the GPU version (CuPy RawModule / cuDF)
    doc: str
    gpu_requires: tuple[str, ...] = ()  # optional libraries the GPU version imports (beyond CuPy)


_REGISTRY: dict[str, Kernel] = {}


def register(name: str, *, cpu: str, gpu: str, doc: str, gpu_requires: tuple[str, ...] = ()) -> Kernel:
    """Declare a kernel; implementations are imported lazily, so CPU runs never import CuPy."""
    if name in _REGISTRY:
        raise ValueError(f"kernel {name!r} is already registered")
    kernel = Kernel(name, cpu, gpu, doc, gpu_requires)
    _REGISTRY[name] = kernel
    return kernel


def registered() -> dict[str, Kernel]:
    return dict(_REGISTRY)


class KernelSet:
    """The kernels bound to one backend: attribute access returns that backend's implementation."""

    def __init__(self, backend: str, on_cpu_fallback: Fallback = "raise") -> None:
        if backend not in ("gpu", "cpu"):
            raise ValueError(f"backend must be gpu or cpu, not {backend!r}")
        if on_cpu_fallback not in ("raise", "warn"):
            raise ValueError(f"on_cpu_fallback must be raise or warn, not {on_cpu_fallback!r}")
        self.backend = backend
        self.on_cpu_fallback = on_cpu_fallback

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        kernel = _REGISTRY.get(name)
        if kernel is None:
            known = ", ".join(sorted(_REGISTRY)) or "(none registered)"
            raise AttributeError(f"no kernel named {name!r}; registered kernels: {known}")
        if self.backend == "cpu":
            return _resolve(kernel.cpu)
        missing = [m for m in kernel.gpu_requires if importlib.util.find_spec(m) is None]
        if not missing:
            return _resolve(kernel.gpu)
        why = f"GPU kernel {name!r} needs {', '.join(missing)}, which is not installed"
        if self.on_cpu_fallback == "raise":
            raise KernelUnavailable(f"{why}; install it, or set on_cpu_fallback=warn to run its CPU twin")
        log.warning("%s: running its CPU twin on host copies (on_cpu_fallback=warn)", why)
        return functools.partial(_on_host, _resolve(kernel.cpu))

    def __dir__(self) -> list[str]:
        return sorted(_REGISTRY)

    def __repr__(self) -> str:
        return f"KernelSet({self.backend!r}, kernels={sorted(_REGISTRY)})"


def _on_host(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a CPU twin on host copies of device arrays and put array results back on the device."""
    on_device = any(type(a).__module__.startswith("cupy") for a in (*args, *kwargs.values()))
    host = [_to_host(a) for a in args]
    out = fn(*host, **{k: _to_host(v) for k, v in kwargs.items()})
    if not on_device:
        return out
    import cupy

    if isinstance(out, tuple):
        return tuple(cupy.asarray(o) if hasattr(o, "__array__") else o for o in out)
    return cupy.asarray(out) if hasattr(out, "__array__") else out


def _to_host(value: Any) -> Any:
    return value.get() if type(value).__module__.startswith("cupy") else value  # host-ok: the named CPU fallback


@functools.cache
def _resolve(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return,unused-ignore]


def cuda_source(filename: str) -> str:
    """The text of a `.cu` file from the shipped kernels/ folder."""
    path = resource_dir("kernels") / filename
    if not path.is_file():
        available = sorted(p.name for p in resource_dir("kernels").glob("*.cu"))
        raise FileNotFoundError(f"no CUDA source {filename!r} in {path.parent}; available: {available}")
    return path.read_text(encoding="utf-8")


@functools.cache
def _load_cuda_module(filename: str, device: int, options: tuple[str, ...]) -> Any:
    import cupy

    with cupy.cuda.Device(device):
        return cupy.RawModule(code=cuda_source(filename), options=options)


def load_cuda_module(filename: str, options: tuple[str, ...] = ("-std=c++17",)) -> Any:
    """Compile `kernels/<filename>` with NVRTC once per (file, device, options) and cache the module."""
    import cupy

    return _load_cuda_module(filename, cupy.cuda.Device().id, options)


# ----------------------------------------------------------------------------- the registered kernels

register(
    "segmented_ewm",
    cpu="gpuetl.kernels.ewm:ewm_cpu",
    gpu="gpuetl.kernels.ewm_cuda:ewm_gpu",
    doc="EWM mean/var/std within sorted segments, pandas groupby().ewm() semantics",
)

register(
    "ndtri",
    cpu="scipy.special:ndtri",
    gpu="cupyx.scipy.special:ndtri",
    doc="inverse of the standard normal CDF, elementwise (rank-gauss normalisation)",
)

register(
    "segmented_asof",
    cpu="gpuetl.kernels.asof:asof_cpu",
    gpu="gpuetl.kernels.asof_cuda:asof_gpu",
    doc="as-of join index per left row within integer key segments, pandas merge_asof semantics",
)

register(
    "shrunk_correlation",
    cpu="gpuetl.kernels.knn:shrunk_correlation_cpu",
    gpu="gpuetl.kernels.knn_cuda:shrunk_correlation_gpu",
    doc="batched covariances -> symmetric shrunk correlations on a fixed grid, thresholded (-inf elsewhere), in place",
)

register(
    "row_topk",
    cpu="gpuetl.kernels.knn:row_topk_cpu",
    gpu="gpuetl.kernels.knn_cuda:row_topk_gpu",
    doc="per-row k largest entries, ordered by value descending then column ascending (-1 where fewer)",
)

register(
    "union_pagerank",
    cpu="gpuetl.kernels.graph_analytics:union_pagerank_cpu",
    gpu="gpuetl.kernels.graph_analytics_cuda:union_pagerank_gpu",
    gpu_requires=("pylibcugraph",),
    doc="PageRank of each segment (day) of a disjoint-union graph, normalised per segment (cuGraph on the GPU)",
)

register(
    "union_louvain",
    cpu="gpuetl.kernels.graph_analytics:union_louvain_cpu",
    gpu="gpuetl.kernels.graph_analytics_cuda:union_louvain_gpu",
    gpu_requires=("pylibcugraph",),
    doc="Louvain communities of each segment (day) of a disjoint-union graph, canonical labels per segment",
)

register(
    "group_stats",
    cpu="gpuetl.kernels.groupstats:group_stats_cpu",
    gpu="gpuetl.kernels.groupstats_cuda:group_stats_gpu",
    doc="per-group count/mean/std/min/max and average-tie ranks of many columns, pandas groupby semantics",
)

register(
    "day_zscore",
    cpu="gpuetl.kernels.groupstats:day_zscore_cpu",
    gpu="gpuetl.kernels.zscore_gpu:day_zscore_gpu",
    doc="(x - the row's group mean) / its group std, NaN without spread, clipped: the per-day z-score in one pass",
)
