"""The latent daily return model, with its planted effects.

    r[t, i] = beta_i * m[t] + x[t, i] + reversal[t, i] + momentum[t, i] + leadlag[t, i] + jumps[t, i]
    x[t, i] = gamma_i * s[t, sector(i)] + e[t, i]             (the non-market part)
    reversal[t, i] = -reversal * sum_{l=1..reversal_days} e[t-l, i]
    momentum[t, i] = momentum * sum_{l=momentum_skip..momentum_lookback} x[t-l, i]
    leadlag[t, i]  = lead_lag * sum_l decay[l-1] * sum_j w[i, j] * x[t-l, j]

m, s and e are GARCH(1,1) processes with unit-variance Student-t innovations (volatility clustering and
fat tails). The three effects are additive on top of them, computed from e and x (never from r), so they
do not feed back into the variances or into each other; each is sized like its published counterpart
(`MarketConfig`, docs/synthetic-market.md). The peer graph (i follows leaders j, mostly in its own sector
and tilted to large caps) makes a stock's returns over the next days (l = 1, 2, ..., len(decay); decay =
lead_lag_decay, 1, 0.5, 0.25 by default) load on its leaders' non-market return today; the lags after the
first are what a strategy entering at the next close (the default label) can still earn.
Jumps are earnings reactions and IPO first-day moves.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from gpuetl.synth.config import MarketConfig, stream
from gpuetl.synth.universe import Universe

N_SECTORS = 33


@dataclasses.dataclass(frozen=True)
class PeerGraph:
    follower: np.ndarray  # int, issue index
    leader: np.ndarray  # int, issue index
    weight: np.ndarray  # float, sums to 1 per follower

    def matrix(self, n: int) -> sp.csr_matrix:
        """(N, N) sparse W with W[i, j] = weight of leader j for follower i."""
        return sp.csr_matrix((self.weight, (self.follower, self.leader)), shape=(n, n))


@dataclasses.dataclass(frozen=True)
class Returns:
    total: np.ndarray  # (D, N) latent daily log returns
    vol: np.ndarray  # (D, N) conditional daily vol (for intraday ranges and volumes)
    market: np.ndarray  # (D,) market factor returns
    sector: np.ndarray  # (D, 33) sector factor returns
    beta: np.ndarray  # (N,) market loadings
    sector_beta: np.ndarray  # (N,) sector loadings
    idio_vol: np.ndarray  # (N,) long-run idiosyncratic vol
    peers: PeerGraph


def _unit_t(rng: np.random.Generator, df: float, size: tuple[int, ...]) -> np.ndarray:
    z = rng.standard_t(df, size=size)
    z *= np.sqrt((df - 2.0) / df)
    np.clip(z, -15.0, 15.0, out=z)
    return z


def trailing_sum(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """out[t] = sum_{l=lo..hi} a[t-l] along axis 0 (rows before the first count as 0): one cumsum, no loop over
    days, for the reversal's last week and the momentum's 12-1-month window alike."""
    d = a.shape[0]
    c = np.zeros((d + 1, *a.shape[1:]))
    np.cumsum(a, axis=0, out=c[1:])
    t = np.arange(d)
    return c[np.clip(t - lo + 1, 0, d)] - c[np.clip(t - hi, 0, d)]


def peer_graph(config: MarketConfig, universe: Universe) -> PeerGraph:
    """Each issue gets 1..max_leaders leaders, mostly in its sector, drawn in proportion to sqrt(cap)."""
    rng = stream(config, "peers")
    n = universe.n
    if n < 2:
        return PeerGraph(np.zeros(0, int), np.zeros(0, int), np.zeros(0))
    k = rng.integers(1, config.max_leaders + 1, n)
    follower = np.repeat(np.arange(n), k)
    pull = np.exp(-2.5 * universe.size_pct)  # larger caps lead
    # in-sector draws: inverse CDF over issues sorted by sector, keyed "sector + cumulative share"
    by_sector = np.argsort(universe.s33, kind="stable")
    sec_sorted = universe.s33[by_sector]
    w_sorted = pull[by_sector]
    totals = np.bincount(sec_sorted, weights=w_sorted, minlength=N_SECTORS)
    starts = np.concatenate([[0.0], np.cumsum(totals)[:-1]])
    cum = np.cumsum(w_sorted) - starts[sec_sorted]
    keys = sec_sorted + cum / totals[sec_sorted]
    u = rng.random(follower.size)
    in_sec = np.minimum(np.searchsorted(keys, universe.s33[follower] + u), n - 1)
    # anywhere draws
    all_cum = np.cumsum(pull) / pull.sum()
    anywhere = np.minimum(np.searchsorted(all_cum, rng.random(follower.size)), n - 1)
    leader = np.where(rng.random(follower.size) < config.in_sector_share, by_sector[in_sec], anywhere)
    ok = leader != follower
    follower, leader = follower[ok], leader[ok]
    _, first = np.unique(follower * n + leader, return_index=True)
    first.sort()
    follower, leader = follower[first], leader[first]
    raw = rng.gamma(2.0, 1.0, follower.size)
    weight = raw / np.bincount(follower, weights=raw, minlength=n)[follower]
    return PeerGraph(follower=follower, leader=leader, weight=weight)


def build_returns(config: MarketConfig, universe: Universe, n_days: int, jump_code: np.ndarray,
                  jump_day: np.ndarray, jump_size: np.ndarray) -> Returns:
    rng = stream(config, "returns")
    n, d = universe.n, n_days
    alpha, beta_g = config.garch
    keep = 1.0 - alpha - beta_g
    beta = np.clip(1.0 + 0.25 * rng.standard_normal(n) - 0.2 * (universe.size_pct - 0.5), 0.3, 1.8)
    sector_beta = np.clip(1.0 + 0.3 * rng.standard_normal(n), 0.2, 2.0)
    lo, hi = config.idio_vol
    growth = np.isin(universe.market_new, ["0113"])
    idio = (lo + (hi - lo) * universe.size_pct) * np.exp(0.2 * rng.standard_normal(n)) * np.where(growth, 1.3, 1.0)
    z_m = _unit_t(rng, config.tail_df, (d,))
    z_s = _unit_t(rng, config.tail_df, (d, N_SECTORS))
    eps = _unit_t(rng, config.tail_df, (d, n))  # becomes e[t, i] in place
    vol = np.empty((d, n))
    var_m, var_s, var_i = config.market_vol**2, np.full(N_SECTORS, config.sector_vol**2), idio**2
    w_m, w_s, w_i = keep * var_m, keep * config.sector_vol**2, keep * idio**2
    market = np.empty(d)
    sector = np.empty((d, N_SECTORS))
    b2, g2, sec = beta**2, sector_beta**2, universe.s33
    for t in range(d):  # GARCH recursions: a loop over days, vectorised across issues
        market[t] = np.sqrt(var_m) * z_m[t]  # the drift is added after, so it does not feed the variance
        sector[t] = np.sqrt(var_s) * z_s[t]
        row = eps[t]
        row *= np.sqrt(var_i)
        vol[t] = np.sqrt(b2 * var_m + g2 * var_s[sec] + var_i)
        var_m = w_m + alpha * market[t] ** 2 + beta_g * var_m
        var_s = w_s + alpha * sector[t] ** 2 + beta_g * var_s
        var_i = w_i + alpha * row**2 + beta_g * var_i
    market += config.market_drift
    listed = universe.listed(d)
    eps *= listed  # e[t, i], zero while not listed
    total = beta[None, :] * market[:, None]
    if config.reversal:  # from e alone, before the sector part joins it: the reversal is within the industry
        total -= config.reversal * trailing_sum(eps, 1, config.reversal_days)
    x = eps  # non-market part, in place: gamma_i * s[t, sector(i)] + e[t, i], zero while not listed
    x += sector_beta[None, :] * sector[:, sec]
    x *= listed
    if config.momentum:
        total += config.momentum * trailing_sum(x, config.momentum_skip, config.momentum_lookback)
    peers = peer_graph(config, universe)
    if d > 1 and peers.follower.size and config.lead_lag:
        led = (peers.matrix(n) @ x.T).T  # (D, N): sum_j w[i, j] x[t, j]
        for lag, decay in enumerate(config.lead_lag_decay[: d - 1], start=1):
            total[lag:] += config.lead_lag * decay * led[:-lag]
    total += x
    np.add.at(total, (jump_day, jump_code), jump_size)
    return Returns(total=total, vol=vol, market=market, sector=sector, beta=beta, sector_beta=sector_beta,
                   idio_vol=idio, peers=peers)
