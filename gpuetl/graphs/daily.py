"""One batch of daily graphs: windows -> EWM covariances (one batched matmul) -> shrunk correlations -> kNN.

Written once on the backend's array module (NumPy or CuPy); the two steps that are neither a matmul nor a
plain array expression (the symmetric shrink/grid/threshold pass and the per-row top-k) are kernels with a
CPU twin (gpuetl/kernels/knn.py, kernels/knn.cu). Every day of a batch is computed independently of the
others: the batch only decides how many days share one matmul.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gpuetl.backend import Backend
from gpuetl.graphs.config import GraphConfig

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
    weights: Any  # (B, N, N) float64: edge weight on edges, 0 elsewhere
    adjacency: Any  # (B, N, N) bool, symmetric
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


def covariances(xp: Any, padded: Padded, days: Any, weights: Any) -> Moments:
    """One batched matmul for the days' covariance matrices; counts and second moments for the node rule."""
    window = len(weights)
    rows = xp.asarray(days, dtype=xp.int64)[:, None] + xp.arange(window)[None, :]
    r = padded.values[rows]  # (B, W, N), 0 where missing
    m = padded.observed[rows]
    wsum = xp.matmul(weights, m)  # (B, N): sum_s w_s m_is
    mean = xp.matmul(weights, r) / xp.where(wsum > 0, wsum, 1.0)
    x = (r - mean[:, None, :]) * m
    x *= xp.sqrt(weights)[None, :, None]
    return Moments(xp.matmul(x.transpose(0, 2, 1), x), m.sum(axis=1), xp.matmul(weights, r * r))


def shrunk_correlations(backend: Backend, padded: Padded, days: Any, cfg: GraphConfig,
                        eligible: Any = None) -> tuple[Any, Any]:
    """(B, N, N) candidate weights (shrunk, gridded correlation where >= threshold, -inf elsewhere) and the
    nodes (B, N); `eligible` (B, N) bool, if given, limits the nodes (e.g. to the dataset's rows that day)."""
    xp = backend.xp
    moments = covariances(xp, padded, days, ewm_weights(xp, cfg.window, cfg.halflife))
    s = moments.cov
    diag = xp.diagonal(s, axis1=1, axis2=2).copy()
    # a node needs coverage and a variance that is not rounding noise (a constant series is not a node)
    valid = (moments.count >= cfg.min_observations) & (diag > VARIANCE_FLOOR * moments.square) & xp.isfinite(diag)
    if eligible is not None:
        valid &= eligible
    inv = xp.where(valid, 1.0 / xp.sqrt(xp.where(valid, diag, 1.0)), 0.0)
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


def batch_graphs(backend: Backend, padded: Padded, days: Any, cfg: GraphConfig,
                 eligible: Any = None) -> BatchGraphs:
    cand, valid = shrunk_correlations(backend, padded, days, cfg, eligible)
    return knn_graphs(backend, days, cand, valid, cfg)


def bytes_per_day(n_codes: int, cfg: GraphConfig) -> int:
    """Device/host bytes one day of a batch needs at its peak (the n x n float64 matrix dominates)."""
    n, w = n_codes, cfg.window
    dense = n * n * (8 + 1 + 1 + 1)  # weights, adjacency, ~adjacency, a boolean temporary
    windows = w * n * 8 * 4  # returns, observed, demeaned, a temporary
    knn = n * cfg.knn.k * (4 + 8 + 8 * 6)  # top-k out, row/col/key arrays and unique's sort
    peers = n * cfg.every_n_days * 4 * 8 * 2
    return dense + windows + knn + peers + 64 * n
