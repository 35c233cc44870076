"""The leakage contract (DESIGN "Leakage rules"), generic over the whole default dataset and its graphs, on a
synthetic market with every dataset and rows placed at the edges of T's close:

- prefix invariance: a build that ends at T and one that ends 60 business days later agree bit for bit on
  every non-target value dated at or before T (what a row says cannot depend on rows that do not exist yet:
  calendars, normalisations, warm-ups, graphs);
- perturbation: every raw value published after T's close is changed (prices, volumes, split factors,
  TOPIX, statements, flows, margin, short selling, attributes, events); nothing dated at or before T moves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest

from gpuetl.backend import Backend
from gpuetl.commands import main
from gpuetl.dataset.build import build_dataset
from gpuetl.dataset.config import load_dataset_config
from gpuetl.enrich import groups
from tests.support.lakes import CONFIG, T, edge_tables, perturb, read_dataset, write_tables


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    # a year of warm-up (250-day windows) before the first date written, then ~5 months to T, ~5 after it
    return edge_tables(start="2023-06-01", end="2025-03-31", codes=12, seed=5)


def business_days_after(tables: dict[str, pd.DataFrame], day: pd.Timestamp, n: int) -> pd.Timestamp:
    cal = tables["calendar"]
    open_days = np.sort(pd.to_datetime(cal.loc[cal["HolDiv"].isin(["1", "2"]), "Date"]).to_numpy())
    return pd.Timestamp(open_days[np.searchsorted(open_days, day.to_datetime64(), side="right") + n - 1])


def build(backend: Backend, tables: dict[str, pd.DataFrame], root: Path, *overrides: str) -> dict[str, pd.DataFrame]:
    """Lake -> default dataset -> its graphs (the commands' own code); frames keyed by Code names, not indices."""
    write_tables(root / "lake", tables)
    build_dataset(backend, load_dataset_config(CONFIG, list(overrides)), root / "lake", root / "ds", progress=False)
    assert main(["graph", "--backend", backend.name, "--dataset", str(root / "ds"), "--lake", str(root / "lake"),
                 "--no-progress"]) == 0
    graphs = root / "ds" / "graphs"
    codes = pd.read_parquet(graphs / "codes.parquet").set_index("index")["Code"]
    edges = pads.dataset(graphs / "edges", format="parquet").to_table().to_pandas()
    edges = pd.DataFrame({"Date": edges["Date"], "src": edges["src"].map(codes), "dst": edges["dst"].map(codes),
                          "weight": edges["weight"]})
    feats = pads.dataset(graphs / "features", format="parquet").to_table().to_pandas().drop(
        columns="year", errors="ignore")
    return {"data": read_dataset(root / "ds"),
            "edges": edges.sort_values(["Date", "src", "dst"]).reset_index(drop=True),
            "features": feats.sort_values(["Code", "Date"]).reset_index(drop=True)}


def assert_same_up_to(t: pd.Timestamp, a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for name in ("data", "edges", "features"):
        x, y = a[name], b[name]
        cols = [c for c in x.columns if not c.startswith("target_")]
        assert list(x.columns) == list(y.columns), name
        early_x, early_y = x[x["Date"] <= t][cols], y[y["Date"] <= t][cols]
        assert len(early_x) > 0, name
        pd.testing.assert_frame_equal(early_x.reset_index(drop=True), early_y.reset_index(drop=True),
                                      check_exact=True, obj=name)


def test_prefix_invariance(backend: Backend, tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    later = business_days_after(tables, T, 60)
    short = build(backend, tables, tmp_path / "to_t", f"end={T.date()}")
    long = build(backend, tables, tmp_path / "to_later", f"end={later.date()}")
    assert short["data"]["Date"].max() == T and long["data"]["Date"].max() == later
    assert (short["data"]["Date"] <= T).sum() > 1000 and (short["edges"]["Date"] <= T).sum() > 100
    assert_same_up_to(T, short, long)


def test_perturbing_everything_after_t(backend: Backend, tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    a = build(backend, tables, tmp_path / "base")
    b = build(backend, perturb(tables), tmp_path / "perturbed")
    assert_same_up_to(T, a, b)
    # the perturbation did reach the future: prices, every group, the graphs
    late_a, late_b = a["data"][a["data"]["Date"] > T], b["data"][b["data"]["Date"] > T]
    assert len(late_a) > 500
    for group in ("statements", "investor_types", "margin_interest", "short_ratio", "listing", "dividends"):
        assert any(not late_a[c].equals(late_b[c]) for c in groups()[group].outputs({})), group
    assert not late_a["ret_1d"].equals(late_b["ret_1d"])
    fa, fb = (f[f["Date"] > T]["graph_peer_ret_1d"] for f in (a["features"], b["features"]))
    assert not fa.equals(fb)
