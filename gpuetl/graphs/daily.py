"""One batch of daily graphs: windows -> EWM covariances -> shrunk correlations -> kNN.

On the GPU, written on CuPy: one batched matmul for the covariances, then the two kernels that are neither a
matmul nor a plain array expression (the symmetric shrink/grid/threshold pass and the per-row top-k,
kernels/knn.cu) on dense (days, n, n) matrices. On the CPU those dense passes over n x n matrices cost more
than the matmul itself, so each day goes from the upper triangle of its Gram matrix (numpy's own dsyrk, the
call np.matmul makes for ``x.T @ x``) straight to its sorted edges in one Numba pass (`day_knn_cpu`), days side
by side on the cores; the dense CPU functions stay as its reference (the same edges, bit for bit). Every day
of a batch is computed independently of the others: the batch only decides how many days share one launch.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np

from gpuetl.backend import Backend
from gpuetl.graphs.config import GraphConfig
from gpuetl.kernels.knn import day_knn_cpu, gram_upper, offdiagonal_mean_cpu, single_threaded_blas

VARIANCE_FLOOR = 1e-12  # weighted variance / weighted mean square below which a code is constant


@dataclasses.dataclass(frozen=True)
class Padded:
    """Returns with window - 1 missing rows in front, so day t's window is rows t .. t + window - 1."""

    values: Any  # (T + W - 1, N) float64, 0 where missing
    observed: Any  # (T + W - 1, N) float64, 1 where observed


@dataclasses.dataclass
class BatchGraphs:
    """The graphs of a batch of days; arrays of the backend, index b is days[b]."""

    days: Any  # (B,) int64 date indices
    valid: Any  # (B, N) bool: the day's nodes
    weights: Any  # (B, N, N) float64: edge weight on edges, 0 elsewhere; None from the CPU's sparse path
    adjacency: Any  # (B, N, N) bool, symmetric; None from the CPU's sparse path
    edge_batch: Any  # (E,) int64 index into days; edges sorted by (day, src, dst), src < dst
    edge_src: Any  # (E,) int64 code index
    edge_dst: Any  # (E,) int64 code index
    edge_weight: Any  # (E,) float64


def pad_returns(xp: Any, r1: Any, window: int) -> Padded:
    missing = ~xp.isfinite(r1)
    front = xp.zeros((window - 1, r1.shape[1]))
    values = xp.concatenate([front, xp.where(missing, 0.0, r1)])
    observed = xp.concatenate([front, (~missing).astype(xp.float64)])
    return Padded(values, observed)


def ewm_weights(xp: Any, window: int, halflife: float) -> Any:
    """Weights of the window's rows, oldest first: 0.5 ** (age / halflife), the last (age 0) is 1."""
    age = xp.arange(window - 1, -1, -1, dtype=xp.float64)
    return 0.5 ** (age / halflife)


@dataclasses.dataclass(frozen=True)
class Moments:
    cov: Any  # (B, N, N) EWM-weighted covariances around each code's own EWM mean (unnormalised)
    count: Any  # (B, N) observed returns in the window
    square: Any  # (B, N) sum_s w_s r_is^2 over observed days (the uncentred second moment)


def centred_windows(xp: Any, padded: Padded, days: Any, weights: Any) -> tuple[Any, Any, Any]:
    """The days' windows (B, W, N), demeaned and scaled so that ``x.T @ x`` is the covariance; the counts and
    second moments (B, N) for the node rule."""
    window = len(weights)
    rows = xp.asarray(days, dtype=xp.int64)[:, None] + xp.arange(window)[None, :]
    r = padded.values[rows]  # (B, W, N), 0 where missing
    m = padded.observed[rows]
    wsum = xp.matmul(weights, m)  # (B, N): sum_s w_s m_is
    mean = xp.matmul(weights, r) / xp.where(wsum > 0, wsum, 1.0)
    x = (r - mean[:, None, :]) * m
    x *= xp.sqrt(weights)[None, :, None]
    return x, m.sum(axis=1), xp.matmul(weights, r * r)


def covariances(xp: Any, padded: Padded, days: Any, weights: Any) -> Moments:
    """One batched matmul for the days' covariance matrices; counts and second moments for the node rule."""
    x, count, square = centred_windows(xp, padded, days, weights)
    return Moments(xp.matmul(x.transpose(0, 2, 1), x), count, square)


def nodes_and_scales(cfg: GraphConfig, diag: Any, count: Any, square: Any, eligible: Any, xp: Any) -> tuple[Any, Any]:
    """The node rule and 1 / sqrt(S_ii) (0 off the nodes), elementwise: the same bits for one day or many."""
    # a node needs coverage and a variance that is not rounding noise (a constant series is not a node)
    valid = (count >= cfg.min_observations) & (diag > VARIANCE_FLOOR * square) & xp.isfinite(diag)
    if eligible is not None:
        valid &= eligible
    return valid, xp.where(valid, 1.0 / xp.sqrt(xp.where(valid, diag, 1.0)), 0.0)


def shrunk_correlations(backend: Backend, padded: Padded, days: Any, cfg: GraphConfig,
                        eligible: Any = None) -> tuple[Any, Any]:
    """(B, N, N) candidate weights (shrunk, gridded correlation where >= threshold, -inf elsewhere) and the
    nodes (B, N); `eligible` (B, N) bool, if given, limits the nodes (e.g. to the dataset's rows that day)."""
    xp = backend.xp
    moments = covariances(xp, padded, days, ewm_weights(xp, cfg.window, cfg.halflife))
    s = moments.cov
    diag = xp.diagonal(s, axis1=1, axis2=2).copy()
    valid, inv = nodes_and_scales(cfg, diag, moments.count, moments.square, eligible, xp)
    if cfg.shrinkage.target == "constant_correlation":
        n = xp.count_nonzero(valid, axis=1).astype(xp.float64)
        total = (inv * xp.matmul(s, inv[:, :, None])[:, :, 0]).sum(axis=1)
        own = (diag * inv * inv).sum(axis=1)
        target = xp.where(n >= 2, (total - own) / xp.where(n >= 2, n * (n - 1), 1.0), 0.0)
    else:
        target = xp.zeros(s.shape[0])
    backend.kernels.shrunk_correlation(s, inv, valid, target, gamma=cfg.shrinkage.gamma,
                                       threshold=cfg.knn.threshold, bits=cfg.knn.grid_bits)
    return s, valid


def knn_graphs(backend: Backend, days: Any, cand: Any, valid: Any, cfg: GraphConfig) -> BatchGraphs:
    """kNN per node on the candidate weights, symmetrised by union; `cand` becomes the weight matrix."""
    xp = backend.xp
    nb, n = cand.shape[0], cand.shape[1]
    idx, _ = backend.kernels.row_topk(cand.reshape(nb * n, n), cfg.knn.k)
    row = xp.repeat(xp.arange(nb * n, dtype=xp.int64), cfg.knn.k)
    j = idx.reshape(-1).astype(xp.int64)
    keep = j >= 0
    row, j = row[keep], j[keep]
    b, i = row // n, row % n
    adjacency = xp.zeros((nb, n, n), dtype=bool)
    flat = adjacency.reshape(-1)
    flat[row * n + j] = True
    flat[(b * n + j) * n + i] = True
    key = xp.unique((b * n + xp.minimum(i, j)) * n + xp.maximum(i, j))
    edge_weight = cand.reshape(-1)[key]
    xp.copyto(cand, 0.0, where=~adjacency)
    per_day = n * n
    return BatchGraphs(days=xp.asarray(days, dtype=xp.int64), valid=valid, weights=cand, adjacency=adjacency,
                       edge_batch=key // per_day, edge_src=(key % per_day) // n, edge_dst=key % n,
                       edge_weight=edge_weight)


def window_stack(a: np.ndarray, days: np.ndarray, window: int) -> np.ndarray:
    """(B, W, N): rows days[b] .. days[b] + W - 1 of a (T + W - 1, N) padded matrix; a read-only strided view
    (no copy) when the days are evenly spaced, as graph days are, else a gathered copy. Each (W, N) slice has the
    same strides either way, so BLAS sees the same calls."""
    step = int(days[1] - days[0]) if len(days) > 1 else 1
    if step > 0 and np.all(np.diff(days) == step):
        base = a[int(days[0]):] if len(days) else a
        return np.lib.stride_tricks.as_strided(base, shape=(len(days), window, a.shape[1]),
                                               strides=(step * a.strides[0], *a.strides), writeable=False)
    return a[days[:, None] + np.arange(window)[None, :]]


def sparse_graphs(padded: Padded, days: Any, cfg: GraphConfig, eligible: Any = None,
                  threads: int | None = None) -> BatchGraphs:
    """The CPU's batch: the graphs of `knn_graphs(shrunk_correlations(...))`, bit for bit, without their dense
    (B, n, n) matrices (weights and adjacency are None). The window moments are batched BLAS calls on strided
    views, as `centred_windows` makes them; then the days run side by side on `threads` threads (default: Numba's
    thread count), each on one n x n buffer: its demeaned window, its Gram matrix by BLAS (on one thread), and
    `day_knn_cpu`."""
    days = np.asarray(days, dtype=np.int64)
    weights = ewm_weights(np, cfg.window, cfg.halflife)
    r = window_stack(padded.values, days, cfg.window)  # (B, W, N), 0 where missing
    m = window_stack(padded.observed, days, cfg.window)
    lo = int(days.min()) if len(days) else 0
    block = padded.values[lo:int(days.max()) + cfg.window] if len(days) else padded.values[:0]
    wsum = np.matmul(weights, m)  # the same calls and bits as centred_windows
    mean = np.matmul(weights, r) / np.where(wsum > 0, wsum, 1.0)
    square = np.matmul(weights, window_stack(block * block, days - lo, cfg.window))
    count = m.sum(axis=1)
    root = np.sqrt(weights)[:, None]
    nb, n = count.shape
    valid = np.zeros((nb, n), dtype=bool)
    none = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
    edges = [none] * nb  # (src, dst, weight) per day
    constant = cfg.shrinkage.target == "constant_correlation"

    def run(share: range) -> None:
        s = np.zeros((n, n))  # day_knn_cpu(clear=True) leaves its upper triangle zero again for the next day
        for b in share:
            x = (r[b] - mean[b][None, :]) * m[b]  # centred_windows' arithmetic, one day
            x *= root
            gram_upper(x, s, zeroed=True)
            ok, inv = nodes_and_scales(cfg, s.diagonal().copy(), count[b], square[b],
                                       None if eligible is None else eligible[b], np)
            target = offdiagonal_mean_cpu(s, inv, ok) if constant else 0.0
            edges[b] = day_knn_cpu(s, inv, ok, target, gamma=cfg.shrinkage.gamma, threshold=cfg.knn.threshold,
                                   bits=cfg.knn.grid_bits, k=cfg.knn.k, clear=True)
            valid[b] = ok

    workers = max(1, min(threads or numba.get_num_threads(), nb))
    shares = [range(t, nb, workers) for t in range(workers)]
    if workers == 1:
        for share in shares:
            run(share)
    else:
        with single_threaded_blas(), ThreadPoolExecutor(workers, thread_name_prefix="graphs") as pool:
            list(pool.map(run, shares))  # list(): re-raises a worker's error
    counts = np.array([len(e[0]) for e in edges], dtype=np.int64)
    cat = [np.concatenate([none[i], *(e[i] for e in edges)]) for i in range(3)]
    return BatchGraphs(days=days, valid=valid, weights=None, adjacency=None,
                       edge_batch=np.repeat(np.arange(nb, dtype=np.int64), counts), edge_src=cat[0],
                       edge_dst=cat[1], edge_weight=cat[2])


def batch_graphs(backend: Backend, padded: Padded, days: Any, cfg: GraphConfig,
                 eligible: Any = None) -> BatchGraphs:
    """The batch's graphs: dense matrices and kernels on the GPU, the sparse per-day path on the CPU."""
    if not backend.is_gpu:
        return sparse_graphs(padded, days, cfg, eligible)
    cand, valid = shrunk_correlations(backend, padded, days, cfg, eligible)
    return knn_graphs(backend, days, cand, valid, cfg)


def bytes_per_day(n_codes: int, cfg: GraphConfig, dense: bool = True) -> int:
    """Device/host bytes one day of a batch needs at its peak: on the GPU the n x n float64 matrix dominates;
    the CPU's sparse path keeps only the windows and the edges per day (its n x n buffers are per thread)."""
    n, w = n_codes, cfg.window
    windows = w * n * 8 * 4  # returns, observed, demeaned, a temporary
    peers = n * cfg.every_n_days * 4 * 8 * 2
    if not dense:
        edges = n * cfg.knn.k * 8 * 3 * 3  # src, dst, weight, kept per day, concatenated, and the features' copies
        return windows + edges + peers + 64 * n
    matrices = n * n * (8 + 1 + 1 + 1)  # weights, adjacency, ~adjacency, a boolean temporary
    knn = n * cfg.knn.k * (4 + 8 + 8 * 6)  # top-k out, row/col/key arrays and unique's sort
    return matrices + windows + knn + peers + 64 * n
