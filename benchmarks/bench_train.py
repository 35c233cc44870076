"""GAT training throughput (stock-days per second) and peak memory, on either backend.

The timed part is one epoch of `gpuetl.train.loop.train_epoch` with the default model and optimiser
(configs/train/gat.yaml: window 60, transformer encoder, the GATv2 layers, one head per horizon, relation
means, the sector and lead-lag relations) over `days` training days of `codes` codes with `features` inputs
(17: the default `[returns, sector]` groups; 200: about every feature of the default dataset), 4 days per
step: day batches sliced from the panel, forward, loss, backward, clipping, AdamW, EMA. The panel (random
values, 2% missing) is made by the backend and handed to torch by DLPack, as a dataset's would be; each
day's graph links every code to 8 random others of its sector (both directions) beside the sector relation,
and the lead-lag relation gives every code `peers` fixed leaders of its sector. stock-days/s = codes * days /
the median epoch time.

The `medium` sizes train on the real medium dataset of `gpuetl bench --size medium` (2,000 codes x 5 years,
its correlation graphs; lake and dataset built once into the bench's cache, untimed) as its `train` stage
does: one epoch over every day with a label, loaded by `load_train_data` in `setup` (its seconds reported as
load_s; the bench's stage times the load inside its first run). `medium` is the model of commit e1e39d1 (the
2026-12-01 figure's: hidden 8, the returns and sector inputs, one horizon; E1E39D1 below), `medium-default`
today's configs/train/gat.yaml; `-40`: the epoch's first 40 steps only. stock-days/s = the epoch's (code,
day) rows with a label / the median epoch time; peak_host_gib is the process's high-water mark (load and
epochs included): run one size per process for a size's own peak. Threads: torch's default (all cores);
OMP_NUM_THREADS=1 for one.
"""

from __future__ import annotations

import time
from pathlib import Path
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

SIZES: dict[str, dict[str, Any]] = {
    "200x64d": {"codes": 200, "days": 64, "features": 17},  # smoke
    "200x250d": {"codes": 200, "days": 250, "features": 17},  # the demo market's size, one year a epoch
    "200x250d-wide": {"codes": 200, "days": 250, "features": 200},  # every feature group as inputs
    "2000x250d": {"codes": 2000, "days": 250, "features": 17},
    "4000x250d": {"codes": 4000, "days": 250, "features": 17},  # the whole market (GPU)
    "medium": {"dataset": "medium", "variant": "e1e39d1"},  # the real medium dataset, the 2026-12-01 model
    "medium-default": {"dataset": "medium", "variant": "default"},  # ... today's configs/train/gat.yaml
    "medium-40": {"dataset": "medium", "variant": "e1e39d1", "steps": 40},  # the epoch's first 40 steps only
    "medium-default-40": {"dataset": "medium", "variant": "default", "steps": 40},
}
# configs/train/gat.yaml as of commit e1e39d1 (the model of the 2026-12-01 medium bench), as overrides of today's
E1E39D1 = ["model.hidden=8", "data.inputs.groups=[returns, sector]", "data.horizons=[1]", "model.dropout=0.1",
           "optim.weight_decay=0.01", "model.lead_lag.within=lst_s33"]
SECTORS = 33


def setup(backend: Backend, codes: int = 0, days: int = 0, features: int = 0, dataset: str = "",
          variant: str = "default", steps: int = 0) -> dict[str, Any]:
    if dataset:
        return setup_dataset(backend, dataset, variant, steps)
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
    assert cfg.model.sector is not None  # the default config's
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


def setup_dataset(backend: Backend, size: str, variant: str, limit: int = 0) -> dict[str, Any]:
    """The bench's `size` dataset (built once, untimed, where `gpuetl bench` caches it) loaded as the train stage
    loads it, and a learner over every day with a label from the window's end on (gpuetl/bench/gpuetl_stages.py);
    `limit`: only the epoch's first `limit` day batches (a quick comparison of the slow code)."""
    from gpuetl.bench.inputs import ensure_dataset, ensure_lake, lake_dir
    from gpuetl.bench.spec import SIZES as BENCH_SIZES
    from gpuetl.config import load_settings
    from gpuetl.tensors import open_dataset
    from gpuetl.train.data import load_train_data
    from gpuetl.train.loop import GATLearner
    from gpuetl.train.splits import Fold, Period

    lake = lake_dir(load_settings().paths.data, BENCH_SIZES[size])
    ensure_lake(lake, BENCH_SIZES[size])
    path = ensure_dataset(lake, lake.parent / "dataset")
    cfg = load_gat_config("configs/train/gat.yaml", E1E39D1 if variant == "e1e39d1" else [])
    t0 = time.perf_counter()
    ds = open_dataset(path, backend)
    data = load_train_data(ds, cfg.data, torch_device(backend), cfg.model if ds.graphs_metadata else None)
    load_s = time.perf_counter() - t0
    learner = GATLearner(cfg, data, seed=0)
    last = len(data.label_counts) - 1
    everything = Period(0, last)
    day_batches = batches(data.days(Period(cfg.model.window, last)), cfg.optim.days_per_batch)
    day_batches = day_batches[:limit] if limit else day_batches
    days = [t for b in day_batches for t in b]
    return {"cfg": cfg, "model": learner.model, "ema": learner.ema, "optimizer": learner.optimizer,
            "sampler": learner.sampler(data.fold(Fold(0, 0, everything, everything, everything))),
            "batches": day_batches,
            "stock_days": int(data.label_counts[days].sum()), "load_s": round(load_s, 1),
            "inputs": len(data.inputs), "dataset": str(Path(path))}


def run(backend: Backend, inputs: dict[str, Any]) -> None:
    loss = train_epoch(inputs["model"], inputs["ema"], inputs["optimizer"], inputs["sampler"], inputs["batches"],
                       inputs["cfg"])
    if not torch.isfinite(loss):
        raise RuntimeError("the benchmark's loss is not finite")


def report(backend: Backend, inputs: dict[str, Any], stats: dict[str, float]) -> dict[str, Any]:
    pool = backend.memory_stats()  # the RMM pool torch allocates from on the GPU backend
    extra: dict[str, Any] = {k: inputs[k] for k in ("load_s", "inputs", "dataset") if k in inputs}
    return {"stock_days_per_s": round(inputs["stock_days"] / stats["median_s"], 1),
            "stock_days": inputs["stock_days"], "threads": torch.get_num_threads(),
            "peak_host_gib": round(peak_host_bytes() / 2**30, 2),
            "peak_device_gib": round(pool["peak_bytes"] / 2**30, 2) if pool else None, **extra}


if __name__ == "__main__":
    main("train", SIZES, setup, run, smoke_size="200x64d", report=report)
