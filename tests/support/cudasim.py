"""Run the CUDA kernels of kernels/*.cu and their CuPy wrappers on the host, for CI without a GPU.

`load_wrapper("ewm_cuda")` loads gpuetl/kernels/ewm_cuda.py as it is, with NumPy standing in for CuPy and
`load_cuda_module` answered by `HostModule`: the same `.cu` text and options, compiled by g++ against
tests/support/cudasim.h (threads, barriers and warp shuffles on the host) instead of by NVRTC. So the kernel
source, its launch geometry and the wrapper's argument marshalling are all exercised, and held to the CPU
twins by tests/test_kernel_cudasim.py.

A launch checks each argument against the kernel's C signature, which CuPy does not: an array must be
C-contiguous with the element type of the pointer, and a scalar must have exactly the parameter's type
(a 64-bit value passed for an `int` is read as garbage on the device). Where nvcc is on the PATH, every
(source, options) pair is also compiled for the H100 (sm_90), so what runs here also builds there.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np

import gpuetl.kernels
from gpuetl.kernels import cuda_source

HEADER = Path(__file__).with_name("cudasim.h")
NVCC_ARCH = "sm_90"

# C parameter types (const and __restrict__ removed) -> NumPy dtypes
_C_TYPES = {
    "double": np.float64, "float": np.float32, "long long": np.int64, "long long int": np.int64,
    "unsigned long long": np.uint64, "int": np.int32, "unsigned int": np.uint32, "unsigned": np.uint32,
    "short": np.int16, "unsigned short": np.uint16, "char": np.int8, "signed char": np.int8,
    "unsigned char": np.uint8, "bool": np.bool_,
}
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)


class KernelArgumentError(TypeError):
    """An argument that the device would misread: wrong dtype, layout or scalar width."""


@functools.cache
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="gpuetl-cudasim-"))


Param = tuple[str, str, str, bool]  # (declared type, base type, name, is a pointer)


def _params(text: str) -> list[Param]:
    """'const double* __restrict__ vals, long long n' -> [('const double*', 'double', 'vals', True), ...]."""
    out = []
    for raw in (p.strip() for p in text.split(",") if p.strip()):
        decl = " ".join(re.sub(r"\b__restrict__\b", " ", raw).split())
        name = re.findall(r"\w+", decl)[-1]
        ctype = decl[: decl.rindex(name)].strip()
        base = " ".join(re.sub(r"\bconst\b", " ", ctype).replace("*", " ").split())
        if base not in _C_TYPES or ctype.count("*") > 1:
            raise KernelArgumentError(f"cudasim does not know the parameter type {raw!r}")
        out.append((ctype, base, name, ctype.endswith("*")))
    return out


def _host_options(options: tuple[str, ...]) -> list[str]:
    """NVRTC options -> g++ options. Unknown options fail, so a new one is mapped here on purpose."""
    host = []
    for opt in options:
        if opt.startswith("-D"):
            host.append(opt)
        elif opt.startswith(("-std=", "--std=")) or opt in ("--fmad=false", "-fmad=false"):
            continue  # the host build is C++20 (std::barrier) and never contracts (-ffp-contract=off)
        else:
            raise ValueError(f"cudasim has no host equivalent for the NVRTC option {opt!r}")
    return host


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(cmd)}):\n{done.stderr}")


@functools.cache
def compile_for_device(filename: str, options: tuple[str, ...]) -> Path | None:
    """nvcc --cubin for sm_90 with the wrapper's options; None where nvcc is not installed."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    src = _workdir() / f"dev-{_key(filename, options)}.cu"
    src.write_text(cuda_source(filename), encoding="utf-8")
    out = src.with_suffix(".cubin")
    _run([nvcc, "--cubin", f"-arch={NVCC_ARCH}", *options, "-o", str(out), str(src)], f"nvcc on {filename}")
    return out


def _key(filename: str, options: tuple[str, ...]) -> str:
    text = cuda_source(filename) + "\0" + "\0".join(options) + HEADER.read_text(encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class HostFunction:
    """One kernel of a HostModule, called like a CuPy RawKernel: fn(grid, block, args)."""

    def __init__(self, lib: ctypes.CDLL, name: str, params: list[Param]) -> None:
        self.name = name
        self.params = params
        self._launch = getattr(lib, f"cudasim_launch_{name}")
        self._launch.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                                 ctypes.POINTER(ctypes.c_void_p)]
        self._launch.restype = None

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...]) -> None:
        if len(args) != len(self.params):
            raise KernelArgumentError(f"{self.name} takes {len(self.params)} arguments, got {len(args)}")
        holders = [self._marshal(arg, param) for arg, param in zip(args, self.params, strict=True)]
        argv = (ctypes.c_void_p * len(holders))(*(h.ctypes.data for h in holders))
        g = (ctypes.c_uint * 3)(*_dim3(grid, "grid"))
        b = (ctypes.c_uint * 3)(*_dim3(block, "block"))
        self._launch(g, b, argv)

    def _marshal(self, arg: Any, param: Param) -> np.ndarray:
        _, base, name, is_ptr = param
        want = np.dtype(_C_TYPES[base])
        if is_ptr:
            if not isinstance(arg, np.ndarray):
                raise KernelArgumentError(f"{self.name}({name}): expected a device array of {want}, got {type(arg)}")
            if arg.dtype != want or not arg.flags.c_contiguous:
                raise KernelArgumentError(f"{self.name}({name}): expected a C-contiguous {want} array, got "
                                          f"{arg.dtype} (c_contiguous={arg.flags.c_contiguous})")
            return np.array([arg.ctypes.data], dtype=np.uintp)  # the slot holds the pointer
        if not isinstance(arg, np.generic) or arg.dtype != want:
            got = arg.dtype if isinstance(arg, np.generic) else type(arg).__name__
            raise KernelArgumentError(f"{self.name}({name}): the kernel reads a {base} ({want}), got {got}")
        return np.array([arg], dtype=want)


def _dim3(dims: tuple[int, ...], what: str) -> tuple[int, int, int]:
    full = (*map(int, dims), 1, 1, 1)[:3]
    if len(dims) > 3 or min(full) < 1:
        raise KernelArgumentError(f"bad {what} {dims!r}")
    if what == "block" and full[0] * full[1] * full[2] > 1024:
        raise KernelArgumentError(f"block {dims!r} has more than 1024 threads")
    return full


class HostModule:
    """The kernels of one .cu file built for the host; `get_function` as in `cupy.RawModule`."""

    def __init__(self, filename: str, options: tuple[str, ...]) -> None:
        source = cuda_source(filename)
        self.kernels = {name: _params(params) for name, params in _KERNEL.findall(source)}
        lib = _workdir() / f"host-{_key(filename, options)}.so"
        if not lib.exists():
            threaded = "__syncthreads" in source or "__shfl" in source
            launchers = "\n".join(_launcher(name, params, threaded) for name, params in self.kernels.items())
            cpp = lib.with_suffix(".cpp")
            cpp.write_text(f'#include "{HEADER}"\n#line 1 "kernels/{filename}"\n{source}\n#line 1 "launchers"\n'
                           f"{launchers}\n", encoding="utf-8")
            _run(["g++", "-std=c++20", "-O1", "-fPIC", "-shared", "-pthread", "-ffp-contract=off",
                  *_host_options(options), "-o", str(lib), str(cpp)], f"g++ on {filename}")
        self._lib = ctypes.CDLL(str(lib))

    def get_function(self, name: str) -> HostFunction:
        if name not in self.kernels:
            raise AttributeError(f"no kernel {name!r}; the module has {sorted(self.kernels)}")
        return HostFunction(self._lib, name, self.kernels[name])


def _launcher(name: str, params: list[Param], threaded: bool) -> str:
    """extern "C" cudasim_launch_<name>(grid, block, argv): argv[i] points at argument i, as in cuLaunchKernel."""
    args = ", ".join(f"*({ctype}*)a[{i}]" for i, (ctype, _, _, _) in enumerate(params))
    return (f'extern "C" void cudasim_launch_{name}(const unsigned* g, const unsigned* b, void** a) {{\n'
            f"    cudasim::launch(dim3{{g[0], g[1], g[2]}}, dim3{{b[0], b[1], b[2]}}, {str(threaded).lower()},"
            f" [&] {{ {name}({args}); }});\n}}")


@functools.cache
def load_host_module(filename: str, options: tuple[str, ...] = ("-std=c++17",)) -> HostModule:
    """Stand-in for `gpuetl.kernels.load_cuda_module`: same file, same options, built for the host."""
    compile_for_device(filename, options)
    return HostModule(filename, options)


def _numpy_as_cupy() -> types.ModuleType:
    fake = types.ModuleType("cupy", "NumPy standing in for CuPy (tests/cudasim.py)")
    fake.__getattr__ = lambda name: getattr(np, name)  # type: ignore[method-assign]
    return fake


def load_wrapper(name: str) -> types.ModuleType:
    """gpuetl/kernels/<name>.py loaded under a private name, CuPy -> NumPy, kernels -> HostModule."""
    path = Path(gpuetl.kernels.__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_cudasim_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = _numpy_as_cupy()
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved
    module.load_cuda_module = load_host_module  # type: ignore[attr-defined]
    return module
