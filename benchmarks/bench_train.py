"""GAT training throughput (stock-days per second) and peak memory, on either backend.

The timed part is one epoch of `gpuetl.train.loop.train_epoch` with the default model and optimiser
(configs/train/gat.yaml: window 60, transformer encoder, the GATv2 layers, one head per horizon, relation
means, the sector and lead-lag relations) over `days` training days of `codes` codes with `features` inputs
(17: the default `[returns, sector]` groups; 200: about every feature of the default dataset), 4 days per
step: day batches sliced from the panel, forward, loss, backward, clipping, AdamW, EMA. The panel (random
values, 2% missing) is made by the backend and handed to torch by DLPack, as a dataset's would be; each
day's graph links every code to 8 random others of its sector (both directions) beside the sector relation,
and the lead-lag relation gives every code `peers` fixed leaders of its sector. stock-days/s = codes * days /
the median epoch time."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmarks.harness import main
from gpuetl.backend import Backend
from gpuetl.stages import peak_host_bytes
from gpuetl.tensors.graphs import DailyGraphs
from gpuetl.tensors.panel import to_torch, torch_device
from gpuetl.tensors.sampler import DaySampler
from gpuetl.train.config import load_gat_config
from gpuetl.train.ema import EMA
from gpuetl.train.loop import batches, train_epoch
from gpuetl.train.model import GATRanker

SIZES = {
    "200x64d": {"codes": 200, "days": 64, "features": 17},  # smoke
    "200x250d": {"codes": 200, "days": 250, "features": 17},  # the demo market's size, one year a epoch
    "200x250d-wide": {"codes": 200, "days": 250, "features": 200},  # every feature group as inputs
    "2000x250d": {"codes": 2000, "days": 250, "features": 17},
    "4000x250d": {"codes": 4000, "days": 250, "features": 17},  # the whole market (GPU)
}
SECTORS = 33


def setup(backend: Backend, codes: int, days: int, features: int) -> dict[str, Any]:
    cfg = load_gat_config("configs/train/gat.yaml")
    window, horizons = cfg.model.window, len(cfg.data.horizons)
    d = days + window  # a full window before the first trained day
    xp, device = backend.xp, torch_device(backend)
    rng = xp.random.default_rng(0)
    values = rng.standard_normal((d, codes, features), dtype=xp.float32)
    values[rng.random((d, codes, features)) < 0.02] = xp.nan
    targets = (0.02 * rng.standard_normal((d, codes, horizons))).astype(xp.float32)
    x, y = to_torch(values), to_torch(targets)
    host = np.random.default_rng(1)
    sector = host.integers(0, SECTORS, codes)
    src = np.repeat(np.arange(codes), 8)
    members = [np.flatnonzero(sector == s) for s in range(SECTORS)]
    dst = np.array([host.choice(members[sector[i]]) for i in src])
    keep = src != dst
    day = np.repeat(np.arange(d), keep.sum())
    s, t = np.tile(src[keep], d), np.tile(dst[keep], d)
    w = host.uniform(0.25, 0.9, len(s)).astype(np.float32)
    as_t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731  (setup only)
    graphs = DailyGraphs.from_edges(as_t(np.concatenate([day, day])), as_t(np.concatenate([s, t])),
                                    as_t(np.concatenate([t, s])), as_t(np.concatenate([w, w]))[:, None],
                                    ("weight",), d, codes)
    graphs = graphs.with_sector(as_t(np.tile(sector, (d, 1)).astype(np.float32)),
                                as_t(host.uniform(20, 25, (d, codes)).astype(np.float32)), cfg.model.sector.peers)
    if cfg.model.lead_lag is not None:  # fixed leaders of the code's sector, t-statistics as the attribute
        peers = cfg.model.lead_lag.peers
        followers = np.repeat(np.arange(codes), peers)
        leaders = np.array([host.choice(members[sector[i]]) for i in followers])
        keep = leaders != followers
        graphs = graphs.with_fixed(as_t(leaders[keep]), as_t(followers[keep]),
                                   as_t(host.uniform(2, 6, keep.sum()).astype(np.float32)), "lead_lag")
    sampler = DaySampler(x, torch.ones((d, codes), dtype=torch.bool, device=device), y, window, graphs=graphs)
    m = cfg.model
    torch.manual_seed(0)
    model = GATRanker(features, 0, m.hidden, horizons, window, m.encoder, m.encoder_layers, m.gat_layers, m.heads,
                      sampler.edge_dim, m.dropout, m.relation_means).to(device)
    inputs = {"cfg": cfg, "model": model, "ema": EMA(model, cfg.optim.ema_decay), "sampler": sampler,
              "optimizer": torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr,
                                             weight_decay=cfg.optim.weight_decay),
              "batches": batches(list(range(window, d)), cfg.optim.days_per_batch, np.random.default_rng(2)),
              "stock_days": codes * days}
    return inputs


def run(backend: Backend, inputs: dict[str, Any]) -> None:
    loss = train_epoch(inputs["model"], inputs["ema"], inputs["optimizer"], inputs["sampler"], inputs["batches"],
                       inputs["cfg"])
    if not torch.isfinite(loss):
        raise RuntimeError("the benchmark's loss is not finite")


def report(backend: Backend, inputs: dict[str, Any], stats: dict[str, float]) -> dict[str, Any]:
    pool = backend.memory_stats()  # the RMM pool torch allocates from on the GPU backend
    return {"stock_days_per_s": round(inputs["stock_days"] / stats["median_s"], 1),
            "peak_host_gib": round(peak_host_bytes() / 2**30, 2),
            "peak_device_gib": round(pool["peak_bytes"] / 2**30, 2) if pool else None}


if __name__ == "__main__":
    main("train", SIZES, setup, run, smoke_size="200x64d", report=report)
