"""The enrichment inside the dataset build: metadata, the leakage rule by perturbation (every raw value
dated after t changed: prices, statements, flows, margin, short selling, listing, events; every feature
at or before t bit-identical), and GPU == CPU on the enriched dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpuetl.backend import Backend
from gpuetl.dataset.build import build_dataset
from gpuetl.dataset.config import load_dataset_config
from gpuetl.enrich import groups
from tests._testing import CPU, assert_backend_equal
from tests.support.lakes import SMALL, T, edge_tables, perturb, read_dataset, write_tables

CONFIG = "configs/dataset/default.yaml"
ALL_ON = [f"enrich.{g}=true" for g in groups()]


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return edge_tables()


def test_build_with_every_group(tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    write_tables(tmp_path / "lake", tables)
    cfg = load_dataset_config(CONFIG, [*SMALL, *ALL_ON, "start=2024-06-03"])
    res = build_dataset(CPU, cfg, tmp_path / "lake", tmp_path / "ds", progress=False)
    meta = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    enriched = [c for g in groups().values() for c in g.outputs({})]
    assert res.features[: len(enriched)] == enriched and meta["feature_count"] == 29 + len(enriched)
    assert meta["enrich"] == dict.fromkeys(groups(), "on")
    assert all(meta["features_by_group"][g] == list(groups()[g].outputs({})) for g in groups())
    assert {f"enrich:{g}" for g in groups()} <= set(meta["timings_s"])
    df = read_dataset(tmp_path / "ds")
    assert {f"{c}_z" for c in enriched} <= set(df.columns) and all(df[c].dtype == np.float32 for c in enriched)
    assert df["st_bps_yield"].notna().mean() > 0.8 and df["it_frgn_net"].notna().mean() > 0.9


def test_default_config_on_a_lake_with_every_dataset(tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    """`auto` switches every group on when the lake has its data: the default dataset's full feature set."""
    from gpuetl.dataset.registry import REGISTRY

    write_tables(tmp_path / "lake", tables)
    cfg = load_dataset_config(CONFIG, ["start=2023-10-02"])  # every day: this market is shorter than the warm-up
    res = build_dataset(CPU, cfg, tmp_path / "lake", tmp_path / "ds", progress=False)
    enriched = [c for g in groups().values() for c in g.outputs({})]
    declared = [c for op, p in cfg.feature_params() for c in REGISTRY.get(op).outputs(p)]
    assert res.features == enriched + declared and len(res.features) >= 150
    assert json.loads((tmp_path / "ds" / "metadata.json").read_text())["enrich"] == dict.fromkeys(groups(), "on")
    df = read_dataset(tmp_path / "ds")
    seen = df[enriched].notna().any()
    assert set(seen[~seen].index) == {"lst_bdays_listed"}  # no code of this small market lists inside the range


def test_leakage_perturbing_everything_after_t_changes_nothing_up_to_t(backend: Backend,
                                                                        tables: dict[str, pd.DataFrame],
                                                                        tmp_path: Path) -> None:
    cfg = load_dataset_config(CONFIG, [*SMALL, *ALL_ON])
    out = []
    for i, tabs in enumerate((tables, perturb(tables))):
        write_tables(tmp_path / f"lake{i}", tabs)
        build_dataset(backend, cfg, tmp_path / f"lake{i}", tmp_path / f"ds{i}", progress=False)
        out.append(read_dataset(tmp_path / f"ds{i}"))
    a, b = out
    early = a["Date"] <= T
    assert early.sum() > 1000 and (~early).sum() > 500
    cols = [c for c in a.columns if not c.startswith("target_")]
    pd.testing.assert_frame_equal(a.loc[early, cols], b.loc[early, cols], check_exact=True)
    # the perturbation did reach every group after t
    for group in ("statements", "investor_types", "margin_interest", "short_ratio", "listing", "dividends"):
        changed = [c for c in groups()[group].outputs({}) if not a.loc[~early, c].equals(b.loc[~early, c])]
        assert changed, group


@pytest.mark.gpu
def test_gpu_equals_cpu_on_the_enriched_dataset(cpu_backend: Backend, gpu_backend: Backend,
                                                tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    write_tables(tmp_path / "lake", tables)
    cfg = load_dataset_config(CONFIG, [*SMALL, *ALL_ON])
    build_dataset(cpu_backend, cfg, tmp_path / "lake", tmp_path / "cpu", progress=False)
    build_dataset(gpu_backend, cfg, tmp_path / "lake", tmp_path / "gpu", progress=False)
    cpu, gpu = read_dataset(tmp_path / "cpu"), read_dataset(tmp_path / "gpu")
    assert_backend_equal(gpu[["Code", "Date"]], cpu[["Code", "Date"]], tol="exact")
    enriched = [c for g in groups().values() for c in g.outputs({})]
    assert_backend_equal(gpu[enriched], cpu[enriched], tol="float32_step")  # as-of joins: the same rows taken
    normed = [c for c in cpu.columns if c.endswith(("_z", "_missing"))]
    assert_backend_equal(gpu[normed], cpu[normed], tol="float32_zscore")
