"""The bench's check of Louvain communities (gpuetl.bench.compare): by modularity, never label by label; the
mean over days to MODULARITY_TOL and any day to MODULARITY_DAY_TOL. Hand-made days of two triangles joined by
one edge, each partition scored independently with networkx."""

from __future__ import annotations

import networkx as nx
import numpy as np

from gpuetl.bench.compare import MODULARITY_DAY_TOL, mismatches

TRIANGLES = [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5), (2, 3)]


def days(n_days: int) -> dict[str, np.ndarray]:
    e = np.array(TRIANGLES * n_days)
    return {"edge_day": np.repeat(np.arange(n_days), len(TRIANGLES)), "edge_src": e[:, 0], "edge_dst": e[:, 1],
            "edge_weight": np.ones(len(e))}


def check(got: list[list[int]], ref: list[list[int]]) -> list[str]:
    n_days = len(ref)
    return mismatches("analytics", {"community": np.array(got, dtype=float).ravel()},
                      {"community": np.array(ref, dtype=float).ravel()}, days(n_days), (n_days, 6))


def test_modularity_not_labels() -> None:
    best = [0, 0, 0, 1, 1, 1]
    g = nx.Graph(TRIANGLES)
    q = nx.community.modularity(g, [{0, 1, 2}, {3, 4, 5}])
    assert q > 0.35  # the partition the check must accept, and what it scores
    assert check([[1, 1, 1, 0, 0, 0]] * 3, [best] * 3) == []  # other labels, same partition
    singles = [[0, 1, 2, 3, 4, 5]] * 3
    assert nx.community.modularity(g, [{i} for i in range(6)]) < q - MODULARITY_DAY_TOL
    problems = check(singles, [best] * 3)
    assert len(problems) == 2 and "mean modularity lower" in problems[0] and "on 3 days" in problems[1]


def test_one_day_off_by_a_little_passes_one_day_broken_does_not() -> None:
    best, near = [0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]  # vertex 2 on the other side: a worse day
    g = nx.Graph(TRIANGLES)
    gap = nx.community.modularity(g, [{0, 1, 2}, {3, 4, 5}]) - nx.community.modularity(g, [{0, 1}, {2, 3, 4, 5}])
    assert gap > 0  # how much worse that day is
    ref = [best] * 40
    got = [near] + [best] * 39
    assert (check(got, ref) == []) == (gap <= MODULARITY_DAY_TOL)
    broken = [[0, 1, 2, 3, 4, 5]] + [best] * 39
    problems = check(broken, ref)
    assert len(problems) == 1 and "on 1 days" in problems[0]
