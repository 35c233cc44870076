"""The graph steps of the GAT on the CPU as CSR products: the same sums as the scatter (index_add_) ops of PyG and
of `RelationMeans`, in the same edge order, several times faster.

A CPU index_add_ adds one row at a time; a batch of 4 days has ~330 k edges, and a GATv2 layer sums over them a
dozen times forward and backward (the attention softmax, the messages, the gathers' gradients). Here the edges
are sorted once per batch by target and by source (`EdgePlan`), and every sum over edges is a CSR matrix of
ones times the edge values (MKL's kernel, one pass over the edges). The maths is PyG's GATv2Conv line by line,
on the conv's own parameters, and its attention dropout is drawn on the same (E, heads) tensor in the same edge
order, so a seeded run draws the same masks (tests/test_train_model.py holds both equal, gradients included).
On a GPU the model keeps PyG's kernels (`GATRanker.forward`).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import GATv2Conv

# torch says once per process that its sparse CSR support is "beta"; the CSR x dense product used here is a
# plain MKL/ATen kernel, checked against the scatter ops in tests/test_train_model.py
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)


class EdgePlan:
    """A batch's edges (2, E) sorted once by target and once by source, for M nodes; sums over edges by either
    end as CSR (M x E) products. Built per forward pass (the edges are the batch's), shared by every layer."""

    def __init__(self, edge_index: Tensor, nodes: int) -> None:
        self.src, self.dst = edge_index[0], edge_index[1]
        self.nodes = nodes

    @functools.cached_property
    def _by_dst(self) -> tuple[Tensor, Tensor]:
        return _csr_order(self.dst, self.nodes)

    @functools.cached_property
    def _by_src(self) -> tuple[Tensor, Tensor]:
        return _csr_order(self.src, self.nodes)

    @functools.cached_property
    def sum_by_dst(self) -> Tensor:
        """(M, E) CSR of ones: row i holds the edges into i, in edge order."""
        return _ones(*self._by_dst, self.nodes)

    @functools.cached_property
    def sum_by_src(self) -> Tensor:
        return _ones(*self._by_src, self.nodes)

    def weighted_by_dst(self, weight: Tensor) -> list[Tensor]:
        """Per column r of weight (E, R): the (M, M) CSR whose row i holds weight[e, r] at column src[e] for the
        edges e into i."""
        crow, order = self._by_dst
        col, values = self.src.index_select(0, order), weight.index_select(0, order)
        return [torch.sparse_csr_tensor(crow, col, values[:, r].contiguous(), (self.nodes, self.nodes),
                                        check_invariants=False) for r in range(values.shape[1])]

    def weighted_by_src(self, weight: Tensor) -> list[Tensor]:
        """As weighted_by_dst with the ends swapped: row j holds weight[e, r] at column dst[e] for the edges from j."""
        crow, order = self._by_src
        col, values = self.dst.index_select(0, order), weight.index_select(0, order)
        return [torch.sparse_csr_tensor(crow, col, values[:, r].contiguous(), (self.nodes, self.nodes),
                                        check_invariants=False) for r in range(values.shape[1])]

    def max_by_dst(self, values: Tensor) -> Tensor:
        """(M, K): per target, the max of its edges' rows of `values` (E, K); no gradient (the softmax's shift)."""
        crow, order = self._by_dst
        return torch.segment_reduce(values.detach().index_select(0, order), "max", offsets=crow, axis=0)


def _csr_order(index: Tensor, nodes: int) -> tuple[Tensor, Tensor]:
    """(crow (M + 1,), the edges in row order) for rows `index`; a stable sort keeps the edge order in a row.
    (index_select, not x[order]: the CPU's advanced indexing is several times slower.)"""
    index, order = torch.sort(index, stable=True)
    crow = torch.searchsorted(index, torch.arange(nodes + 1, device=index.device))
    return crow, order


def _ones(crow: Tensor, order: Tensor, nodes: int) -> Tensor:
    ones = torch.ones(len(order), dtype=torch.float32, device=order.device)
    return torch.sparse_csr_tensor(crow, order, ones, (nodes, len(order)), check_invariants=False)


def _product(csr: Tensor, dense: Tensor) -> Tensor:
    """csr @ dense in dense's dtype (the CSR of ones is float32)."""
    return (csr if csr.dtype == dense.dtype else csr.to(dense.dtype)) @ dense.contiguous()


class _Gather(torch.autograd.Function):
    """x[index] (E, K), whose gradient is summed by index with a CSR product (the transpose of the gather)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, index: Tensor, csr: Tensor) -> Tensor:
        ctx.csr = csr
        return x.index_select(0, index)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return _product(ctx.csr, grad), None, None


class _Scatter(torch.autograd.Function):
    """The sum of `values` (E, K) by index into (M, K) as a CSR product; its gradient gathers."""

    @staticmethod
    def forward(ctx: Any, values: Tensor, index: Tensor, csr: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        return _product(csr, values)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (index,) = ctx.saved_tensors
        return grad.index_select(0, index), None, None


class _AttentionSum(torch.autograd.Function):
    """out[i, head k] = sum over edges e into i of alpha[e, k] x[src[e], head k], per head one CSR product with the
    attention weights as values: no (E, heads * C) message tensor is formed or kept for the backward, which is
    the transposed products for x and, for alpha, each edge's dot of its target's gradient and source's row."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, alpha: Tensor, plan: EdgePlan) -> Tensor:
        heads = alpha.shape[1]
        width = x.shape[1] // heads
        ctx.save_for_backward(x, alpha)
        ctx.plan = plan
        per_head = plan.weighted_by_dst(alpha)
        return torch.cat([per_head[k] @ x[:, k * width: (k + 1) * width] for k in range(heads)], dim=1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        x, alpha = ctx.saved_tensors
        plan: EdgePlan = ctx.plan
        heads = alpha.shape[1]
        width = x.shape[1] // heads
        grad = grad.contiguous()
        per_head = plan.weighted_by_src(alpha)
        grad_x = torch.cat([per_head[k] @ grad[:, k * width: (k + 1) * width] for k in range(heads)], dim=1)
        both = grad.index_select(0, plan.dst) * x.index_select(0, plan.src)  # (E, heads * C)
        return grad_x, both.view(len(both), heads, width).sum(-1), None


class _LeakyAttention(torch.autograd.Function):
    """leaky_relu(e, slope) @ att (the attention logits (E, heads)), keeping only e for the backward (which
    recomputes the activation) instead of both e and its activation."""

    @staticmethod
    def forward(ctx: Any, e: Tensor, att: Tensor, slope: float) -> Tensor:
        ctx.save_for_backward(e, att)
        ctx.slope = slope
        return F.leaky_relu(e, slope) @ att

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        e, att = ctx.saved_tensors
        grad_e = torch.ops.aten.leaky_relu_backward(grad @ att.T, e, ctx.slope, False)
        return grad_e, F.leaky_relu(e, ctx.slope).T @ grad, None


def gather_src(x: Tensor, plan: EdgePlan) -> Tensor:
    return _Gather.apply(x, plan.src, plan.sum_by_src)


def gather_dst(x: Tensor, plan: EdgePlan) -> Tensor:
    return _Gather.apply(x, plan.dst, plan.sum_by_dst)


def sum_dst(values: Tensor, plan: EdgePlan) -> Tensor:
    return _Scatter.apply(values, plan.dst, plan.sum_by_dst)


def gatv2(conv: GATv2Conv, x: Tensor, plan: EdgePlan, edge_attr: Tensor) -> Tensor:
    """`conv(x, edge_index, edge_attr=edge_attr)` for PyG's GATv2Conv as GATRanker builds it (concat heads, bias,
    no residual, self-loops already in the edges, separate source and target weights), through `plan`.

    Shapes: x (M, C_in); edge_attr (E, A) -> (M, heads * C)"""
    x_l, x_r = conv.lin_l(x), conv.lin_r(x)  # (M, heads * C)
    # e = x_r[dst] + x_l[src] + lin_edge(edge_attr), summed in place (the gathers keep no output for their
    # backward), so that one (E, heads * C) tensor stays for the attention's backward and no messages at all
    e = gather_dst(x_r, plan).add_(gather_src(x_l, plan))
    if conv.lin_edge is not None:
        e = e.add_(conv.lin_edge(edge_attr))
    att = torch.block_diag(*conv.att[0].unsqueeze(-1).unbind(0))  # (heads * C, heads): att per head, as columns
    alpha = _LeakyAttention.apply(e, att, conv.negative_slope)  # (E, heads)
    alpha = (alpha - plan.max_by_dst(alpha).index_select(0, plan.dst)).exp()
    alpha = alpha / gather_dst(sum_dst(alpha, plan) + 1e-16, plan)
    alpha = F.dropout(alpha, p=conv.dropout, training=conv.training)
    out = _AttentionSum.apply(x_l, alpha, plan)
    return out + conv.bias if conv.bias is not None else out
