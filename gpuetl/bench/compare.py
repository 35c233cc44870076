"""The peers' equality check: every stage output of a backend against the reference backend's (gpuetl, CPU).

Outputs are host float64 arrays by name (gpuetl.bench.*: `canonical`). Two arrays agree when they have the
same shape, NaN in the same places and |a - b| <= ATOL + RTOL |b| elsewhere: the libraries sum rolling
windows, standard deviations and matrix products in different orders, so they agree to about 1e-12, and a
z-score near 0 keeps that as an absolute error. Graph edges are compared exactly (their weights lie on the
2^-32 grid); Louvain is a heuristic, so communities are compared by modularity, not label by label: the mean over
the days within MODULARITY_TOL, and no day worse by more than MODULARITY_DAY_TOL. gpuetl's Louvain (Numba) and
the peers' (networkx) visit the nodes in different orders, and on the small graphs of a test market one order's
partition of a day can score a few hundredths below the other's (networkx against itself with another seed
varies by up to 0.02 there), while a broken partition loses far more (all singletons score about 0).
A per-day rank is not continuous in its value: where two values tie in one
library and differ by an ulp in the other (a flat 5-day window's gap is exactly 0 in gpuetl, -2e-16 in Polars),
both ranks move by half a tie's width, so `*_rank` columns may differ on RANK_TIE_SHARE of their values at most,
each by RANK_TIE_STEP at most (a tie of 1% of a day's codes); anything more is a difference.
"""

from __future__ import annotations

import numpy as np

from gpuetl.bench.daily_graph import modularity

RTOL = 1e-9
ATOL = 1e-9
MODULARITY_TOL = 0.02  # the mean over days
MODULARITY_DAY_TOL = 0.1  # any one day
RANK_TIE_SHARE = 1e-4
RANK_TIE_STEP = 0.01


def mismatches(stage: str, got: dict[str, np.ndarray], want: dict[str, np.ndarray],
               graphs: dict[str, np.ndarray] | None = None, shape: tuple[int, int] | None = None) -> list[str]:
    """What differs, one line per output (empty when equal); `graphs`/`shape` for the analytics' modularity."""
    problems = []
    for name, ref in want.items():
        if name not in got:
            problems.append(f"{name}: missing")
            continue
        if stage == "analytics" and name == "community":
            problems += _communities(got[name], ref, graphs, shape)
            continue
        problems += _values(name, got[name], ref)
    return problems


def _values(name: str, got: np.ndarray, ref: np.ndarray) -> list[str]:
    if got.shape != ref.shape:
        return [f"{name}: shape {got.shape} != {ref.shape}"]
    nan = np.isnan(got) != np.isnan(ref)
    if nan.any():
        return [f"{name}: missing in different places ({int(nan.sum())} of {got.size} values)"]
    both = ~np.isnan(ref)
    err = np.abs(got[both] - ref[both])
    bad = err > ATOL + RTOL * np.abs(ref[both])
    if name.endswith("_rank") and bad.sum() <= RANK_TIE_SHARE * both.sum() and err.max(initial=0.0) <= RANK_TIE_STEP:
        return []  # ulp-level ties broken differently (see the module docstring)
    if bad.any():
        return [f"{name}: {int(bad.sum())} of {int(both.sum())} values differ (max abs {err.max():.3g})"]
    return []


def _communities(got: np.ndarray, ref: np.ndarray, graphs: dict[str, np.ndarray] | None,
                 shape: tuple[int, int] | None) -> list[str]:
    if graphs is None or shape is None:
        return ["community: no graphs to score the partitions on"]
    if got.shape != ref.shape or (np.isnan(got) != np.isnan(ref)).any():
        return ["community: the nodes differ"]
    q_got, q_ref = modularity(graphs, got, shape), modularity(graphs, ref, shape)
    lost = q_ref - q_got
    problems = []
    if np.nanmean(lost) > MODULARITY_TOL:
        problems.append(f"community: mean modularity lower by more than {MODULARITY_TOL} "
                        f"({np.nanmean(q_got):.4f} vs {np.nanmean(q_ref):.4f})")
    if (lost > MODULARITY_DAY_TOL).any():
        problems.append(f"community: modularity lower by more than {MODULARITY_DAY_TOL} on "
                        f"{int((lost > MODULARITY_DAY_TOL).sum())} days (worst {np.nanmax(lost):.4f})")
    return problems
