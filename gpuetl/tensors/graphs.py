"""A dataset's daily graphs as device tensors, indexed by a panel's code and date axes.

`gpuetl graph` writes one row per undirected edge (src < dst, indices into codes.parquet). Here every edge is
loaded once onto the panel's device in both directions, re-indexed to the panel's (sorted) codes and grouped
by day (within a day: by source, then target); the offsets of each day's group stay on the host, so a day's
edges are slices of device tensors (no copy, no host round trip) and a batch of days is their disjoint union.

Five years of 2,000 codes are ~65 M directed edges: they are built a few weeks of days at a time (one year's
edge file read at a time) into arrays allocated once, the node indices in the smallest integer type that holds
a code index (`node_dtype`: int16 up to 32,767 codes; a batch widens its few to int64), so loading never holds
more than the result and one block of days (tests/test_tensors.py checks the blocks against a one-shot build).

Edges carry attributes, one column per relation: `weight` (the correlation graph's shrunk correlation, 0
where the pair is not an edge of it) and, when added (`with_sector`), `sector` (1 where the source is among
the `peers` largest codes of the target's 33-sector that day: every sector peer in small sectors). A pair in
both relations is one edge with both attributes. A relation fitted once for a span of days (`with_fixed`:
the lead-lag relation a training fold estimates) is one edge list that every day of a batch shares; its
edges stay apart from the daily ones (a pair may then be two edges, one per kind).
"""

from __future__ import annotations

import dataclasses
import itertools
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
    """Directed edges (src -> dst: dst aggregates from src) of every panel date, grouped by date, and within a
    date sorted by (src, dst)."""

    src: torch.Tensor  # (E,) panel code index, node_dtype(n_codes): widen before adding to it
    dst: torch.Tensor  # (E,) as src
    attr: torch.Tensor  # (E, A) float32, one column per relation
    relations: tuple[str, ...]  # the attribute columns' names
    start: np.ndarray  # (D,) host: first edge of date t
    stop: np.ndarray  # (D,) host: one past its last edge
    n_codes: int
    fixed: FixedEdges | None = None  # edges of every day, attributes for the relations after attr's columns

    @classmethod
    def empty(cls, n_days: int, n_codes: int, device: torch.device | str | None = None) -> DailyGraphs:
        """No daily edges (a dataset without graphs), so that other relations can be added."""
        none = torch.zeros(0, dtype=node_dtype(n_codes), device=device)
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
        order = torch.argsort(day, stable=True)
        day, src, dst, attr = day[order], src[order], dst[order], attr[order]
        bounds = torch.searchsorted(day, torch.arange(n_days + 1, device=day.device)).cpu().numpy()  # host-ok: load
        out = _Builder(len(day), attr.shape[1], n_days, n_codes, attr.device)
        for t0, t1 in _blocks(n_days, bounds):
            lo, hi = bounds[t0], bounds[t1]
            out.add(day[lo:hi], src[lo:hi], dst[lo:hi], attr[lo:hi])
        return out.graphs(relations)

    def edges(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Date index t -> edge_index (2, E_t) int64 with both directions of every edge, edge_weight (E_t,)."""
        lo, hi = int(self.start[t]), int(self.stop[t])
        return torch.stack([self.src[lo:hi], self.dst[lo:hi]]).long(), self.attr[lo:hi, self.relations.index("weight")]

    def batch(self, days: Sequence[int], graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The disjoint union of the days' graphs (node b * n_codes + code for the b-th day) with one self-loop per
        node: edge_index (2, E), edge_attr (E, A + 1), the last column flagging the loops. Per day its own edges,
        then the fixed relation's, then every loop. The loops are added here rather than by the conv, so no
        boolean mask syncs the device; `graph=False` keeps only them (the graph-free ablation: the same nodes and
        attributes, no neighbours). One copy into each output (no per-day padded pieces to concatenate)."""
        n, a, own = self.n_codes, len(self.relations), self.attr.shape[1]
        used = list(days) if graph else []
        sizes = [int(self.stop[t] - self.start[t]) for t in used]
        fixed = len(self.fixed.src) if self.fixed is not None else 0
        loops = len(days) * n
        total = sum(sizes) + fixed * len(used) + loops
        device = self.src.device
        index = torch.empty((2, total), dtype=torch.int64, device=device)
        attr = self.attr.new_zeros((total, a + 1))
        at = 0
        for b, t in enumerate(used):
            lo, hi = int(self.start[t]), int(self.stop[t])
            block = slice(at, at + sizes[b])
            index[0, block] = self.src[lo:hi]  # widened first: b * n may not fit the stored type
            index[1, block] = self.dst[lo:hi]
            index[:, block] += b * n
            attr[block, :own] = self.attr[lo:hi]
            at += sizes[b]
            if self.fixed is not None:
                block = slice(at, at + fixed)
                torch.add(self.fixed.src, b * n, out=index[0, block])
                torch.add(self.fixed.dst, b * n, out=index[1, block])
                attr[block, own:a] = self.fixed.attr
                at += fixed
        torch.arange(loops, out=index[0, at:])
        index[1, at:] = index[0, at:]
        attr[at:, a] = 1.0
        return index, attr

    def with_sector(self, sector: torch.Tensor, size: torch.Tensor, peers: int) -> DailyGraphs:
        """These edges plus the sector relation: on day t, an edge j -> i when i and j share a sector (same value of
        `sector`, (D, N), NaN where the code has no row) and j is among the `peers` largest (by `size`, NaN as
        the smallest) codes of that sector other than i."""
        if self.fixed is not None:
            raise ValueError("add the sector relation before a fixed relation")
        d, n = sector.shape
        out = _Builder(len(self.src) + _sector_bound(sector, peers), self.attr.shape[1] + 1, d, n, self.attr.device)
        for t0, t1 in _blocks(d, np.concatenate([[0], self.stop])):
            lo, hi = int(self.start[t0]), int(self.stop[t1 - 1])
            day = torch.repeat_interleave(torch.arange(t0, t1, device=self.src.device),
                                          torch.as_tensor(self.stop[t0:t1] - self.start[t0:t1], device=self.src.device))
            own = (day, self.src[lo:hi].long(), self.dst[lo:hi].long(),
                   torch.nn.functional.pad(self.attr[lo:hi], (0, 1)))
            out.add(*_with_sector_block(own, sector, size, peers, t0, t1))
        return out.graphs((*self.relations, "sector"))

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


def node_dtype(n_codes: int) -> torch.dtype:
    """The stored type of node indices: 2 bytes an index up to 32,767 codes (Japan lists ~4,000), else 4."""
    return torch.int16 if n_codes <= torch.iinfo(torch.int16).max else torch.int32


BLOCK_EDGES = 1 << 21  # edges per block of days while building (~2 M: ~100 MB of sort temporaries)
BLOCK_DAYS = 64  # and at most this many days (the sector relation's ~10 edges per code and day come on top)


def _blocks(n_days: int, bounds: np.ndarray, limit: int = BLOCK_EDGES) -> list[tuple[int, int]]:
    """[t0, t1) ranges of whole days, each with at most `limit` edges (or one day) and BLOCK_DAYS days: `bounds[t]`
    is the first edge of day t (D + 1 values, non-decreasing)."""
    out, t0 = [], 0
    while t0 < n_days:
        t1 = int(np.searchsorted(bounds, bounds[t0] + limit, side="right")) - 1
        t1 = min(max(t1, t0 + 1), n_days, t0 + BLOCK_DAYS)
        out.append((t0, t1))
        t0 = t1
    return out


class _Builder:
    """DailyGraphs built block after block of whole days (in date order) into arrays allocated once for at most
    `capacity` edges: each block's duplicates (date, src, dst) merged, attributes summed, sorted by (date, src,
    dst). At load time only: the steps sync the device freely."""

    def __init__(self, capacity: int, width: int, n_days: int, n_codes: int,
                 device: torch.device | str | None) -> None:
        self.src = torch.empty(capacity, dtype=node_dtype(n_codes), device=device)
        self.dst = torch.empty(capacity, dtype=node_dtype(n_codes), device=device)
        self.attr = torch.zeros((capacity, width), dtype=torch.float32, device=device)
        self.counts = torch.zeros(n_days, dtype=torch.int64, device=device)
        self.n_codes, self.used, self.next_day = n_codes, 0, 0

    def add(self, day: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, attr: torch.Tensor) -> None:
        """Every edge of some whole days, all after the days added before."""
        if not len(day):
            return
        n = self.n_codes
        key = (day.long() * n + src) * n + dst
        unique, inverse = torch.unique(key, return_inverse=True)  # sorted: by day, then src, dst
        first = int(unique[0]) // (n * n)  # host-ok: a check per block, at load
        if first < self.next_day or self.used + len(unique) > len(self.src):
            raise ValueError("graph blocks must come in date order, within the capacity")
        out = slice(self.used, self.used + len(unique))
        self.attr[out].index_add_(0, inverse, attr.float())
        self.src[out] = unique // n % n
        self.dst[out] = unique % n
        day_of = unique // (n * n)
        self.counts += torch.bincount(day_of, minlength=len(self.counts))
        self.used += len(unique)
        self.next_day = int(day_of[-1]) + 1  # host-ok: as above

    def graphs(self, relations: tuple[str, ...]) -> DailyGraphs:
        stop = torch.cumsum(self.counts, 0).cpu().numpy()  # host-ok: D offsets, once
        start = stop - self.counts.cpu().numpy()  # host-ok: as above
        used = slice(0, self.used)
        return DailyGraphs(self.src[used], self.dst[used], self.attr[used], relations, start, stop, self.n_codes)


def _sector_bound(sector: torch.Tensor, peers: int) -> int:
    """At most `peers` sector edges into each code that has a sector on a day."""
    codes = int((torch.nan_to_num(sector.double(), nan=-1.0) >= 0).sum())  # host-ok: one count, at load
    return codes * peers


EdgeBlock = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # day, src, dst (int64), attr (E, A)


def _with_sector_block(own: EdgeBlock, sector: torch.Tensor, size: torch.Tensor, peers: int, t0: int,
                       t1: int) -> EdgeBlock:
    """The block's own edges (day, src, dst, attr with a 0 sector column) and its days' sector edges."""
    day, leader, member = sector_edges(sector[t0:t1], size[t0:t1], peers)
    ones = torch.zeros((len(day), own[3].shape[1]), device=own[3].device)
    ones[:, -1] = 1.0
    return (torch.cat([own[0], day + t0]), torch.cat([own[1], leader]), torch.cat([own[2], member]),
            torch.cat([own[3], ones]))


def sector_edges(sector: torch.Tensor, size: torch.Tensor, peers: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                                torch.Tensor]:
    """(day, leader, member) int64 of the sector relation on the rows (days) of `sector` and `size`, (T, N): each
    code with a sector hears from the `peers` largest other codes of its sector (NaN size: the smallest)."""
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
    return day[ok], leader[ok], member[ok]


def graph_dir(dataset: Path) -> Path:
    return dataset / "graphs"


def load_daily_graphs(backend: Backend, folder: Path, codes: np.ndarray, dates: np.ndarray,
                      device: torch.device | str | None = None,
                      sector: tuple[torch.Tensor, torch.Tensor, int] | None = None) -> DailyGraphs:
    """Read `folder` (edges/, codes.parquet, graphs.json) onto the backend's device, for a panel's axes; with
    `sector` ((D, N) sector codes, (D, N) sizes, peers), the sector relation too (`with_sector`), added block by
    block so that the correlation edges alone are never held beside the result.

    Date t uses the graph of date t, or with `every_n_days` > 1 the latest graph at or before it. The edge files
    are read one folder (year) at a time: its graphs serve a run of consecutive dates."""
    meta = json.loads((folder / "graphs.json").read_text())
    graph_codes = pd.read_parquet(folder / "codes.parquet")  # host-ok: the node table (N codes), once
    position = pd.Series(np.arange(len(codes)), index=pd.Index(codes))
    remap = position.reindex(graph_codes.sort_values("index")["Code"].to_numpy()).to_numpy()  # host-ok: node table
    lookup = torch.as_tensor(np.nan_to_num(remap, nan=-1).astype(np.int64), device=device)  # N ints, once
    groups = _edge_groups(folder / "edges")
    # the graphs' days and edge counts, from the Date column alone
    per_group = [torch.unique(to_torch(backend.days(backend.read_parquet(files, columns=["Date"])["Date"]), device),
                             return_counts=True) for files in groups]
    none = torch.zeros(0, dtype=torch.int64, device=lookup.device)
    graph_days = torch.cat([u for u, _ in per_group]) if per_group else none
    graph_rows = torch.cat([c for _, c in per_group]) if per_group else none
    group_end = np.cumsum([len(u) for u, _ in per_group])  # graph index where each group's graphs end
    if len(graph_days) and not bool((graph_days[1:] > graph_days[:-1]).all()):  # host-ok: one check at load
        raise DatasetError(f"{folder}: the edge folders' dates overlap or are out of order; rebuild the graphs")
    panel_days = torch.as_tensor(dates.astype("datetime64[D]").astype(np.int64), device=graph_days.device)
    pos = torch.searchsorted(graph_days, panel_days, right=True) - 1  # the latest graph at or before each date
    if int(meta["config"]["every_n_days"]) <= 1:  # every date has its own graph (or none)
        pos = torch.where(graph_days[pos.clamp(min=0)] == panel_days, pos, -1) if len(graph_days) else pos
    count = torch.where(pos >= 0, graph_rows[pos.clamp(min=0)] if len(graph_rows) else 0, 0)  # undirected, per date
    d, n = len(dates), len(codes)
    capacity = 2 * int(count.sum())  # host-ok: one count, at load
    capacity += _sector_bound(sector[0], sector[2]) if sector is not None else 0
    out = _Builder(capacity, 1 + (sector is not None), d, n, device)
    host_pos = pos.cpu().numpy()  # host-ok: D graph indices, once
    bounds = np.concatenate([[0], np.cumsum(2 * count.cpu().numpy())])  # host-ok: D counts, once
    group_of = np.searchsorted(group_end, host_pos, side="right")  # each date's group (any value where pos < 0)
    loaded: tuple[int, _GroupEdges] | None = None
    for t0, t1 in _blocks(d, bounds):
        used = np.flatnonzero(host_pos[t0:t1] >= 0)
        cut = [t0, t1]
        if len(used):  # a block's dates take their graphs from one group: cut it where the group changes
            change = np.flatnonzero(np.diff(group_of[t0:t1][used])) + 1
            cut = [t0, *(t0 + used[change]), t1]
        for a, b in itertools.pairwise(cut):
            has = np.flatnonzero(host_pos[a:b] >= 0)
            if len(has):
                g = int(group_of[a + has[0]])
                if loaded is None or loaded[0] != g:
                    loaded = None  # the previous year's edges go before the next are read
                    first = int(group_end[g - 1]) if g else 0
                    loaded = (g, _GroupEdges.read(backend, groups[g], lookup, graph_days[first: int(group_end[g])],
                                                  first, folder, device))
                day, src, dst, w = loaded[1].dates(torch.as_tensor(a + has, device=graph_days.device), pos)
                edges: EdgeBlock = (torch.cat([day, day]), torch.cat([src, dst]), torch.cat([dst, src]),
                                    torch.cat([w, w]).unsqueeze(1))
            else:
                none = torch.zeros(0, dtype=torch.int64, device=graph_days.device)
                edges = (none, none, none, torch.zeros((0, 1), device=graph_days.device))
            if sector is not None:
                edges = _with_sector_block((*edges[:3], torch.nn.functional.pad(edges[3], (0, 1))),
                                           sector[0], sector[1], sector[2], a, b)
            out.add(*edges)
    return out.graphs(("weight", "sector") if sector is not None else ("weight",))


def _edge_groups(edges: Path) -> list[list[str]]:
    """The edge files, grouped by folder (`year=YYYY`), in date order."""
    files = sorted(edges.rglob("*.parquet"))
    by_dir: dict[Path, list[str]] = {}
    for f in files:
        by_dir.setdefault(f.parent, []).append(str(f))
    return [by_dir[k] for k in sorted(by_dir)]


@dataclasses.dataclass
class _GroupEdges:
    """One folder's edges on the device, in panel code indices, grouped by graph."""

    src: torch.Tensor  # (R,) int64, rows sorted by graph
    dst: torch.Tensor
    weight: torch.Tensor  # (R,) float32
    first: torch.Tensor  # (G,) first row of each of the group's graphs
    rows: torch.Tensor  # (G,) rows of each
    offset: int  # the global index of the group's first graph

    @classmethod
    def read(cls, backend: Backend, files: list[str], lookup: torch.Tensor, graph_days: torch.Tensor, offset: int,
             folder: Path, device: torch.device | str | None) -> _GroupEdges:
        xp = backend.xp
        edges = backend.read_parquet(files, columns=["Date", "src", "dst", "weight"])
        src = lookup[to_torch(backend.to_array(edges["src"]).astype(xp.int64), device)]
        dst = lookup[to_torch(backend.to_array(edges["dst"]).astype(xp.int64), device)]
        if bool((src < 0).any() | (dst < 0).any()):  # host-ok: one check per folder at load
            raise DatasetError(f"{folder}: edges name codes the dataset does not have; rebuild the graphs "
                               "(`gpuetl graph`)")
        graph = torch.searchsorted(graph_days, to_torch(backend.days(edges["Date"]), device))
        weight = to_torch(backend.to_array(edges["weight"]).astype(xp.float32), device)
        del edges
        order = torch.argsort(graph, stable=True)
        rows = torch.bincount(graph, minlength=len(graph_days))
        return cls(src[order], dst[order], weight[order], torch.cumsum(rows, 0) - rows, rows, offset)

    def dates(self, t: torch.Tensor, pos: torch.Tensor) -> EdgeBlock:
        """(day, src, dst, weight) of dates `t` (each a copy of its graph's rows, one direction)."""
        g = pos[t] - self.offset
        count = self.rows[g]
        day = torch.repeat_interleave(t, count)
        within = torch.arange(len(day), device=day.device) - torch.repeat_interleave(torch.cumsum(count, 0) - count,
                                                                                     count)
        ids = torch.repeat_interleave(self.first[g], count) + within
        return day, self.src[ids], self.dst[ids], self.weight[ids]
