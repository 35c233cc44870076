"""Backend selection: forced CPU, GPU requested where there is none, pool sizing, one choice per process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuetl import backend as backend_mod
from gpuetl.backend import Backend, BackendUnavailable, GpuProbe, create, pool_size_bytes, resolve
from gpuetl.config import load_settings
from gpuetl.kernels import KernelSet


def test_cpu_forced_gives_pandas_numpy() -> None:
    b = create(load_settings(overrides=["backend=cpu"]))
    assert (b.name, b.xdf, b.xp) == ("cpu", pd, np)
    assert isinstance(b.kernels, KernelSet) and b.kernels.backend == "cpu"
    assert b.memory_stats() is None and b.device is None
    assert "cpu was requested" in b.reason


def test_gpu_requested_without_gpu_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_mod, "probe_gpu", lambda: GpuProbe(False, "cudf does not import (ImportError: x)"))
    with pytest.raises(BackendUnavailable, match=r"gpu was requested.*cudf does not import"):
        create(load_settings(overrides=["backend=gpu"]))


def test_auto_without_gpu_chooses_cpu_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_mod, "probe_gpu", lambda: GpuProbe(False, "no CUDA device is visible"))
    name, reason = resolve("auto")
    assert name == "cpu"
    assert reason == "backend: auto chose cpu because no CUDA device is visible"


def test_real_probe_on_this_machine_is_consistent() -> None:
    probe = backend_mod.probe_gpu()
    name, _ = resolve("auto")
    assert name == ("gpu" if probe.usable else "cpu")
    if not probe.usable:
        with pytest.raises(BackendUnavailable, match=probe.reason.split(" (")[0]):
            resolve("gpu")


def test_unknown_backend_name() -> None:
    with pytest.raises(ValueError, match="auto, gpu or cpu"):
        resolve("tpu")


@pytest.mark.parametrize(
    ("spec", "total", "expected"),
    [("50%", 1_000_000, 500_000 - 500_000 % 256), ("100%", 2048, 2048), ("1KiB", 4096, 1024),
     ("1kB", 4096, 1000 - 1000 % 256)],
)
def test_pool_size(spec: str, total: int, expected: int) -> None:
    assert pool_size_bytes(spec, total) == expected


@pytest.mark.parametrize("spec", ["0%", "150%", "9GB"])
def test_pool_size_rejects_what_does_not_fit(spec: str) -> None:
    with pytest.raises(ValueError, match="rmm_pool"):
        pool_size_bytes(spec, 8 * 10**9)


def test_init_is_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_mod, "_ACTIVE", None)
    with pytest.raises(RuntimeError, match="no backend chosen"):
        backend_mod.get()
    first = backend_mod.init(load_settings(overrides=["backend=cpu"]))
    assert backend_mod.get() is first
    assert backend_mod.init(load_settings(overrides=["backend=auto"])) is first
    with pytest.raises(BackendUnavailable, match="already cpu"):
        backend_mod.init(load_settings(overrides=["backend=gpu"]))


def test_to_host_gives_numpy_arrays_of_arrays_series_and_indexes(cpu_backend: Backend) -> None:
    codes = pd.Series(["72030", "130A0", "13010"])
    for values, expected in ((np.arange(3.0), [0.0, 1.0, 2.0]), (codes, list(codes)),
                             (pd.Index(codes).unique(), list(codes))):
        out = cpu_backend.to_host(values)
        assert type(out) is np.ndarray and out.tolist() == expected


@pytest.mark.gpu
def test_to_host_copies_device_arrays_series_and_indexes(gpu_backend: Backend, cpu_backend: Backend) -> None:
    codes = pd.Series(["72030", "130A0", "13010"])
    on_device = (gpu_backend.xp.arange(3.0), gpu_backend.xdf.Series(codes), gpu_backend.xdf.Index(codes))
    on_host = (np.arange(3.0), codes, pd.Index(codes))
    for dev, host in zip(on_device, on_host, strict=True):
        out = gpu_backend.to_host(dev)  # host-ok: the method under test
        assert type(out) is np.ndarray and out.tolist() == cpu_backend.to_host(host).tolist()


@pytest.mark.gpu
def test_cupy_and_torch_allocate_from_the_one_rmm_pool(gpu_backend: Backend,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """After start-up, a CuPy array and a torch tensor are both carved out of the backend's RMM pool.

    It uses the session's GPU backend (made before any torch CUDA work, see conftest), as the process's
    active one for this test only: a second backend would find torch's CUDA initialised and refuse.
    """
    torch = pytest.importorskip("torch")
    import cupy

    monkeypatch.setattr(backend_mod, "_ACTIVE", gpu_backend)
    b = backend_mod.init(load_settings(overrides=["backend=gpu", "gpu.rmm_pool=25%"]))
    assert b is gpu_backend and b.is_gpu and b.memory_stats() is not None
    nbytes = 64 * 2**20
    before = b.memory_stats()["current_bytes"]
    arr = cupy.ones(nbytes // 4, dtype=cupy.float32)
    after_cupy = b.memory_stats()["current_bytes"]
    assert after_cupy - before >= nbytes
    ten = torch.ones(nbytes // 4, dtype=torch.float32, device="cuda")
    after_torch = b.memory_stats()["current_bytes"]
    assert after_torch - after_cupy >= nbytes
    pool = b.memory_stats()["pool_bytes"]
    assert pool >= after_torch
    del arr, ten
