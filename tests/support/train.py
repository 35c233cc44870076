"""A tiny dataset folder written by hand in the layout `gpuetl build` + `gpuetl graph` write (data/year=YYYY,
metadata.json, graphs/), with a signal planted on the graph: a code's next-day label is the edge-weighted mean
of its neighbours' `ret_1d` today plus noise, and its own features say nothing about it. A model that uses the
edges can learn it; one without them cannot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpuetl.graphs.io import dataset_digest
from gpuetl.lake.outputs import write_marker

HORIZONS = (1, 2)
FEATURES = {"returns": ["ret_1d", "ret_5d"], "trend": ["sma5_gap"], "market": ["mkt_ret_1d"], "calendar": ["cal_dow"],
            "listing": ["lst_s33"], "statements": ["st_log_mcap"]}


def community_edges(codes: int, groups: int, rng: np.random.Generator) -> pd.DataFrame:
    """Every pair inside a community, weights in [0.3, 0.9] (src < dst, as gpuetl graph writes them)."""
    rows = [(i, j) for i in range(codes) for j in range(i + 1, codes) if i % groups == j % groups]
    src, dst = np.array(rows).T
    return pd.DataFrame({"src": src.astype(np.int32), "dst": dst.astype(np.int32),
                         "weight": rng.uniform(0.3, 0.9, len(src)).astype(np.float32)})


def write_tiny_dataset(root: Path, codes: int = 24, start: str = "2021-01-04", end: str = "2022-12-30",
                       seed: int = 0, late_codes: int = 2) -> Path:
    """Write the dataset to `root`; the last `late_codes` codes list 30 days after the start."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, end)
    names = [f"{1000 + i}0" for i in range(codes)]
    edges = community_edges(codes, 4, rng)
    w = np.zeros((codes, codes))
    w[edges["src"], edges["dst"]] = edges["weight"]
    w = w + w.T
    w /= w.sum(1, keepdims=True)
    d = len(dates)
    ret = rng.standard_normal((d, codes))
    present = np.ones((d, codes), dtype=bool)
    present[:30, codes - late_codes:] = False
    signal = np.nan_to_num(np.where(present, ret, np.nan)) @ w.T
    label = {1: 0.01 * (signal + 0.5 * rng.standard_normal((d, codes)))}  # return-sized
    label[2] = label[1] + 0.005 * rng.standard_normal((d, codes))
    market = rng.standard_normal(d)
    raw = {"ret_1d": ret, "ret_5d": rng.standard_normal((d, codes)), "sma5_gap": rng.standard_normal((d, codes)),
           "mkt_ret_1d": np.repeat(market[:, None], codes, 1),
           "cal_dow": np.repeat(dates.day_of_week.to_numpy()[:, None], codes, 1).astype(float),
           "lst_s33": np.repeat((np.arange(codes) % 4 * 1000 + 50)[None, :], d, 0).astype(float),  # the communities
           "st_log_mcap": np.repeat(rng.uniform(20, 25, codes)[None, :], d, 0)}
    t_idx, c_idx = np.nonzero(present)
    frame = pd.DataFrame({"Code": np.array(names)[c_idx], "Date": dates[t_idx].astype("datetime64[ms]")})
    for name, values in raw.items():
        v = values[t_idx, c_idx].astype(np.float32)
        frame[name] = v
        z = pd.Series(v).groupby(t_idx).transform(
            lambda s: (s - s.mean()) / s.std(ddof=0) if s.std(ddof=0) > 0 else 0 * s)
        frame[name + "_z"] = z.fillna(0.0).to_numpy(np.float32)
        frame[name + "_missing"] = np.float32(0.0)
    targets = []
    for k in HORIZONS:
        for family in ("target_next_ret", "target_ret"):
            col = f"{family}_{k}d"
            values = label[k][t_idx, c_idx] if family == "target_next_ret" else 0.01 * rng.standard_normal(len(t_idx))
            values = np.where(t_idx + k + 1 < d, values, np.nan)  # the horizon runs past the data: NaN
            frame[col] = values.astype(np.float32)
            targets.append(col)
    frame["year"] = frame["Date"].dt.year
    for year, part in frame.groupby("year"):
        folder = root / "data" / f"year={year}"
        folder.mkdir(parents=True)
        part.drop(columns="year").to_parquet(folder / "part-0.parquet", index=False)
    features = [f for group in FEATURES.values() for f in group]
    meta = {"name": "tiny", "rows": len(frame), "codes": codes, "dates": d, "feature_count": len(features),
            "features_by_group": FEATURES, "normalized": [c for f in features for c in (f + "_z", f + "_missing")],
            "targets": targets, "default_label": "target_next_ret_1d", "target_descriptions": {},
            "config": {"normalize": {"method": "zscore", "clip": 3.0, "suffix": "_z"}}}
    (root / "metadata.json").write_text(json.dumps(meta))
    graphs = root / "graphs"
    (graphs / "edges").mkdir(parents=True)
    pd.DataFrame({"index": np.arange(codes, dtype=np.int32), "Code": names}).to_parquet(graphs / "codes.parquet")
    daily = []
    for t, day in enumerate(dates):  # the same communities every day, among the codes listed that day
        e = edges[present[t, edges["src"]] & present[t, edges["dst"]]]
        daily.append(e.assign(Date=day))
    all_edges = pd.concat(daily, ignore_index=True)[["Date", "src", "dst", "weight"]]
    all_edges["Date"] = all_edges["Date"].astype("datetime64[ms]")
    for year, part in all_edges.groupby(all_edges["Date"].dt.year):
        (graphs / "edges" / f"year={year}").mkdir()
        part.to_parquet(graphs / "edges" / f"year={year}" / "part-0.parquet", index=False)
    (graphs / "graphs.json").write_text(json.dumps({"features": [], "config": {"every_n_days": 1},
                                                    "dataset_hash": dataset_digest(root)}))
    write_marker(root, "dataset")
    write_marker(graphs, "graphs")
    return root


# the train config overrides that make the tiny dataset's run take seconds
TINY_DATA = ["data.horizons=[1, 2]", "data.inputs.groups=[]", "data.min_history=5", "splits.test_years=1",
             "splits.min_train_days=40", "splits.valid_days=40", "splits.embargo_days=2", "run.threads=1"]
TINY_TRAIN = [*TINY_DATA, "model.window=5", "model.hidden=16", "model.heads=2", "model.gat_layers=1",
              "model.dropout=0.0", "optim.max_epochs=6", "optim.patience=6", "optim.days_per_batch=8",
              "optim.days_per_epoch=96", "optim.lr=3.0e-3", "optim.weight_decay=1.0e-3", "model.relation_means=false",
              "model.lead_lag=null"]
TINY_XGB = [*TINY_DATA, "xgb.n_estimators=60", "xgb.eval_every=10", "xgb.max_depth=3"]


@pytest.fixture(autouse=True)
def keep_torch_threads() -> Iterator[None]:
    """The runs set torch's thread count in this process (run.threads=1); give the next tests theirs back. A test
    module that trains imports it (autouse: it then wraps each of its tests)."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
