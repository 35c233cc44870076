"""`gpuetl doctor`: what this machine runs gpuetl with, and why."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gpuetl.backend import Backend
from gpuetl.version import __version__

# import name -> distribution names it ships under (PyPI wheels first, then conda/source names)
PACKAGES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "pandas": ("pandas",),
    "pyarrow": ("pyarrow",),
    "cudf": ("cudf-cu13", "cudf-cu12", "cudf"),
    "cupy": ("cupy-cuda13x", "cupy-cuda12x", "cupy"),
    "rmm": ("rmm-cu13", "rmm-cu12", "rmm"),
    "dask_cudf": ("dask-cudf-cu13", "dask-cudf-cu12", "dask-cudf", "dask_cudf"),
    "dask_cuda": ("dask-cuda", "dask_cuda"),
    "pylibcugraph": ("pylibcugraph-cu13", "pylibcugraph-cu12", "pylibcugraph"),
    "torch": ("torch",),
    "torch_geometric": ("torch-geometric", "torch_geometric"),
    "xgboost": ("xgboost", "xgboost-cpu"),
    "dask": ("dask",),
    "distributed": ("distributed",),
    "aiohttp": ("aiohttp",),
    "numba": ("numba",),
}


def installed_version(module: str) -> str | None:
    for dist in PACKAGES.get(module, (module,)):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def report(backend: Backend, settings_path: Path) -> dict[str, Any]:
    """Everything doctor prints, as data (also useful in metadata.json and bug reports)."""
    info: dict[str, Any] = {
        "gpuetl": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "settings": str(settings_path.resolve()),
        "backend": backend.name,
        "reason": backend.reason,
        "versions": {m: installed_version(m) for m in PACKAGES},
    }
    if backend.device is not None:
        d = backend.device
        info["device"] = {"index": d.index, "name": d.name, "memory_gib": round(d.total_bytes / 2**30, 1),
                          "compute_capability": d.compute_capability}
        info["rmm_pool"] = backend.memory_stats()
        info["allocators"] = _allocators()
    return info


def _allocators() -> dict[str, str]:
    """Which allocator CuPy and torch use (the RMM pool, or their own): only asked on the GPU backend."""
    import cupy

    alloc = cupy.cuda.get_allocator()
    out = {"cupy": getattr(alloc, "__module__", "") + "." + getattr(alloc, "__qualname__", repr(alloc))}
    try:
        import torch
        from rmm.allocators.torch import rmm_torch_allocator

        current = torch.cuda.memory._get_current_allocator()
        shares = rmm_torch_allocator is not None and current is not None and \
            current.allocator() == rmm_torch_allocator.allocator()
        out["torch"] = "rmm pool" if shares else "torch caching allocator"
    except ImportError:
        out["torch"] = "not installed"
    return out


def render(info: dict[str, Any], console: Console) -> None:
    head = Table.grid(padding=(0, 2))
    head.add_row("gpuetl", info["gpuetl"])
    head.add_row("python", f"{info['python']} ({info['platform']})")
    head.add_row("settings", info["settings"])
    head.add_row("backend", f"[bold]{info['backend']}[/bold] — {info['reason']}")
    if "device" in info:
        d = info["device"]
        head.add_row("gpu", f"{d['name']} (device {d['index']}, {d['memory_gib']} GiB, sm {d['compute_capability']})")
        pool = info["rmm_pool"]
        head.add_row("rmm pool", f"{pool['pool_bytes'] / 2**30:.1f} GiB reserved, "
                                 f"{pool['current_bytes'] / 2**20:.1f} MiB in use, "
                                 f"peak {pool['peak_bytes'] / 2**20:.1f} MiB")
        head.add_row("allocators", ", ".join(f"{k}: {v}" for k, v in info["allocators"].items()))
    else:
        head.add_row("gpu", "none in use")
    console.print(head)
    table = Table("package", "version", title="versions")
    for name, ver in info["versions"].items():
        table.add_row(name, ver or "[dim]not installed[/dim]")
    console.print(table)
