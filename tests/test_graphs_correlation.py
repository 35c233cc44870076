"""One day's shrunk EWM correlation equals a plain float64 computation by hand; coverage rule; the kernel twin."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpuetl.backend import Backend
from gpuetl.config import ConfigError
from gpuetl.graphs.config import GraphConfig, load_graph_config
from gpuetl.graphs.daily import pad_returns, shrunk_correlations
from gpuetl.kernels.knn import shrunk_correlation_cpu
from tests._testing import CPU, assert_backend_equal, host
from tests.support.graphs import factor_returns, graph_config


def hand_correlation(r: np.ndarray, t: int, cfg: GraphConfig) -> tuple[np.ndarray, np.ndarray]:
    """The documented definition, written out with loops: shrunk correlation (no grid) and validity."""
    window, n = cfg.window, r.shape[1]
    rows = [s for s in range(t - window + 1, t + 1) if s >= 0]
    w = {s: 0.5 ** ((t - s) / cfg.halflife) for s in rows}
    seen = {i: [s for s in rows if np.isfinite(r[s, i])] for i in range(n)}
    mu = {i: sum(w[s] * r[s, i] for s in seen[i]) / sum(w[s] for s in seen[i]) if seen[i] else 0.0
          for i in range(n)}
    var = {i: sum(w[s] * (r[s, i] - mu[i]) ** 2 for s in seen[i]) for i in range(n)}
    valid = np.array([len(seen[i]) >= math.ceil(cfg.min_coverage * window) and var[i] > 0 for i in range(n)])
    rho = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(n):
            if valid[i] and valid[j]:
                both = [s for s in seen[i] if s in seen[j]]
                cov = sum(w[s] * (r[s, i] - mu[i]) * (r[s, j] - mu[j]) for s in both)
                rho[i, j] = cov / math.sqrt(var[i] * var[j])
    off = valid[:, None] & valid[None, :] & ~np.eye(n, dtype=bool)
    target = rho[off].mean() if cfg.shrinkage.target == "constant_correlation" else 0.0
    shrunk = (1 - cfg.shrinkage.gamma) * rho + cfg.shrinkage.gamma * target
    return np.where(off, shrunk, np.nan), valid


@pytest.mark.parametrize("target", ["identity", "constant_correlation"])
@pytest.mark.parametrize("missing", [0.0, 0.08])
def test_one_day_equals_weighted_covariance_by_hand(backend: Backend, target: str, missing: float) -> None:
    cfg = graph_config(f"shrinkage.target={target}", "knn.threshold=-1", "features.enabled=false")
    r, _ = factor_returns(40, 14, seed=3, missing=missing)
    r[10:, 5] = np.nan  # code 5 falls below the coverage rule in the later windows
    padded = pad_returns(backend.xp, backend.xp.asarray(r), cfg.window)
    for t in (25, 39):
        cand, valid = shrunk_correlations(backend, padded, backend.xp.asarray([t]), cfg)
        want, want_valid = hand_correlation(r, t, cfg)
        got = host(backend, cand)[0]
        assert_backend_equal(host(backend, valid)[0], want_valid, tol="exact")
        assert not want_valid[5]
        off = np.isfinite(want)
        assert_backend_equal(got[off], want[off], tol="weight_grid")  # the 2^-32 grid is the only difference
        assert np.all(got[~off] == -np.inf)  # diagonal and non-nodes are never candidates
        np.testing.assert_array_equal(got, got.T)  # exactly symmetric


def test_threshold_masks_below_and_keeps_equal() -> None:
    cfg = graph_config("knn.threshold=0.25", "features.enabled=false")
    s = np.array([[[1.0, 0.25 / 0.9, 0.2], [0.25 / 0.9, 1.0, 0.5], [0.2, 0.5, 1.0]]])
    inv = np.ones((1, 3))
    out = shrunk_correlation_cpu(s.copy(), inv, np.ones((1, 3), bool), np.zeros(1), gamma=cfg.shrinkage.gamma,
                                 threshold=cfg.knn.threshold, bits=cfg.knn.grid_bits)[0]
    assert_backend_equal(out[0, 1], 0.25, tol="weight_grid")  # 0.9 * 0.2777.. is 0.25 on the grid
    assert out[0, 1] >= 0.25
    assert out[0, 2] == -np.inf  # 0.9 * 0.2 < 0.25
    assert_backend_equal(out[1, 2], 0.45, tol="weight_grid")


def test_coverage_rule_and_zero_variance() -> None:
    cfg = graph_config("features.enabled=false", "knn.threshold=-1")
    need = cfg.min_observations
    assert need == 16  # ceil(0.8 * 20)
    r, _ = factor_returns(30, 6, seed=1, missing=0.0)
    t = 29
    window = np.arange(t - cfg.window + 1, t + 1)
    r[window[: cfg.window - need], 0] = np.nan  # exactly `need` returns: a node
    r[window[: cfg.window - need + 1], 1] = np.nan  # one fewer: not a node
    r[:, 2] = 0.003  # constant: zero variance, not a node
    r[1:, 3] = 0.7  # constant too, and its EWM mean carries rounding noise (S_33 ~ 1e-31): still not a node
    cand, valid = shrunk_correlations(CPU, pad_returns(np, r, cfg.window), np.array([t]), cfg)
    np.testing.assert_array_equal(valid[0], [True, False, False, False, True, True])
    assert np.all(cand[0, 1] == -np.inf) and np.all(cand[0, :, 2] == -np.inf)


def test_kernel_twin_equals_plain_formula() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 30, 70))
    s = np.matmul(x.transpose(0, 2, 1), x)
    s[:, 3, 10] += 1e-3  # make the input asymmetric: the kernel averages the two halves
    inv = 1.0 / np.sqrt(np.diagonal(s, axis1=1, axis2=2))
    valid = rng.random((3, 70)) > 0.1
    target = np.array([0.0, 0.1, -0.05])
    got = shrunk_correlation_cpu(s.copy(), inv, valid, target, gamma=0.2, threshold=0.05, bits=32)
    h = 0.5 * (s + s.transpose(0, 2, 1))
    rho = h * inv[:, :, None] * inv[:, None, :]
    q = np.rint((0.8 * rho + 0.2 * target[:, None, None]) * 2.0**32) / 2.0**32
    keep = valid[:, :, None] & valid[:, None, :] & ~np.eye(70, dtype=bool) & (q >= 0.05)
    want = np.where(keep, q, -np.inf)
    assert_backend_equal(got, want, tol="weight_grid")
    np.testing.assert_array_equal(got, got.transpose(0, 2, 1))


def test_config_rules() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        load_graph_config(overrides=["knn.kk=3"])
    with pytest.raises(ConfigError, match=r"knn\.k: must be in \[1, 64\]"):
        load_graph_config(overrides=["knn.k=65"])
    with pytest.raises(ConfigError, match="threshold: must be > 0 when features are enabled"):
        load_graph_config(overrides=["knn.threshold=-0.1"])
    with pytest.raises(ConfigError, match="unknown key"):  # the warm-up is the window now, not a setting
        load_graph_config(overrides=["warmup_days=120"])
    with pytest.raises(ConfigError, match="is not one of"):
        load_graph_config(overrides=["shrinkage.target=ledoit"])
    cfg = load_graph_config()
    assert (cfg.window, cfg.halflife, cfg.knn.k, cfg.knn.threshold, cfg.shrinkage.gamma) == (60, 30.0, 15, 0.25, 0.1)
