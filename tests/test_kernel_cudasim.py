"""The CUDA kernels (kernels/*.cu) and their wrappers, run on the host by tests/cudasim, equal the CPU twins.

These run in CI without a GPU: the same `.cu` text and the same wrapper code as on the device, compiled by
g++ with a host model of threads, blocks, __syncthreads and warp shuffles. They hold the kernels' indexing,
tie rules, launch geometry and argument types to the CPU twins bit for bit; the `gpu`-marked tests hold
the device itself to the same results. Where nvcc is installed, each source also compiles for sm_90.
"""

from __future__ import annotations

import shutil
import subprocess
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from gpuetl.kernels.asof import asof_cpu
from gpuetl.kernels.ewm import ewm_cpu
from gpuetl.kernels.groupstats import group_stats_cpu
from gpuetl.kernels.knn import MAX_K, row_topk_cpu, shrunk_correlation_cpu
from gpuetl.resources import resource_dir
from tests._testing import assert_backend_equal
from tests.support import cudasim

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="cudasim needs g++ (C++20)")


@pytest.fixture(scope="module")
def ewm_cuda() -> ModuleType:
    return cudasim.load_wrapper("ewm_cuda")


@pytest.fixture(scope="module")
def asof_cuda() -> ModuleType:
    return cudasim.load_wrapper("asof_cuda")


@pytest.fixture(scope="module")
def knn_cuda() -> ModuleType:
    return cudasim.load_wrapper("knn_cuda")


@pytest.fixture(scope="module")
def groupstats_cuda() -> ModuleType:
    return cudasim.load_wrapper("groupstats_cuda")


def ragged(rng: np.random.Generator, segments: int, max_len: int, nan_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Segments of 0..max_len rows (empty ones included), NaN runs and a constant stretch."""
    lengths = rng.integers(0, max_len + 1, size=segments)
    values = rng.standard_normal(int(lengths.sum())) * 10.0 ** rng.integers(-3, 4)
    values[rng.random(len(values)) < nan_share] = np.nan
    if len(values) > 8:
        values[3:9] = 2.5
    return values, np.concatenate([[0], np.cumsum(lengths)])


@pytest.mark.parametrize("stat", ["mean", "var", "std"])
@pytest.mark.parametrize(("adjust", "ignore_na"), [(True, False), (False, False), (True, True), (False, True)])
@pytest.mark.parametrize("com", [0.0, 1.0, 4.0, 29.0])
def test_ewm_kernel_equals_cpu_twin(ewm_cuda: ModuleType, stat: str, adjust: bool, ignore_na: bool,
                                    com: float) -> None:
    rng = np.random.default_rng(int(com * 10) + 2 * adjust + ignore_na)
    for nan_share, min_periods, bias in [(0.0, 0, False), (0.2, 3, False), (0.6, 1, True)]:
        values, offsets = ragged(rng, 300, 60, nan_share)
        kw = dict(com=com, adjust=adjust, ignore_na=ignore_na, min_periods=min_periods, stat=stat, bias=bias)
        assert_backend_equal(ewm_cuda.ewm_gpu(values, offsets, **kw), ewm_cpu(values, offsets, **kw), tol="exact")


def test_ewm_kernel_on_no_segments_and_no_rows(ewm_cuda: ModuleType) -> None:
    assert len(ewm_cuda.ewm_gpu(np.zeros(0), np.array([0]), com=1.0)) == 0
    assert len(ewm_cuda.ewm_gpu(np.zeros(0), np.array([0, 0, 0]), com=1.0)) == 0


def asof_sides(rng: np.random.Generator, n: int, m: int, floats: bool, span: int) -> tuple[np.ndarray, ...]:
    """Keys 0..4 (some on one side only), times with many ties; right sorted by (key, time) as required."""
    lby, rby = rng.integers(0, 4, n), rng.integers(1, 5, m)
    lon, ron = rng.integers(0, span, n), rng.integers(0, span, m)
    if floats:
        lon, ron = lon + rng.choice([0.0, 0.25, 0.5], n), ron + rng.choice([0.0, 0.25, 0.5], m)
    order = np.lexsort((ron, rby))
    return lby, lon, rby[order], ron[order]


@pytest.mark.parametrize("direction", ["backward", "forward"])
@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("floats", [False, True])
@pytest.mark.parametrize("tolerance", [None, 0, 3])
def test_asof_kernel_equals_cpu_twin(asof_cuda: ModuleType, direction: str, exact: bool, floats: bool,
                                     tolerance: int | None) -> None:
    rng = np.random.default_rng(zlib.crc32(repr((direction, exact, floats, tolerance)).encode()))
    for n, m, span in [(1, 1, 3), (700, 500, 40), (3000, 50, 1000)]:
        sides = asof_sides(rng, n, m, floats, span)
        kw = dict(direction=direction, allow_exact_matches=exact, tolerance=tolerance)
        assert_backend_equal(asof_cuda.asof_gpu(*sides, **kw), asof_cpu(*sides, **kw), tol="exact")


def test_asof_kernel_grid_stride_covers_more_rows_than_the_grid(asof_cuda: ModuleType, monkeypatch) -> None:
    monkeypatch.setattr(asof_cuda, "_MAX_BLOCKS", 2)  # 512 threads for 5,000 rows: each thread loops
    sides = asof_sides(np.random.default_rng(5), 5000, 300, False, 200)
    assert_backend_equal(asof_cuda.asof_gpu(*sides), asof_cpu(*sides), tol="exact")


def test_asof_kernel_with_an_empty_side(asof_cuda: ModuleType) -> None:
    one = np.array([1]), np.array([5])
    empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    assert asof_cuda.asof_gpu(*one, *empty).tolist() == [-1]
    assert len(asof_cuda.asof_gpu(*empty, *one)) == 0


@pytest.mark.parametrize("n", [1, 31, 32, 33, 70])
def test_shrunk_correlation_kernel_equals_cpu_twin(knn_cuda: ModuleType, n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.standard_normal((3, 40, n))
    s = np.matmul(x.transpose(0, 2, 1), x)
    s[:, :, 0] += 1e-9  # asymmetric on purpose: each pair is averaged once and mirrored
    inv = 1.0 / np.sqrt(np.abs(np.diagonal(s, axis1=1, axis2=2)))
    valid = rng.random((3, n)) > 0.2
    target = np.array([0.0, 0.15, -0.1])
    kw = dict(gamma=0.1, threshold=0.05, bits=32)
    got = knn_cuda.shrunk_correlation_gpu(s.copy(), inv, valid, target, **kw)
    want = shrunk_correlation_cpu(s.copy(), inv, valid, target, **kw)
    assert_backend_equal(got, want, tol="exact")
    np.testing.assert_array_equal(got, got.transpose(0, 2, 1))


@pytest.mark.parametrize("k", [1, 15, MAX_K])
@pytest.mark.parametrize("cols", [5, 50, pytest.param(200, marks=pytest.mark.slow)])  # 200: half a minute a k
def test_row_topk_kernel_equals_cpu_twin(knn_cuda: ModuleType, k: int, cols: int) -> None:
    rng = np.random.default_rng(k * 1000 + cols)
    # 19 rows: two full blocks of 8 rows (one warp a row) and a partial third; each block is 256 OS threads here
    x = rng.choice([0.1, 0.2, 0.3, -np.inf, np.nan], size=(19, cols), p=[0.3, 0.2, 0.2, 0.2, 0.1])
    x[0] = -np.inf  # no candidate at all
    x[1] = 0.5  # every column tied: the smallest indices win
    x[2] = rng.standard_normal(cols)  # no ties
    got_i, got_v = knn_cuda.row_topk_gpu(x, k)
    want_i, want_v = row_topk_cpu(x, k)
    assert_backend_equal(got_i, want_i, tol="exact")
    assert_backend_equal(got_v, want_v, tol="exact")


def test_launch_rejects_arguments_the_device_would_misread(knn_cuda: ModuleType) -> None:
    fn = cudasim.load_host_module("knn.cu", ("-std=c++17", "--fmad=false", "-DTOPK_K=3")).get_function("row_topk")
    x, idx, val = np.zeros((4, 6)), np.zeros((4, 3), np.int32), np.zeros((4, 3))
    fn((1,), (128,), (x, np.int64(4), np.int64(6), idx, val))  # the right types run
    with pytest.raises(cudasim.KernelArgumentError, match="rows"):
        fn((1,), (128,), (x, np.int32(4), np.int64(6), idx, val))
    with pytest.raises(cudasim.KernelArgumentError, match="out_idx"):
        fn((1,), (128,), (x, np.int64(4), np.int64(6), idx.astype(np.int64), val))
    with pytest.raises(cudasim.KernelArgumentError, match="C-contiguous"):
        fn((1,), (128,), (np.zeros((6, 4)).T, np.int64(4), np.int64(6), idx, val))


def scattered_groups(rng: np.random.Generator, k: int, n: int, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """k columns over n rows in n_groups groups whose rows are not adjacent (days of a (code, date) panel): NaN,
    ties on a grid, a constant group, infinities; (values, labels)."""
    labels = rng.integers(0, n_groups, n)
    values = rng.standard_normal((k, n)) * 10.0 ** rng.integers(-3, 4, (k, 1))
    values[1::2] = np.round(values[1::2] * 4) / 4
    values[rng.random((k, n)) < 0.15] = np.nan
    values[0, labels == 1] = 1.0 / 3.0
    values[-1, :3] = [np.inf, -np.inf, np.inf][:n]
    return values, labels


@pytest.mark.parametrize("ranks", [False, True])
@pytest.mark.parametrize(("k", "n", "n_groups"), [(1, 1, 1), (3, 2000, 40), (5, 600, 300)])
def test_group_stats_kernel_equals_cpu_twin(groupstats_cuda: ModuleType, ranks: bool, k: int, n: int,
                                            n_groups: int) -> None:
    values, labels = scattered_groups(np.random.default_rng(k * n + n_groups), k, n, n_groups)
    got_stats, got_rank = groupstats_cuda.group_stats_gpu(values, labels, n_groups, ranks=ranks)
    want_stats, want_rank = group_stats_cpu(values, labels, n_groups, ranks=ranks)
    assert_backend_equal(got_stats, want_stats, tol="exact")
    if ranks:
        assert_backend_equal(got_rank, want_rank, tol="exact")
    else:
        assert got_rank is None and want_rank is None


def test_group_stats_kernel_on_empty_inputs(groupstats_cuda: ModuleType) -> None:
    none = np.zeros(0, np.int64)
    stats, rank = groupstats_cuda.group_stats_gpu(np.zeros((2, 0)), none, 2, ranks=True)
    assert_backend_equal(stats, group_stats_cpu(np.zeros((2, 0)), none, 2)[0], tol="exact")
    assert rank.shape == (2, 0)
    stats, rank = groupstats_cuda.group_stats_gpu(np.zeros((0, 4)), np.zeros(4, np.int64), 1, ranks=True)
    assert stats.shape == (5, 0, 1) and rank.shape == (0, 4)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc (CUDA toolkit)")
@pytest.mark.parametrize("source", sorted(p.name for p in resource_dir("kernels").glob("*.cu")))
def test_every_cuda_source_compiles_for_the_h100(source: str, tmp_path: Path) -> None:
    defines = [f"-DTOPK_K={MAX_K}"] if source == "knn.cu" else []  # the largest per-lane list
    done = subprocess.run(["nvcc", "--cubin", f"-arch={cudasim.NVCC_ARCH}", "-std=c++17", "--fmad=false",
                           "-Werror=all-warnings", *defines, "-o", str(tmp_path / "k.cubin"),
                           str(resource_dir("kernels") / source)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
