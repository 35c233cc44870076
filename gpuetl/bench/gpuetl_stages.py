"""The benchmark's stages on gpuetl itself, on whichever backend is active (GPU: cuDF/CuPy, CPU: pandas/NumPy).

Each stage calls the library code the pipelines use (the lake reader, Panel + split adjustment, the feature
registry, the as-of join kernel, the per-day statistics kernel, the graph builder, the union PageRank/Louvain
kernels); `canonical` turns its output into host float64 arrays in (Code, Date) order for the equality check.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from gpuetl import ops
from gpuetl.backend import Backend
from gpuetl.bench.inputs import Inputs
from gpuetl.bench.spec import BAR_COLUMNS, CLIP, FEATURES, GRAPH_OVERRIDES, PRICE_OPS
from gpuetl.dataset.registry import REGISTRY
from gpuetl.enrich.asof import asof_join, take
from gpuetl.enrich.context import joint_ids
from gpuetl.features.adjust import add_adjusted
from gpuetl.features.cross_section import cs_rank, cs_zscore, day_stats
from gpuetl.features.panel import Panel
from gpuetl.graphs.build import GraphOutput, build_graphs
from gpuetl.graphs.config import load_graph_config
from gpuetl.graphs.returns import returns_from_panel
from gpuetl.lake.manifest import Manifest
from gpuetl.lake.reader import read_raw

PRICES = ("O", "H", "L", "C", "Vo", "Va", "AdjFactor")
TRAIN_CONFIG = "configs/train/gat.yaml"


@dataclasses.dataclass
class Adjusted:
    panel: Panel
    codes: Any  # sorted codes; code index i of the panel is codes[i]


def _train_data(dataset: Path | None, backend: Backend) -> tuple[Any, Any]:
    """The training config and the dataset's training panel, as `gpuetl train` loads them."""
    from gpuetl.tensors import open_dataset  # torch: the train extra
    from gpuetl.tensors.panel import torch_device
    from gpuetl.train.config import load_gat_config
    from gpuetl.train.data import load_train_data

    if dataset is None:
        raise LookupError("no dataset: the train stage needs one (the bench builds it from the lake)")
    cfg = load_gat_config(TRAIN_CONFIG)
    ds = open_dataset(dataset, backend)
    gat = cfg.model.graph and bool(ds.graphs_metadata)
    return cfg, load_train_data(ds, cfg.data, torch_device(backend), cfg.model if gat else None)


class GpuetlStages:
    """Stage functions of one gpuetl backend: stage(state) -> output, state holding earlier stages' outputs."""

    def __init__(self, backend: Backend, inputs: Inputs, dataset: Path | None = None) -> None:
        self.backend = backend
        self.inputs = inputs
        self.manifest = Manifest.load(inputs.lake)
        st = inputs.statements  # host-ok: the input table moves to the backend once, untimed
        self.statements = backend.xdf.from_pandas(st) if backend.is_gpu else st
        self.graph_config = load_graph_config(overrides=GRAPH_OVERRIDES)
        self.dataset = dataset
        self.prepared: dict[str, Any] = {}  # inputs of the tensors/train stages, loaded once and untimed

    def read(self, state: dict[str, Any]) -> Any:
        return read_raw(self.backend, self.manifest, "bars_daily", BAR_COLUMNS)

    def adjust(self, state: dict[str, Any]) -> Adjusted:
        b = self.backend
        frame = state["read"]
        order, code_id, codes = b.code_date_order(frame)
        # the gather in one parallel pass per column on the CPU (take: the as-of join's kernel), as float64
        panel = Panel(b, code_id, b.days(frame["Date"])[order], {c: take(b.xp, b.to_array(frame[c]), order)
                                                                 for c in PRICES})
        add_adjusted(panel)
        return Adjusted(panel, codes)

    def features(self, state: dict[str, Any]) -> dict[str, Any]:
        panel = state["adjust"].panel
        return {col: x for op, params in PRICE_OPS
                for col, x in ops.run(REGISTRY.get(op, "feature"), panel, params).items()}

    def asof(self, state: dict[str, Any]) -> dict[str, Any]:
        b, xp = self.backend, self.backend.xp
        adjusted: Adjusted = state["adjust"]
        panel = adjusted.panel
        st = self.statements
        # the build's way (gpuetl.enrich.context): one factorisation of the panel's codes and the statements'
        # codes; a statement of a code the panel lacks gets a key no panel row has (asof_join sorts the right)
        head, tail = joint_ids(b, b.xdf.Series(adjusted.codes).reset_index(drop=True), st["Code"])
        eff = b.days(st["Eff"])
        idx = asof_join(b, head[panel.codes], panel.dates, tail, eff)
        close = panel["C"]
        out = {f"st_{name}": take(xp, b.to_array(st[col]), idx) / close
               for name, col in (("eps_yield", "EPS"), ("bps_yield", "BPS"), ("fwd_eps_yield", "FEPS"))}
        out["st_days_since"] = panel.dates - take(xp, eff, idx)  # NaN where no statement (take's NaN)
        return out

    def normalize(self, state: dict[str, Any]) -> dict[str, Any]:
        panel = state["adjust"].panel
        feats = state["features"]
        stats = day_stats(panel, [feats[f] for f in FEATURES], ranks=True)
        out = {}
        for name, s in zip(FEATURES, stats, strict=True):
            out[f"{name}_rank"] = cs_rank(panel, feats[name], s)
            out[f"{name}_z"] = cs_zscore(panel, feats[name], CLIP, s)
        return out

    def graphs(self, state: dict[str, Any]) -> GraphOutput:
        return build_graphs(self.backend, returns_from_panel(state["adjust"].panel), self.graph_config)

    def analytics(self, state: dict[str, Any]) -> dict[str, Any]:
        """PageRank and Louvain of every daily graph, on one disjoint union of the days' graphs."""
        b, xp = self.backend, self.backend.xp
        out: GraphOutput = state["graphs"]
        valid = xp.isfinite(out.features["graph_degree"])  # (T, N): the nodes of each day
        n_dates, n = valid.shape
        vertex = xp.cumsum(valid.reshape(-1), dtype=xp.int64) - 1
        nodes = xp.flatnonzero(valid.reshape(-1))
        offsets = xp.concatenate([xp.zeros(1, dtype=xp.int64), xp.cumsum(valid.sum(axis=1), dtype=xp.int64)])
        e = out.edges
        base = e["day"] * n
        src, dst = vertex[base + e["src"]], vertex[base + e["dst"]]
        cfg = self.graph_config
        pr = b.kernels.union_pagerank(src, dst, e["weight"], offsets, damping=cfg.pagerank.damping,
                                      tol=cfg.pagerank.tol, max_iter=cfg.pagerank.max_iter)
        labels = b.kernels.union_louvain(src, dst, e["weight"], offsets, resolution=cfg.louvain.resolution,
                                         threshold=cfg.louvain.threshold, max_level=cfg.louvain.max_level,
                                         seed=cfg.louvain.seed)
        result = {}
        for name, values in (("pagerank", pr), ("community", labels.astype(xp.float64))):
            dense = xp.full(n_dates * n, xp.nan)
            dense[nodes] = values
            result[name] = dense.reshape(n_dates, n)
        return result

    def tensors(self, state: dict[str, Any]) -> Any:
        """The dataset's normalised features, targets and row mask as dense torch tensors (DLPack hand-off)."""
        from gpuetl.tensors import open_dataset  # torch: the train extra
        from gpuetl.tensors.panel import torch_device

        if self.dataset is None:
            raise LookupError("no dataset: the tensors stage needs one (the bench builds it from the lake)")
        ds = open_dataset(self.dataset, self.backend)
        return ds.panel(ds.normalized, torch_device(self.backend))

    def train(self, state: dict[str, Any]) -> Any:
        """One epoch of the GAT (configs/train/gat.yaml) over every day of the dataset (its inputs, graphs and
        sector relation read once, untimed), as `gpuetl train` runs an epoch."""
        from gpuetl.train.loop import GATLearner, batches, train_epoch  # torch: the train extra
        from gpuetl.train.splits import Fold, Period

        if "train_data" not in self.prepared:
            self.prepared["train_data"] = _train_data(self.dataset, self.backend)
        cfg, data = self.prepared["train_data"]
        learner = GATLearner(cfg, data, seed=0)
        last = len(data.label_counts) - 1
        everything = Period(0, last)
        fold = data.fold(Fold(0, 0, everything, everything, everything))
        days = data.days(Period(cfg.model.window, last))  # those with two labelled codes, as a fold's
        return train_epoch(learner.model, learner.ema, learner.optimizer, learner.sampler(fold),
                           batches(days, cfg.optim.days_per_batch), cfg)

    # ----------------------------------------------------------------------------- for the equality check

    def canonical(self, stage: str, output: Any) -> dict[str, np.ndarray]:
        """Host float64 arrays: per (Code, Date) row in that order, or per (date, code) on the graphs' grid."""
        b = self.backend
        host = b.to_host  # host-ok: the check, never timed
        if stage == "read":
            frame = output.sort_values(["Code", "Date"])
            return {c: host(b.to_array(frame[c].astype("float64"))) for c in PRICES}
        if stage == "adjust":
            p = output.panel
            return {c: host(p[c]) for c in ("open", "high", "low", "close", "volume")}
        if stage == "graphs":
            e = output.edges
            graph = {f"edge_{k}": host(v).astype(np.float64) for k, v in e.items()}
            grid = np.array(output.features["graph_degree"].shape, dtype=np.float64)  # (dates, codes)
            return graph | {k: host(v).reshape(-1) for k, v in output.features.items()} | {"grid": grid}
        if stage == "analytics":
            return {k: host(v).reshape(-1) for k, v in output.items()}
        return {k: host(v) for k, v in output.items()}
