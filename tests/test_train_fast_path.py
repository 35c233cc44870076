"""The training step's fast paths against the straightforward code they replace: the transformer's last position
only, GATv2 and the relation means as CSR products, the soft ranks in blocks, the batch copied once; and a
seeded epoch of all of them together against the plain epoch (same losses, weights and predictions up to float
rounding: the dropout draws are the same)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_geometric")

import torch.nn.functional as F  # noqa: E402
from torch_geometric.nn import GATv2Conv  # noqa: E402

from gpuetl.tensors import DailyGraphs, DaySampler, open_dataset  # noqa: E402
from gpuetl.train import loss as loss_mod  # noqa: E402
from gpuetl.train.config import LeadLagRelation, load_gat_config  # noqa: E402
from gpuetl.train.data import load_train_data  # noqa: E402
from gpuetl.train.loop import GATLearner, batches, train_epoch  # noqa: E402
from gpuetl.train.model import GATRanker, TemporalEncoder  # noqa: E402
from gpuetl.train.sparse import EdgePlan, gatv2  # noqa: E402
from gpuetl.train.splits import label_reach, make_splits  # noqa: E402
from tests._testing import CPU  # noqa: E402
from tests.support.train import TINY_TRAIN, keep_torch_threads, write_tiny_dataset  # noqa: E402,F401


def plain_soft_rank(x: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """The (R, N, N) formula as it was written before the blocks."""
    diff = (x.unsqueeze(-1) - x.unsqueeze(-2)) / temperature
    return 0.5 + (torch.sigmoid(diff) * mask.unsqueeze(-2).to(x.dtype)).sum(-1)


def plain_relation_means(relations: int, x_last: torch.Tensor, edge_index: torch.Tensor,
                         edge_attr: torch.Tensor) -> torch.Tensor:
    src, dst = edge_index
    weight = edge_attr[:, :relations].to(x_last.dtype).abs()
    m, f = x_last.shape
    total = x_last.new_zeros((m, relations)).index_add_(0, dst, weight)
    summed = [x_last.new_zeros((m, f)).index_add_(0, dst, x_last[src] * weight[:, r, None]) for r in range(relations)]
    return torch.cat(summed, dim=1) / total.clamp(min=1e-6).repeat_interleave(f, dim=1)


def plain_forward(model: GATRanker, x: torch.Tensor, context: torch.Tensor, edge_index: torch.Tensor,
                  edge_attr: torch.Tensor) -> torch.Tensor:
    """GATRanker.forward through torch's whole transformer, index_add_ relation means and PyG's GATv2Conv."""
    enc = model.encoder
    h = F.gelu(enc.proj(x))
    h = enc.transformer(h + enc.position[-h.shape[1]:])[:, -1]
    h = F.dropout(h, model.dropout, model.training)
    if model.means is not None and model.means_proj is not None:
        h = h + model.means_proj(plain_relation_means(model.means.relations, x[:, -1], edge_index, edge_attr))
    if model.context is not None:
        h = h + model.context(context)
    for conv, norm in zip(model.convs, model.norms, strict=True):
        h = h + F.dropout(F.elu(conv(norm(h), edge_index, edge_attr=edge_attr)), model.dropout, model.training)
    return model.head(h)


def plain_batch(sampler: DaySampler, days: list[int]) -> tuple[torch.Tensor, ...]:
    """DaySampler.batch as it was: stacked windows, and per day padded edge pieces concatenated."""
    n = sampler.n_codes
    x = torch.nan_to_num(torch.stack([sampler.window(t) for t in days]), nan=0.0)
    context = torch.stack([sampler.context[t] for t in days]).repeat_interleave(n, dim=0)
    g = sampler.graphs
    assert g is not None
    a, own = len(g.relations), g.attr.shape[1]
    src, dst, attr = [], [], []
    for b, t in enumerate(days):
        lo, hi = int(g.start[t]), int(g.stop[t])
        src += [g.src[lo:hi].long() + b * n]
        dst += [g.dst[lo:hi].long() + b * n]
        attr += [F.pad(g.attr[lo:hi], (0, a + 1 - own))]
        if g.fixed is not None:
            src += [g.fixed.src + b * n]
            dst += [g.fixed.dst + b * n]
            attr += [F.pad(g.fixed.attr, (own, 1))]
    loop = torch.arange(len(days) * n)
    flag = g.attr.new_zeros((len(days) * n, a + 1))
    flag[:, a] = 1.0
    edge_index = torch.stack([torch.cat([*src, loop]), torch.cat([*dst, loop])])
    return (x.reshape(len(days) * n, sampler.window_days, -1), context, edge_index, torch.cat([*attr, flag]),
            torch.stack([sampler.targets[t] for t in days]), torch.stack([sampler.eligible[t] for t in days]))


@pytest.mark.parametrize("layers", [1, 2])
def test_the_encoder_computes_the_last_position_as_the_whole_transformer(layers: int) -> None:
    torch.manual_seed(0)
    enc = TemporalEncoder(5, 16, 12, "transformer", layers, heads=4)
    x = torch.randn(40, 12, 5)

    def plain() -> torch.Tensor:
        h = F.gelu(enc.proj(x))
        return enc.transformer(h + enc.position)[:, -1]

    for training in (True, False):
        enc.train(training)
        torch.testing.assert_close(enc(x), plain())
    enc.train()
    params = list(enc.parameters())
    got = torch.autograd.grad((enc(x) ** 2).sum(), params)
    want = torch.autograd.grad((plain() ** 2).sum(), params)
    for name, g, w in zip([n for n, _ in enc.named_parameters()], got, want, strict=True):
        if name.endswith(f"{layers - 1}.self_attn.in_proj_bias"):  # the last layer's key bias cancels in the
            c = 16  # softmax: its true gradient is 0, the plain one's rounding noise
            torch.testing.assert_close(g[:c], w[:c], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(g[2 * c:], w[2 * c:], atol=1e-5, rtol=1e-4)
            assert (g[c: 2 * c] == 0).all() and w[c: 2 * c].abs().max() < 1e-5
        else:
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4, msg=name)


def test_gatv2_as_csr_products_is_pygs_conv_with_the_same_dropout() -> None:
    torch.manual_seed(1)
    m, e = 200, 2500
    loops = torch.arange(m)
    edge_index = torch.stack([torch.cat([torch.randint(0, m, (e,)), loops]), torch.cat([torch.randint(0, m, (e,)),
                                                                                       loops])])
    edge_attr = torch.rand(e + m, 4)
    conv = GATv2Conv(16, 8, heads=2, edge_dim=4, add_self_loops=False, dropout=0.3)
    x = torch.randn(m, 16, requires_grad=True)
    params = [x, *conv.parameters()]
    for training in (True, False):
        conv.train(training)
        torch.manual_seed(5)
        want = conv(x, edge_index, edge_attr=edge_attr)
        want_grad = torch.autograd.grad((want * torch.linspace(-1, 1, 16)).sum(), params)
        torch.manual_seed(5)
        got = gatv2(conv, x, EdgePlan(edge_index, m), edge_attr)
        got_grad = torch.autograd.grad((got * torch.linspace(-1, 1, 16)).sum(), params)
        torch.testing.assert_close(got, want)  # a different dropout mask would miss by far more
        for g, w in zip(got_grad, want_grad, strict=True):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_soft_rank_in_blocks_is_the_pairwise_formula(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loss_mod, "_pair_chunk", lambda x: chunk)
    torch.manual_seed(2)
    x = torch.randn(3, 50, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(3, 50) > 0.3
    g = torch.randn(3, 50, dtype=torch.float64)
    got, want = loss_mod.soft_rank(x, mask, 0.1), plain_soft_rank(x, mask, 0.1)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0])


def test_a_seeded_epoch_equals_the_plain_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fast path at once (batches, encoder, relation means, GATv2, soft ranks) against the code before them,
    with dropout on: the same losses step by step, the same weights and EMA predictions after the epoch."""
    ds = open_dataset(write_tiny_dataset(tmp_path / "ds"), CPU)
    cfg = load_gat_config("configs/train/gat.yaml", [*TINY_TRAIN, "model.relation_means=true", "model.dropout=0.2",
                                                    "optim.days_per_batch=3"])
    relation = LeadLagRelation(column="ret_1d", within=None, peers=3, min_days=50)
    data = load_train_data(ds, cfg.data, model=dataclasses.replace(cfg.model, lead_lag=relation))
    fold = data.fold(make_splits(ds.dates, cfg.splits, label_reach(data.label, cfg.data.horizons)).folds[0])
    day_batches = batches(data.days(fold.fold.train), cfg.optim.days_per_batch, np.random.default_rng(0))[:6]
    fast, plain = GATLearner(cfg, data, seed=3), GATLearner(cfg, data, seed=3)
    sampler = fast.sampler(fold)
    assert sampler.graphs is not None and sampler.graphs.fixed is not None and fast.model.means is not None

    torch.manual_seed(11)
    fast_losses = [train_epoch(fast.model, fast.ema, fast.optimizer, sampler, [days], cfg) for days in day_batches]
    torch.manual_seed(11)
    plain_losses = []
    monkeypatch.setattr(loss_mod, "soft_rank", plain_soft_rank)
    plain.model.train()
    for days in day_batches:
        x, context, edge_index, edge_attr, y, mask = plain_batch(sampler, days)
        out = plain_forward(plain.model, x, context, edge_index, edge_attr)
        loss, _ = loss_mod.ranking_loss(out.view(len(days), sampler.n_codes, -1), y, mask, cfg.loss)
        plain.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plain.model.parameters(), cfg.optim.grad_clip)
        plain.optimizer.step()
        plain.ema.update(plain.model)
        plain_losses.append(loss.detach())
    monkeypatch.undo()
    torch.testing.assert_close(torch.stack(fast_losses), torch.stack(plain_losses), atol=1e-5, rtol=1e-5)
    for (name, a), b in zip(fast.model.named_parameters(), plain.model.parameters(), strict=True):
        if not name.endswith("self_attn.in_proj_bias"):  # its key part has no effect (the encoder test)
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)
    days = data.days(fold.fold.valid)[:5]
    want = torch.stack([plain_forward(plain.ema.model, *plain_batch(sampler, [t])[:4]).detach()[:, 0] for t in days])
    torch.testing.assert_close(fast.predict(fold, days), want, atol=1e-5, rtol=1e-4)


def test_the_batch_is_the_days_windows_and_edges_in_order(tmp_path: Path) -> None:
    ds = open_dataset(write_tiny_dataset(tmp_path / "ds", codes=12, late_codes=2), CPU)
    panel = ds.panel(["ret_1d_z", "sma5_gap_z"], targets=["target_next_ret_1d"])
    graphs = ds.graphs().with_sector(panel.column("ret_1d_z").sign(), torch.ones_like(panel.column("ret_1d_z")), 2)
    graphs = graphs.with_fixed(torch.tensor([0, 3]), torch.tensor([1, 1]), torch.tensor([2.0, 3.0]), "lead_lag")
    ctx = torch.randn(len(ds.dates), 2)
    sampler = DaySampler(panel.values, panel.present, panel.targets, 5, ctx, graphs)
    for days in ([40, 12, 35], [2, 41]):  # a day before the 5th: padded with missing days
        b = sampler.batch(days)
        for got, want in zip((b.x, b.context, b.edge_index, b.edge_attr, b.y, b.mask), plain_batch(sampler, days),
                             strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)  # bit for bit, dtype too
    empty = DailyGraphs.empty(len(ds.dates), 12)
    assert empty.batch([3, 4])[0].shape == (2, 24)
