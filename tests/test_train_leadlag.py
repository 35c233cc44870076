"""The lead-lag relation: its t-statistics against a pandas reference, a planted follower found (and only in its
group when asked), nothing from after the training days, and its edges in every day of a batch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from gpuetl.tensors import DaySampler, open_dataset  # noqa: E402
from gpuetl.train.config import LeadLagRelation, load_gat_config  # noqa: E402
from gpuetl.train.data import load_train_data  # noqa: E402
from gpuetl.train.leadlag import lead_lag_edges  # noqa: E402
from gpuetl.train.splits import label_reach, make_splits  # noqa: E402
from tests._testing import CPU, assert_backend_equal  # noqa: E402
from tests.support.train import TINY_TRAIN, write_tiny_dataset  # noqa: E402


def planted(days: int = 500, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Six codes in two groups: 1 follows 0 (same group), 4 follows 2 (other group); code 5 lists late."""
    rng = np.random.default_rng(seed)
    r = rng.standard_normal((days, 6))
    r[1:, 1] += 0.6 * r[:-1, 0]
    r[1:, 4] += 0.6 * r[:-1, 2]
    r += rng.standard_normal(days)[:, None]  # a market move on every code
    r[: days - 100, 5] = np.nan
    r[rng.random((days, 6)) < 0.05] = np.nan  # missing rows
    group = np.tile([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], (days, 1))
    return r, group


def reference_scores(r: np.ndarray) -> pd.DataFrame:
    """s[i, j] of gpuetl/train/leadlag.py's docstring, pair by pair in pandas."""
    x = pd.DataFrame(r)
    x = x.sub(x.mean(axis=1), axis=0)
    z = (x - x.mean()) / x.std(ddof=0)
    out = pd.DataFrame(0.0, index=x.columns, columns=x.columns)
    for i in x.columns:
        for j in x.columns:
            prod = (z[i].shift(-1) * z[j]).dropna()
            out.loc[i, j] = prod.mean() * np.sqrt(len(prod)) if len(prod) else 0.0
    return out


def as_dict(src: torch.Tensor, dst: torch.Tensor, s: torch.Tensor) -> dict[tuple[int, int], float]:
    return {(int(a), int(b)): float(v) for a, b, v in zip(src, dst, s, strict=True)}


def test_scores_match_pandas_and_each_code_keeps_its_strongest_positive_leaders() -> None:
    r, _ = planted()
    src, dst, s = lead_lag_edges(torch.tensor(r), None, peers=2, min_days=50)
    ref = reference_scores(r)
    got = as_dict(src, dst, s)
    for i in range(6):
        row = ref.loc[i].drop(i)
        want = row[row > 0].sort_values(ascending=False).index[:2]
        assert {j for (j, f) in got if f == i} == set(want)
        for j in want:
            assert_backend_equal(got[(j, i)], row[j], tol="float32_step")  # float32 scores, a float64 reference
    assert max(got, key=got.get) in {(0, 1), (2, 4)} and got[(0, 1)] > 5 and got[(2, 4)] > 5


def test_group_and_min_days_narrow_the_candidates() -> None:
    r, group = planted()
    src, dst, s = lead_lag_edges(torch.tensor(r), torch.tensor(group), peers=2, min_days=150)
    got = as_dict(src, dst, s)
    assert (0, 1) in got and (2, 4) not in got  # 2 leads 4 from another group
    assert all(group[0, a] == group[0, b] for a, b in got)
    assert not any(5 in pair for pair in got)  # code 5 has 100 days (< min_days)
    none = lead_lag_edges(torch.tensor(r[:1]), None, peers=2, min_days=2)
    assert all(len(t) == 0 for t in none)


def test_a_fold_relation_sees_only_its_training_days_and_joins_every_day_of_a_batch(tmp_path: Path) -> None:
    ds = open_dataset(write_tiny_dataset(tmp_path / "ds"), CPU)
    cfg = load_gat_config("configs/train/gat.yaml", TINY_TRAIN)
    relation = LeadLagRelation(column="ret_1d", within=None, peers=3, min_days=50)
    data = load_train_data(ds, cfg.data, model=dataclasses.replace(cfg.model, lead_lag=relation))
    fold = make_splits(ds.dates, cfg.splits, label_reach(data.label, cfg.data.horizons)).folds[0]
    graphs = data.fold(fold).graphs
    assert graphs is not None and graphs.fixed is not None
    assert graphs.relations == ("weight", "sector", "lead_lag") and data.edge_dim == 4
    # later returns changed: the same edges
    col = data.panel.column("ret_1d")
    col[fold.train.last + 1:] = torch.randn_like(col[fold.train.last + 1:])
    again = data.fold(fold).graphs
    assert again is not None and again.fixed is not None
    for a, b in zip((graphs.fixed.src, graphs.fixed.dst, graphs.fixed.attr), (again.fixed.src, again.fixed.dst,
                                                                             again.fixed.attr), strict=True):
        torch.testing.assert_close(a, b)
    # a training return changed: the relation moves
    col[fold.train.first + 5] += 10.0
    moved = data.fold(fold).graphs
    assert moved is not None and moved.fixed is not None and not torch.equal(moved.fixed.attr, graphs.fixed.attr)
    # in a batch, each day has its daily edges plus all the fixed ones (lead_lag column), then the self-loops
    n, days = graphs.n_codes, [40, 41, 90]
    sampler = DaySampler(data.x, data.eligible, data.panel.targets, 5, None, graphs)
    b = sampler.batch(days)
    assert b.edge_attr.shape[1] == sampler.edge_dim == 4
    fixed = b.edge_attr[:, 2] != 0
    assert int(fixed.sum()) == len(days) * len(graphs.fixed.src)
    for k in range(len(days)):
        block = fixed & (b.edge_index[1] // n == k)
        torch.testing.assert_close(b.edge_index[:, block] - k * n, torch.stack([graphs.fixed.src, graphs.fixed.dst]))
        torch.testing.assert_close(b.edge_attr[block, 2], graphs.fixed.attr[:, 0])
        assert (b.edge_attr[block][:, [0, 1, 3]] == 0).all()
    daily = int((graphs.stop[days] - graphs.start[days]).sum())
    assert b.edge_index.shape[1] == daily + int(fixed.sum()) + len(days) * n
    alone = DaySampler(data.x, data.eligible, data.panel.targets, 5, None, graphs, graph=False).batch(days)
    assert alone.edge_index.shape[1] == len(days) * n and alone.edge_attr.shape[1] == 4
