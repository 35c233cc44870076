"""The kernel registry: one name, two implementations, clear misses."""

from __future__ import annotations

import pytest

from gpuetl import kernels
from gpuetl.kernels import KernelSet, cuda_source, register
from gpuetl.resources import resource_dir


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "_REGISTRY", dict(kernels._REGISTRY))


def test_kernel_set_dispatches_by_backend(clean_registry: None) -> None:
    register("t_sum", cpu="builtins:sum", gpu="builtins:max", doc="test")
    assert KernelSet("cpu").t_sum([1, 2, 3]) == 6
    assert KernelSet("gpu").t_sum([1, 2, 3]) == 3
    assert "t_sum" in dir(KernelSet("cpu"))


def test_duplicate_registration_is_an_error(clean_registry: None) -> None:
    register("t_dup", cpu="builtins:sum", gpu="builtins:sum", doc="")
    with pytest.raises(ValueError, match="already registered"):
        register("t_dup", cpu="builtins:sum", gpu="builtins:sum", doc="")


def test_miss_lists_valid_names(clean_registry: None) -> None:
    register("t_known", cpu="builtins:sum", gpu="builtins:sum", doc="")
    with pytest.raises(AttributeError, match=r"no kernel named 'nope'; registered kernels: .*t_known"):
        KernelSet("cpu").nope  # noqa: B018


def test_kernels_folder_is_found_and_missing_source_is_clear() -> None:
    assert (resource_dir("kernels") / "README.md").is_file()
    with pytest.raises(FileNotFoundError, match=r"no CUDA source 'absent\.cu'"):
        cuda_source("absent.cu")
