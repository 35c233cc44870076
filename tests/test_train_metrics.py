"""Each metric against a plain pandas/NumPy reference (the JPX 2022 competition's own pandas formula and a
hand-computed case included), and the loss's parts against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from gpuetl.train.config import EvalSettings, LossSettings  # noqa: E402
from gpuetl.train.loss import masked_zscore, ranking_loss, soft_rank  # noqa: E402
from gpuetl.train.metrics import average_ranks, daily_metrics, summarize  # noqa: E402
from tests._testing import assert_backend_equal  # noqa: E402

JPX = EvalSettings(portfolio_size=200, min_names=400, fallback_share=0.2, top_weight=2.0)


def jpx_reference(pred: np.ndarray, target: np.ndarray) -> float:
    """The competition's calc_spread_return_per_day: Rank 0 = the highest prediction."""
    df = pd.DataFrame({"Target": target, "Rank": pd.Series(-pred).rank(method="first").to_numpy() - 1})
    size = 200 if len(df) >= 400 else int(len(df) * 0.2)
    weights = np.linspace(start=2, stop=1, num=size)
    purchase = (df.sort_values(by="Rank")["Target"][:size] * weights).sum() / weights.mean()
    short = (df.sort_values(by="Rank", ascending=False)["Target"][:size] * weights).sum() / weights.mean()
    return purchase - short


def panel(days: int, names: int, seed: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = rng.standard_normal((days, names)) * 0.02
    pred = label * 0.3 + rng.standard_normal((days, names)) * 0.02
    if ties:
        pred = np.round(pred * 200) / 200  # trees give many equal scores
    mask = rng.random((days, names)) > 0.1
    label[rng.random((days, names)) < 0.05] = np.nan  # a missing label is skipped like a masked code
    return pred, label, mask


def daily(pred: np.ndarray, label: np.ndarray, mask: np.ndarray, cfg: EvalSettings = JPX) -> dict[str, np.ndarray]:
    out = daily_metrics(torch.tensor(pred), torch.tensor(label), torch.tensor(mask), cfg)
    return {k: v.numpy() for k, v in out.items()}


@pytest.mark.parametrize("ties", [False, True])
def test_ic_rank_ic_hit_rate_and_summaries_match_pandas(ties: bool) -> None:
    pred, label, mask = panel(30, 50, seed=1, ties=ties)
    got = daily(pred, label, mask)
    ok = mask & np.isfinite(label)
    ref = {"ic": [], "rank_ic": [], "hit_rate": []}
    for d in range(len(pred)):
        p, y = pd.Series(pred[d][ok[d]]), pd.Series(label[d][ok[d]])
        ref["ic"].append(p.corr(y))
        ref["rank_ic"].append(p.rank().corr(y.rank()))
        ref["hit_rate"].append(np.mean(np.sign(p - p.mean()) == np.sign(y - y.mean())))
    for k, v in ref.items():
        assert_backend_equal(got[k], v, tol="rounding", err_msg=k)
    s = summarize(got)
    ric = np.asarray(ref["rank_ic"])
    assert s["days"] == 30
    assert_backend_equal(s["rank_ic"], ric.mean(), tol="reference")
    assert_backend_equal(s["rank_icir"], ric.mean() / ric.std(ddof=1), tol="reference")
    assert_backend_equal(s["rank_ic_t"], ric.mean() / ric.std(ddof=1) * math.sqrt(30), tol="reference")
    assert_backend_equal(s["icir"], np.mean(ref["ic"]) / np.std(ref["ic"], ddof=1), tol="reference")


def test_average_ranks_average_ties_like_pandas() -> None:
    x = torch.tensor([[3.0, 1.0, 1.0, 2.0, 5.0, 5.0, 5.0, 0.5]])
    mask = torch.tensor([[True, True, True, True, True, True, False, True]])
    want = pd.Series([3.0, 1.0, 1.0, 2.0, 5.0, 5.0, 0.5]).rank().to_numpy()
    got = average_ranks(x, mask)[0].numpy()
    assert_backend_equal(got[[0, 1, 2, 3, 4, 5, 7]], want, tol="exact")
    assert np.isnan(got[6])


@pytest.mark.parametrize("names", [450, 120])  # 200 names a side; top/bottom 20% below 400
def test_jpx_spread_matches_the_competition_formula(names: int) -> None:
    pred, label, _ = panel(12, names, seed=3)
    label = np.nan_to_num(label)
    got = daily(pred, label, np.ones_like(pred, dtype=bool))
    want = np.array([jpx_reference(pred[d], label[d]) for d in range(len(pred))])
    assert_backend_equal(got["spread"], want, tol="rounding")
    size = 200 if names >= 400 else int(names * 0.2)
    assert_backend_equal(got["long_short"], want / size, tol="rounding")
    s = summarize(got)
    assert_backend_equal(s["jpx_score"], want.mean() / want.std(ddof=1), tol="reference")
    assert_backend_equal(s["long_short_cum"], np.prod(1 + want / size) - 1, tol="reference")


def test_jpx_spread_by_hand_on_ten_names() -> None:
    """10 names -> top/bottom 20% = 2 a side, weights linspace(2, 1, 2) = [2, 1] (mean 1.5)."""
    pred = np.array([[0.9, 0.1, 0.5, 0.3, 0.8, 0.2, 0.4, 0.6, 0.7, 0.0]])
    label = np.array([[0.05, -0.02, 0.01, 0.00, 0.03, -0.01, 0.02, -0.03, 0.04, -0.04]])
    # best: name 0 (0.05) weight 2, name 4 (0.03) weight 1; worst: name 9 (-0.04) weight 2, name 1 (-0.02) weight 1
    purchase = (2 * 0.05 + 1 * 0.03) / 1.5
    short = (2 * -0.04 + 1 * -0.02) / 1.5
    got = daily(pred, label, np.ones_like(pred, dtype=bool))
    assert_backend_equal(got["spread"][0], purchase - short, tol="rounding")
    assert_backend_equal(got["spread"][0], 0.23 / 1.5, tol="rounding")
    assert_backend_equal(got["long_short"][0], (purchase - short) / 2, tol="rounding")
    masked = daily(pred, label, np.array([[True] * 4 + [False] * 6]))  # 4 names -> 0 a side: undefined
    assert np.isnan(masked["spread"][0]) and not np.isnan(masked["rank_ic"][0])


def test_loss_parts_follow_their_definitions() -> None:
    rng = np.random.default_rng(5)
    pred = torch.tensor(rng.standard_normal((2, 40, 3)), dtype=torch.float32, requires_grad=True)
    target = rng.standard_normal((2, 40, 3)) * 0.02
    target[0, :5, 1] = np.nan
    mask = torch.tensor(rng.random((2, 40)) > 0.2)
    cfg = LossSettings(huber_weight=1.0, huber_delta=1.0, rank_weight=0.0, rank_temperature=1e-4, target_clip=1.5)
    total, parts = ranking_loss(pred, torch.tensor(target, dtype=torch.float32), mask, cfg)
    losses, ranks = [], []
    p = pred.detach().numpy()
    for b in range(2):
        for h in range(3):
            ok = mask[b].numpy() & np.isfinite(target[b, :, h])
            y = target[b, ok, h]
            z = np.clip((y - y.mean()) / y.std(), -1.5, 1.5)
            e = np.abs(p[b, ok, h] - z)
            losses.append(np.where(e < 1, 0.5 * e**2, e - 0.5))
            ranks.append(1 - pd.Series(p[b, ok, h]).rank().corr(pd.Series(y).rank()))
    assert_backend_equal(total, np.concatenate(losses).mean(), tol="float32_step")  # float32 loss, float64 reference
    assert math.isclose(parts["rank"].item(), np.mean(ranks), rel_tol=1e-4)  # soft ranks ~ exact at t -> 0
    total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert (pred.grad[0, ~mask[0]] == 0).all()  # codes that do not count get no gradient
    smooth = dict(vars(cfg), rank_weight=1.0, huber_weight=0.0, rank_temperature=0.5)
    pred.grad = None
    ranking_loss(pred, torch.tensor(target, dtype=torch.float32), mask, LossSettings(**smooth))[0].backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0  # the soft rank term has a gradient


def test_soft_rank_and_zscore_against_numpy() -> None:
    x = torch.tensor([[0.3, -1.0, 2.0, 0.1, 5.0]])
    mask = torch.tensor([[True, True, True, True, False]])
    np.testing.assert_allclose(soft_rank(x, mask, 1e-4)[0, :4].numpy(), [3, 1, 4, 2], atol=1e-5)
    v = x[0, :4].numpy()
    assert_backend_equal(masked_zscore(x, mask)[0], [*((v - v.mean()) / v.std()), 0.0], tol="exact")
