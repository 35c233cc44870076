"""Shared fixtures: the `backend` fixture gives `cpu` always and `gpu` behind the `gpu` marker."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import AsyncIterator

import aiohttp
import pytest
from hypothesis import settings as hypothesis_settings

from gpuetl import backend as backend_mod
from gpuetl.config import Settings, load_settings

# property tests draw the same examples on every run: a CI failure is reproducible, never a lucky draw
hypothesis_settings.register_profile("repeatable", derandomize=True, print_blob=True)
hypothesis_settings.load_profile("repeatable")


@functools.cache
def gpu_probe() -> backend_mod.GpuProbe:
    return backend_mod.probe_gpu()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    probe = gpu_probe()
    if probe.usable:
        if any("gpu" in item.keywords for item in items):
            # before any test runs: the backend points torch's allocator at its RMM pool, which torch allows
            # only until its CUDA is initialised (a test doing torch CUDA work first would block every GPU test)
            _backend("gpu")
        if importlib.util.find_spec("pylibcugraph") is None:  # cuDF without cuGraph: the rest still runs
            no_graph = pytest.mark.skip(reason="needs pylibcugraph for GPU PageRank/Louvain (not installed)")
            for item in items:
                if "gpu" in item.keywords and "cugraph" in item.keywords:
                    item.add_marker(no_graph)
        return
    skip = pytest.mark.skip(reason=f"needs a usable GPU: {probe.reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@functools.cache
def _backend(name: str) -> backend_mod.Backend:
    # one backend object per kind per test session (the GPU one owns the process's RMM pool)
    return backend_mod.create(load_settings(overrides=[f"backend={name}", "gpu.rmm_pool=25%"]))


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def backend(request: pytest.FixtureRequest) -> backend_mod.Backend:
    return _backend(request.param)


@pytest.fixture
def cpu_backend() -> backend_mod.Backend:
    """The CPU backend, for parity tests that run both (`gpu_backend` beside it)."""
    return _backend("cpu")


@pytest.fixture
def gpu_backend() -> backend_mod.Backend:
    """The GPU backend, for parity tests marked `gpu` (which are skipped where there is no GPU)."""
    return _backend("gpu")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp session per test, for talking to servers on 127.0.0.1."""
    async with aiohttp.ClientSession() as session:
        yield session
