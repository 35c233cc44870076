"""The ranking model: a per-code temporal encoder, per-day context, GATv2 layers over the day's graph, one head
per horizon. PyG style: `reset_parameters()`, a typed `forward`, shapes in the docstrings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv
from torch_geometric.nn.inits import reset

from gpuetl.train.sparse import EdgePlan, gatv2


class TemporalEncoder(nn.Module):
    r"""Encodes each code's last L days into one vector: a shared input projection, then a GRU (its last hidden
    state) or a small pre-norm transformer (its last position, with learned position embeddings).

    Args:
        in_channels: F, inputs per day.
        hidden_channels: size of the code's encoding.
        window: L (the transformer's position embeddings).
        kind: "gru" or "transformer".
        layers: recurrent or transformer layers.
        heads: transformer attention heads.
        dropout: dropout between GRU layers.

    Shapes:
        input: (M, L, F) for M codes (of all days in the batch); output: (M, hidden_channels)
    """

    def __init__(self, in_channels: int, hidden_channels: int, window: int, kind: str = "gru", layers: int = 1,
                 heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.kind = kind
        self.proj = nn.Linear(in_channels, hidden_channels)
        if kind == "gru":
            self.rnn = nn.GRU(hidden_channels, hidden_channels, num_layers=layers, batch_first=True,
                              dropout=dropout if layers > 1 else 0.0)
        elif kind == "transformer":
            # no dropout inside (on CPU, masks over every (code, head, L, L) attention map cost more than the
            # attention itself); GATRanker drops out the encoding instead
            layer = nn.TransformerEncoderLayer(hidden_channels, heads, 2 * hidden_channels, 0.0, batch_first=True,
                                               norm_first=True)
            self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.position = nn.Parameter(torch.zeros(window, hidden_channels))
        else:
            raise ValueError(f"encoder must be gru or transformer, not {kind!r}")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()
        if self.kind == "gru":
            self.rnn.reset_parameters()
        else:
            for layer in self.transformer.layers:
                for module in layer.modules():
                    if module is not layer and hasattr(module, "reset_parameters"):
                        module.reset_parameters()
            nn.init.normal_(self.position, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        h = F.gelu(self.proj(x))
        if self.kind == "gru":
            _, last = self.rnn(h)
            return last[-1]
        return self._last_position(h + self.position[-h.shape[1]:])

    def _last_position(self, h: Tensor) -> Tensor:
        """`self.transformer(h)[:, -1]`, computing the last layer at the last position only: its query, attention
        row, residual and feed-forward at the L-1 other positions would be thrown away. Its keys and values are
        never formed either: with y = norm1(h), head k's score of position l is q_k . (W_k y_l + b_k), whose b_k
        term is the same for every l and cancels in the softmax, so it is (W_k^T q_k) . y_l; and its output
        sum_l p_l (W_v y_l + b_v) is W_v (sum_l p_l y_l) + b_v, as the p_l sum to 1. Same parameters and maths
        (to float rounding), C/heads times fewer products over the window than the (M, L, 2C) keys and values.

        Shapes: h (M, L, C) -> (M, C)"""
        *earlier, layer = self.transformer.layers
        for module in earlier:
            h = module(h)
        attn = layer.self_attn
        if self.transformer.norm is not None or not layer.norm_first or (self.training and attn.dropout > 0):
            out = self.transformer.norm(layer(h)) if self.transformer.norm is not None else layer(h)
            return out[:, -1]  # not what __init__ builds: the plain way
        m, _, c = h.shape
        heads, width = attn.num_heads, c // attn.num_heads
        y = layer.norm1(h)  # (M, L, C)
        w, b = attn.in_proj_weight, attn.in_proj_bias
        q = F.linear(y[:, -1], w[:c], b[:c]).view(m, heads, width) * width**-0.5
        wk = w[c: 2 * c].view(heads, width, c)
        score = torch.bmm(torch.einsum("mhd,hdc->mhc", q, wk), y.transpose(1, 2))  # (M, heads, L)
        pooled = torch.bmm(torch.softmax(score, dim=-1), y)  # (M, heads, C): sum_l p_l y_l per head
        wv = w[2 * c:].view(heads, width, c)
        a = torch.einsum("mhc,hdc->mhd", pooled, wv).reshape(m, c) + b[2 * c:]
        out = h[:, -1] + layer.dropout1(attn.out_proj(a))
        ff = layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(out)))))
        return out + layer.dropout2(ff)


class RelationMeans(nn.Module):
    r"""Each code's last-day inputs averaged over its in-neighbours, one mean per relation, weighted by that relation's
    edge attribute, then projected: a fixed-weight (R-GCN style) step that puts the neighbours' latest moves
    (a leader's return today) straight into the code's encoding, before the attention layers. A code without
    neighbours in a relation (every code in the graph-free ablation: self-loops carry no relation weight) gets 0.

    Shapes:
        x_last: (M, F); edge_index: (2, E); edge_attr: (E, A) with the R = A - 1 relations first -> (M, R * F)
    """

    def __init__(self, relations: int) -> None:
        super().__init__()
        self.relations = relations

    def forward(self, x_last: Tensor, edge_index: Tensor, edge_attr: Tensor, plan: EdgePlan | None = None) -> Tensor:
        src, dst = edge_index
        weight = edge_attr[:, : self.relations].to(x_last.dtype).abs()  # (E, R)
        m, f = x_last.shape
        if x_last.device.type == "cpu":  # the same sums as CSR products (gpuetl/train/sparse.py)
            plan = plan if plan is not None else EdgePlan(edge_index, m)
            ones = torch.cat([x_last, x_last.new_ones((m, 1))], dim=1)  # the last column: the weights' total
            sums = [csr @ ones for csr in plan.weighted_by_dst(weight)]  # host-ok: a list of CSR tensors (CPU)
            return torch.cat([s[:, :f] / s[:, f:].clamp(min=1e-6) for s in sums], dim=1)
        total = x_last.new_zeros((m, self.relations)).index_add_(0, dst, weight)
        source = x_last[src]  # (E, F), gathered once; one (E, F) product per relation, never an (E, R, F) one
        summed = [x_last.new_zeros((m, f)).index_add_(0, dst, source * weight[:, r, None])
                  for r in range(self.relations)]
        return torch.cat(summed, dim=1) / total.clamp(min=1e-6).repeat_interleave(f, dim=1)


class GATRanker(nn.Module):
    r"""Scores every code of a batch of days for each horizon.

    encode the window -> add the day's context -> `gat_layers` x [h + ELU(GATv2(LayerNorm(h), edge attributes))]
    -> MLP head with one output per horizon. The graph of a batch is the disjoint union of its days' graphs
    with a self-loop per node (weight 1); with only the self-loops (the graph-free ablation) every layer sees
    the code alone and the model is otherwise the same, parameter for parameter.

    Args:
        in_channels: F, per-code inputs per day.
        context_channels: C, day-constant inputs (0 for none).
        hidden_channels: width of encodings and GAT layers (a multiple of `heads`).
        horizons: H, outputs per code.
        window: L.
        encoder: "gru" or "transformer"; encoder_layers: its depth.
        gat_layers: GATv2 layers; heads: attention heads per layer.
        edge_dim: A, edge attributes (the relations' weights and the self-loop flag) the attention sees.
        dropout: dropout in the encoder, on the attention coefficients and after each layer.
        relation_means: add `RelationMeans` of the last day's inputs to the encoding (over A - 1 relations).

    Shapes:
        x: (M, L, F); context: (M, C); edge_index: (2, E) with self-loops; edge_attr: (E, A) -> (M, H)
    """

    def __init__(self, in_channels: int, context_channels: int, hidden_channels: int, horizons: int, window: int,
                 encoder: str = "gru", encoder_layers: int = 1, gat_layers: int = 2, heads: int = 4,
                 edge_dim: int = 1, dropout: float = 0.1, relation_means: bool = False) -> None:
        super().__init__()
        self.dropout = dropout
        self.encoder = TemporalEncoder(in_channels, hidden_channels, window, encoder, encoder_layers, heads, dropout)
        r = edge_dim - 1 if relation_means else 0
        self.means = RelationMeans(r) if r else None
        self.means_proj = nn.Linear(in_channels * r, hidden_channels) if r else None
        self.context = nn.Linear(context_channels, hidden_channels) if context_channels else None
        self.convs = nn.ModuleList(
            GATv2Conv(hidden_channels, hidden_channels // heads, heads=heads, edge_dim=edge_dim, add_self_loops=False,
                      dropout=dropout) for _ in range(gat_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_channels) for _ in range(gat_layers))
        self.head = nn.Sequential(nn.Linear(hidden_channels, hidden_channels), nn.GELU(),
                                  nn.Linear(hidden_channels, horizons))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        if self.means_proj is not None:
            self.means_proj.reset_parameters()
        if self.context is not None:
            self.context.reset_parameters()
        for module in (*self.convs, *self.norms, self.head):
            reset(module)

    def forward(self, x: Tensor, context: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        # on the CPU the graph steps run as CSR products over the edges sorted once (gpuetl/train/sparse.py: the
        # same maths and dropout draws as PyG's scatter kernels, which a GPU keeps)
        plan = EdgePlan(edge_index, x.shape[0]) if x.device.type == "cpu" else None
        h = F.dropout(self.encoder(x), self.dropout, self.training)
        if self.means is not None and self.means_proj is not None:
            h = h + self.means_proj(self.means(x[:, -1], edge_index, edge_attr, plan))
        if self.context is not None:
            h = h + self.context(context)
        attr = edge_attr.to(h.dtype)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            out = gatv2(conv, norm(h), plan, attr) if plan is not None else conv(norm(h), edge_index, edge_attr=attr)
            h = h + F.dropout(F.elu(out), self.dropout, self.training)
        return self.head(h)
