"""The kernel registry: one name, two implementations, clear misses."""

from __future__ import annotations

import pytest

from gpuetl import kernels
from gpuetl.kernels import KernelSet, KernelUnavailable, cuda_source, register
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


def test_a_gpu_kernel_missing_its_library_raises_or_warns_by_name(clean_registry: None,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """on_cpu_fallback: never a silent CPU run. `raise` names the kernel and the library; `warn` says so and
    runs the CPU twin (here on host values: the arguments are not device arrays)."""
    register("t_graph", cpu="builtins:sum", gpu="builtins:max", doc="", gpu_requires=("no_such_library_xyz",))
    with pytest.raises(KernelUnavailable,
                       match=r"GPU kernel 't_graph' needs no_such_library_xyz.*on_cpu_fallback=warn"):
        KernelSet("gpu").t_graph([1, 2, 3])
    with caplog.at_level("WARNING"):
        assert KernelSet("gpu", on_cpu_fallback="warn").t_graph([1, 2, 3]) == 6  # the CPU twin ran
    assert "GPU kernel 't_graph' needs no_such_library_xyz" in caplog.text and "CPU twin" in caplog.text
    assert KernelSet("cpu").t_graph([1, 2, 3]) == 6
    with pytest.raises(ValueError, match="on_cpu_fallback"):
        KernelSet("gpu", on_cpu_fallback="silent")  # type: ignore[arg-type]
