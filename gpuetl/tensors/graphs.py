"""A dataset's daily graphs as device tensors, indexed by a panel's code and date axes.

`gpuetl graph` writes one row per undirected edge (src < dst, indices into codes.parquet). Here every edge is
loaded once onto the panel's device in both directions, re-indexed to the panel's (sorted) codes and grouped
by day; the offsets of each day's group stay on the host, so a day's edges are slices of device tensors (no
copy, no host round trip) and a batch of days is their disjoint union.

Edges carry attributes, one column per relation: `weight` (the correlation graph's shrunk correlation, 0
where the pair is not an edge of it) and, when added (`with_sector`), `sector` (1 where the source is among
the `peers` largest codes of the target's 33-sector that day: every sector peer in small sectors). A pair in
both relations is one edge with both attributes. A relation fitted once for a span of days (`with_fixed`:
the lead-lag relation a training fold estimates) is one edge list that every day of a batch shares; its
edges stay apart from the daily ones (a pair may then be two edges, one per kind).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gpuetl.backend import Backend
from gpuetl.tensors.panel import to_torch


class DatasetError(RuntimeError):
    """The folder is not a built dataset (or lacks what was asked for); the message says what to run."""


@dataclasses.dataclass(frozen=True)
class DailyGraphs:
    """Directed edges (src -> dst: dst aggregates from src) of every panel date, grouped by date."""

    src: torch.Tensor  # (E,) int64 panel code index
    dst: torch.Tensor  # (E,) int64
    attr: torch.Tensor  # (E, A) float32, one column per relation
    relations: tuple[str, ...]  # the attribute columns' names
    start: np.ndarray  # (D,) host: first edge of date t
    stop: np.ndarray  # (D,) host: one past its last edge
    n_codes: int
    fixed: FixedEdges | None = None  # edges of every day, attributes for the relations after attr's columns

    @classmethod
    def empty(cls, n_days: int, n_codes: int, device: torch.device | str | None = None) -> DailyGraphs:
        """No daily edges (a dataset without graphs), so that other relations can be added."""
        none = torch.zeros(0, dtype=torch.int64, device=device)
        return cls(none, none, torch.zeros((0, 1), device=device), ("weight",), np.zeros(n_days, dtype=np.int64),
                   np.zeros(n_days, dtype=np.int64), n_codes)

    @property
    def edge_dim(self) -> int:
        """Columns of a batch's edge attributes: one per relation and the self-loop flag."""
        return len(self.relations) + 1

    @classmethod
    def from_edges(cls, day: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, attr: torch.Tensor,
                   relations: tuple[str, ...], n_days: int, n_codes: int) -> DailyGraphs:
        """Directed edges (date index, src, dst, (E, A) attributes) in any order; duplicates are merged."""
        return _Edges(day, src, dst, attr).graphs(relations, n_days, n_codes)

    def edges(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Date index t -> edge_index (2, E_t) int64 with both directions of every edge, edge_weight (E_t,)."""
        lo, hi = int(self.start[t]), int(self.stop[t])
        return torch.stack([self.src[lo:hi], self.dst[lo:hi]]), self.attr[lo:hi, self.relations.index("weight")]

    def batch(self, days: Sequence[int], graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The disjoint union of the days' graphs (node b * n_codes + code for the b-th day) with one self-loop per
        node: edge_index (2, E), edge_attr (E, A + 1), the last column flagging the loops. The loops are added
        here rather than by the conv, so no boolean mask syncs the device; `graph=False` keeps only them
        (the graph-free ablation: the same nodes and attributes, no neighbours)."""
        n, a, own = self.n_codes, len(self.relations), self.attr.shape[1]
        src: list[torch.Tensor] = []
        dst: list[torch.Tensor] = []
        attr: list[torch.Tensor] = []
        pad = torch.nn.functional.pad
        for b, t in enumerate(days if graph else ()):
            lo, hi = int(self.start[t]), int(self.stop[t])
            src.append(self.src[lo:hi] + b * n)
            dst.append(self.dst[lo:hi] + b * n)
            attr.append(pad(self.attr[lo:hi], (0, a + 1 - own)))
            if self.fixed is not None:
                src.append(self.fixed.src + b * n)
                dst.append(self.fixed.dst + b * n)
                attr.append(pad(self.fixed.attr, (own, 1)))
        loop = torch.arange(len(days) * n, device=self.src.device)
        flag = self.attr.new_zeros((len(days) * n, a + 1))
        flag[:, a] = 1.0
        return torch.stack([torch.cat([*src, loop]), torch.cat([*dst, loop])]), torch.cat([*attr, flag])

    def with_sector(self, sector: torch.Tensor, size: torch.Tensor, peers: int) -> DailyGraphs:
        """These edges plus the sector relation: on day t, an edge j -> i when i and j share a sector (same value of
        `sector`, (D, N), NaN where the code has no row) and j is among the `peers` largest (by `size`, NaN as
        the smallest) codes of that sector other than i."""
        if self.fixed is not None:
            raise ValueError("add the sector relation before a fixed relation")
        d, n = sector.shape
        s = torch.nan_to_num(sector.double(), nan=-1.0)
        z = torch.nan_to_num(size.double(), nan=-np.inf)
        order = torch.argsort(-z, dim=1, stable=True)  # by size, largest first
        order = torch.gather(order, 1, torch.argsort(torch.gather(s, 1, order), dim=1, stable=True))  # then by sector
        ss = torch.gather(s, 1, order)
        pos = torch.arange(n, device=s.device).expand(d, n)
        new = torch.ones_like(ss, dtype=torch.bool)
        new[:, 1:] = ss[:, 1:] != ss[:, :-1]
        first = torch.cummax(torch.where(new, pos, torch.zeros_like(pos)), dim=1).values  # group start
        size_g = torch.bincount((torch.arange(d, device=s.device)[:, None] * n + first).reshape(-1), minlength=d * n)
        group_n = size_g.view(d, n).gather(1, first)
        k = torch.arange(peers + 1, device=s.device)
        slot = first.unsqueeze(-1) + k  # (D, N, peers+1): the group's largest members
        ok = (k < group_n.unsqueeze(-1)) & (ss >= 0).unsqueeze(-1)
        leader = torch.gather(order, 1, slot.clamp(max=n - 1).reshape(d, -1)).view(d, n, -1)
        member = order.unsqueeze(-1).expand_as(leader)
        ok &= leader != member
        keep_first = torch.cumsum(ok.to(torch.int64), dim=-1) <= peers  # at most `peers` others
        ok &= keep_first
        day = torch.arange(d, device=s.device).view(d, 1, 1).expand_as(leader)
        edge_day = day[ok]  # its length is the edge count: no second sync for ok.sum()
        sector_edges = _Edges(edge_day, leader[ok], member[ok], torch.ones(len(edge_day), 1, device=self.attr.device))
        own = _Edges(self._day_of_edges(), self.src, self.dst, self.attr)
        return own.merge(sector_edges).graphs((*self.relations, "sector"), d, n)

    def with_fixed(self, src: torch.Tensor, dst: torch.Tensor, weight: torch.Tensor, relation: str) -> DailyGraphs:
        """These edges plus a relation that holds on every day: edges src -> dst with attribute `weight` (E,)."""
        if self.fixed is not None:
            raise ValueError(f"these graphs already hold a fixed relation ({self.relations[-1]})")
        fixed = FixedEdges(src.to(self.src.device), dst.to(self.src.device), weight.to(self.attr).view(-1, 1))
        return dataclasses.replace(self, relations=(*self.relations, relation), fixed=fixed)

    def edge_counts(self) -> dict[str, torch.Tensor]:
        """(D,) edges per day of each relation (an edge belongs to a relation whose attribute is not 0; a fixed
        relation has the same edges every day), on the edges' device: what a run records it learnt over."""
        days, own = self._day_of_edges(), self.attr.shape[1]
        counts = {name: torch.bincount(days[self.attr[:, r] != 0], minlength=len(self.start))
                  for r, name in enumerate(self.relations[:own])}
        if self.fixed is not None:
            for r, name in enumerate(self.relations[own:]):
                counts[name] = (self.fixed.attr[:, r] != 0).sum().expand(len(self.start)).to(torch.int64)
        return counts

    def _day_of_edges(self) -> torch.Tensor:
        """(E,) the date index of each edge."""
        counts = torch.as_tensor(self.stop - self.start, device=self.src.device)
        return torch.repeat_interleave(torch.arange(len(self.start), device=self.src.device), counts)


@dataclasses.dataclass(frozen=True)
class FixedEdges:
    """Directed edges that hold on every day (src -> dst), with their attribute columns."""

    src: torch.Tensor  # (E,) int64 panel code index
    dst: torch.Tensor  # (E,) int64
    attr: torch.Tensor  # (E, R) float32


@dataclasses.dataclass(frozen=True)
class _Edges:
    """Loose directed edges, at load time only (these steps sync the device freely)."""

    day: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor
    attr: torch.Tensor  # (E, A)

    def merge(self, other: _Edges) -> _Edges:
        """Both edge sets, attribute columns side by side (zeros where an edge lacks a relation)."""
        a, b = self.attr.shape[1], other.attr.shape[1]
        attr = torch.zeros((len(self.day) + len(other.day), a + b), dtype=self.attr.dtype, device=self.attr.device)
        attr[: len(self.day), :a] = self.attr
        attr[len(self.day):, a:] = other.attr
        return _Edges(torch.cat([self.day, other.day]), torch.cat([self.src, other.src]),
                      torch.cat([self.dst, other.dst]), attr)

    def graphs(self, relations: tuple[str, ...], d: int, n: int) -> DailyGraphs:
        """One edge per (day, src, dst), attributes summed, sorted by day with per-day offsets on the host."""
        key = (self.day * n + self.src) * n + self.dst
        unique, inverse = torch.unique(key, return_inverse=True)  # sorted: by day, then src, dst
        attr = torch.zeros((len(unique), self.attr.shape[1]), dtype=torch.float32, device=self.attr.device)
        attr.index_add_(0, inverse, self.attr.float())
        day = unique // (n * n)
        bounds = torch.searchsorted(day, torch.arange(d + 1, device=day.device)).cpu().numpy()  # host-ok: D+1 offsets
        return DailyGraphs(unique // n % n, unique % n, attr, relations, bounds[:-1], bounds[1:], n)


def graph_dir(dataset: Path) -> Path:
    return dataset / "graphs"


def load_daily_graphs(backend: Backend, folder: Path, codes: np.ndarray, dates: np.ndarray,
                      device: torch.device | str | None = None) -> DailyGraphs:
    """Read `folder` (edges/, codes.parquet, graphs.json) onto the backend's device, for a panel's axes.

    Date t uses the graph of date t, or with `every_n_days` > 1 the latest graph at or before it."""
    xp = backend.xp
    meta = json.loads((folder / "graphs.json").read_text())
    graph_codes = pd.read_parquet(folder / "codes.parquet")  # host-ok: the node table (N codes), once
    position = pd.Series(np.arange(len(codes)), index=pd.Index(codes))
    remap = position.reindex(graph_codes.sort_values("index")["Code"].to_numpy()).to_numpy()  # host-ok: node table
    files = sorted(str(f) for f in (folder / "edges").rglob("*.parquet"))
    edges = backend.read_parquet(files, columns=["Date", "src", "dst", "weight"])
    lookup = xp.asarray(np.nan_to_num(remap, nan=-1).astype(np.int64))  # host-ok: N ints, once
    src = to_torch(lookup[backend.to_array(edges["src"]).astype(xp.int64)], device)
    dst = to_torch(lookup[backend.to_array(edges["dst"]).astype(xp.int64)], device)
    if bool((src < 0).any() | (dst < 0).any()):  # host-ok: one check at load
        raise DatasetError(f"{folder}: edges name codes the dataset does not have; rebuild the graphs (`gpuetl graph`)")
    edge_day = to_torch(backend.days(edges["Date"]), device)
    weight = to_torch(backend.to_array(edges["weight"]).astype(xp.float32), device)
    panel_days = torch.as_tensor(dates.astype("datetime64[D]").astype(np.int64), device=src.device)
    graph_days = torch.unique(edge_day)
    pos = torch.searchsorted(graph_days, panel_days, right=True) - 1  # the latest graph at or before each date
    if int(meta["config"]["every_n_days"]) <= 1:  # every date has its own graph (or none)
        pos = torch.where(graph_days[pos.clamp(min=0)] == panel_days, pos, -1)
    # each date t using graph g gets a copy of g's edges
    graph_of_edge = torch.searchsorted(graph_days, edge_day)
    order = torch.argsort(graph_of_edge, stable=True)
    per_graph = torch.bincount(graph_of_edge, minlength=len(graph_days))
    first = torch.cumsum(per_graph, 0) - per_graph
    t = torch.nonzero(pos >= 0).squeeze(1)
    count = per_graph[pos[t]]
    day = torch.repeat_interleave(t, count)
    within = torch.arange(len(day), device=day.device) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    ids = order[torch.repeat_interleave(first[pos[t]], count) + within]
    s, d, w = src[ids], dst[ids], weight[ids].unsqueeze(1)
    return DailyGraphs.from_edges(torch.cat([day, day]), torch.cat([s, d]), torch.cat([d, s]), torch.cat([w, w]),
                                  ("weight",), len(dates), len(codes))
