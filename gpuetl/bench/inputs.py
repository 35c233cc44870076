"""The benchmark's inputs: the synthetic lake of a size (written once, then reused) and what stages start from.

The lake is `gpuetl synth` output for LAKE_DATASETS, cached per size under `<paths.data>/bench/<size>/lake`
(git-ignored); a lake that already holds those datasets is reused as it is. Statements are prepared once,
untimed and the same for every backend: each filing's effective day by the leakage rule (disclosed before
that day's close, else the next business day; gpuetl.enrich.effective), one filing per (Code, day), the last.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from gpuetl import backend
from gpuetl.backend import Backend
from gpuetl.bench.spec import GRAPH_OVERRIDES, LAKE_DATASETS, STATEMENT_COLUMNS, Size
from gpuetl.config import load_settings
from gpuetl.dataset.build import build_dataset
from gpuetl.dataset.config import load_dataset_config
from gpuetl.dataset.plan import warmup_days
from gpuetl.dates import NEVER, BusinessCalendar, day_numbers
from gpuetl.enrich.effective import time_seconds
from gpuetl.graphs.config import load_graph_config
from gpuetl.graphs.dataset import graph_dataset
from gpuetl.lake.manifest import Manifest
from gpuetl.lake.reader import read_raw
from gpuetl.synth import MarketConfig, build_market
from gpuetl.synth.lake import write_lake


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What every backend gets: the lake, its bar files, and the prepared statements (host pandas)."""

    lake: Path
    bar_files: list[str]
    statements: pd.DataFrame  # Code (str), Eff (datetime64[ms]), EPS, BPS, FEPS; sorted by (Code, Eff)


def lake_dir(data: str | Path, size: Size) -> Path:
    return Path(data) / "bench" / size.name / "lake"


def ensure_lake(root: Path, size: Size, progress: bool = False) -> bool:
    """Write the size's synthetic lake unless `root` already holds LAKE_DATASETS; True when it wrote."""
    if set(LAKE_DATASETS) <= set(Manifest.load(root).datasets()):
        return False

    market = build_market(MarketConfig(codes=size.codes, start=size.start, end=size.end, seed=size.seed))
    write_lake(market, root, list(LAKE_DATASETS), chunk_days=366, progress=progress)
    return True


def load_inputs(cpu: Backend, root: Path) -> Inputs:
    """The bar files (as the manifest lists them) and the statements, prepared on the CPU backend."""
    manifest = Manifest.load(root)
    files = [str(manifest.root / f) for f in manifest.files("bars_daily")]
    return Inputs(root, files, statements(cpu, manifest))


def bar_rows(root: Path) -> int:
    """The lake's daily bar rows: the unit of every stage's rows per second."""
    return int(sum(u.rows for u in Manifest.load(root).units("bars_daily").values()))


def statements(cpu: Backend, manifest: Manifest) -> pd.DataFrame:
    raw = read_raw(cpu, manifest, "fins_summary", ["DiscDate", "DiscTime", "DiscNo", "Code", *STATEMENT_COLUMNS])
    raw = raw.sort_values(["DiscDate", "DiscTime", "DiscNo", "Code"], na_position="last").reset_index(drop=True)
    calendar = BusinessCalendar.from_frame(cpu, read_raw(cpu, manifest, "calendar", ["Date", "HolDiv"]))
    disc = np.asarray(day_numbers(cpu, raw["DiscDate"]))
    known = ~np.isnan(disc)
    day = np.where(known, disc, 0).astype(np.int64)
    eff = np.where(known, calendar.effective_at(day, time_seconds(cpu, raw["DiscTime"])), NEVER)
    out = pd.DataFrame({"Code": raw["Code"].astype(str), "Eff": eff, **{c: raw[c].astype("float64")
                                                                       for c in STATEMENT_COLUMNS}})
    out = out[out["Eff"] < NEVER]
    out = out.drop_duplicates(["Code", "Eff"], keep="last").sort_values(["Code", "Eff"]).reset_index(drop=True)
    out["Eff"] = out["Eff"].to_numpy().astype("datetime64[D]").astype("datetime64[ms]")  # host-ok: a pandas frame
    return out


def ensure_dataset(lake: Path, out: Path) -> Path:
    """The default dataset of `lake` at `out` and its graphs (the graphs stage's config: PageRank and Louvain
    off), built on the CPU unless they are there already: the train stage runs the GAT over those graphs."""
    cpu = backend.create(load_settings(overrides=["backend=cpu"]))
    if not (out / "metadata.json").exists():
        cfg = load_dataset_config("configs/dataset/default.yaml")
        # from the first date with a full warm-up, or from the lake's first date when it is shorter than that
        bars = read_raw(cpu, Manifest.load(lake), "bars_daily", ["Date"])
        dates = np.unique(bars["Date"].to_numpy())  # host-ok: the CPU backend's pandas frame
        start = dates[min(warmup_days(cfg), len(dates) - 1)] if len(dates) > warmup_days(cfg) else dates[0]
        cfg = load_dataset_config("configs/dataset/default.yaml", [f"start={str(start)[:10]}"])
        build_dataset(cpu, cfg, lake, out, progress=False)
    if not (out / "graphs" / "graphs.json").exists():
        graph_dataset(cpu, load_graph_config(overrides=GRAPH_OVERRIDES), out, lake, progress=False)
    return out
