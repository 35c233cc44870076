"""The dataset build end to end on a small hand-made lake: outputs, metadata and the leakage rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest

from gpuetl.backend import Backend
from gpuetl.config import ConfigError
from gpuetl.dataset.build import BuildError, build_dataset
from gpuetl.dataset.config import load_dataset_config
from tests._testing import assert_backend_equal
from tests.support.lakes import CONFIG, SMALL, raw_market, read_dataset, write_lake


def test_build_writes_features_targets_and_metadata(backend: Backend, tmp_path: Path) -> None:
    bars, topix, master = raw_market()
    write_lake(tmp_path / "lake", bars, topix, master)
    cfg = load_dataset_config(CONFIG, [*SMALL, "start=2020-03-02"])
    res = build_dataset(backend, cfg, tmp_path / "lake", tmp_path / "ds", progress=False)
    table = pads.dataset(tmp_path / "ds" / "data", format="parquet", partitioning="hive").to_table().to_pandas()
    meta = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    assert len(table) == res.rows == meta["rows"] == (bars["Date"] >= "2020-03-02").sum()
    # returns 2 + sma 5 + ema 2 + rvol 1 + market 3 + beta 4 + sector 3 + calendar 6 + maturity 1 + range 2, and
    # the listing group (auto: the lake has the master and the calendar) 8
    assert meta["codes"] == 5 and meta["feature_count"] == len(res.features) == 29 + 8
    assert meta["enrich"]["listing"] == "on"
    assert set(res.features) <= set(table.columns) and set(res.targets) <= set(table.columns)
    assert all(table[c].dtype == np.float32 for c in res.features + res.targets)
    assert {f"{c}_z" for c in res.features} <= set(table.columns)
    assert meta["raw_manifest_hash"].startswith("sha256:") and meta["backend"] == backend.name
    assert set(meta["features_by_group"]) >= {"returns", "trend", "market", "sector", "calendar"}
    assert set(meta["timings_s"]) >= {"load", "panel", "targets", "normalize", "write"}
    # the last 5 rows of each code lack a 5-day horizon: kept, with NaN targets
    last5 = table.sort_values(["Code", "Date"]).groupby("Code").tail(5)
    assert last5["target_ret_5d"].isna().all()
    assert table["target_ret_1d"].notna().mean() > 0.8


def test_rows_spanning_years_are_normalised_per_day_and_written_per_year(backend: Backend, tmp_path: Path) -> None:
    bars, topix, master = raw_market(days=330)  # 2020-01-01 .. 2021-04
    write_lake(tmp_path / "lake", bars, topix, master)
    cfg = load_dataset_config(CONFIG, [*SMALL, "start=2020-01-01"])  # every day written: references see it all
    res = build_dataset(backend, cfg, tmp_path / "lake", tmp_path / "ds", progress=False)
    assert sorted(p.name for p in (tmp_path / "ds" / "data").iterdir()) == ["year=2020", "year=2021"]
    table = pads.dataset(tmp_path / "ds" / "data", format="parquet", partitioning="hive").to_table().to_pandas()
    assert len(table) == res.rows and (table["year"].astype(int) == table["Date"].dt.year).all()
    kinds = json.loads((tmp_path / "ds" / "metadata.json").read_text())["normalization"]["by_feature"]
    assert set(kinds.values()) == {"cross_section", "time_series", "raw"}
    for col in res.features:  # plain pandas references over the stored values, across both years
        x = table[col].astype(np.float64)
        if kinds[col] == "cross_section":  # the day's z-score
            g = x.groupby(table["Date"])
            want = ((x - g.transform("mean")) / g.transform("std")).clip(-3.0, 3.0)
        elif kinds[col] == "raw":
            want = x
        else:  # market-wide: the day's value against its trailing days
            day = x.groupby(table["Date"]).max()
            roll = day.rolling(250, min_periods=60)
            z = ((day - roll.mean()) / roll.std()).clip(-3.0, 3.0)
            want = table["Date"].map(z).where(x.notna())
            assert want.notna().any(), col
        ok = want.notna().to_numpy()
        assert_backend_equal(table[f"{col}_z"].to_numpy()[ok], want.to_numpy()[ok], tol="float32_inputs", err_msg=col)
        assert (table[f"{col}_z"].to_numpy()[~ok] == 0).all(), col
        # _missing means exactly "the raw value is NaN"
        assert_backend_equal(table[f"{col}_missing"].to_numpy(), x.isna().to_numpy().astype(np.float32), tol="exact",
                             check_dtype=True, err_msg=col)


def test_universe_selection(backend: Backend, tmp_path: Path) -> None:
    bars, topix, master = raw_market()
    write_lake(tmp_path / "lake", bars, topix, master)
    cfg = load_dataset_config(CONFIG, [*SMALL, "universe=prime"])
    build_dataset(backend, cfg, tmp_path / "lake", tmp_path / "ds", progress=False)
    codes = pads.dataset(tmp_path / "ds" / "data", format="parquet").to_table(columns=["Code"]).column(0)
    assert "13030" not in set(codes.to_pylist())


def test_leakage_perturbing_everything_after_t_changes_nothing_up_to_t(backend: Backend, tmp_path: Path) -> None:
    """DESIGN leakage rule: multiply every raw value dated after t (prices, volumes, factors, TOPIX) by random
    factors and change attributes; every non-target column at or before t is bit-identical."""
    bars, topix, master = raw_market(seed=7)
    t = pd.Timestamp("2020-04-15")
    rng = np.random.default_rng(3)
    later = bars["Date"] > t
    bars2 = bars.copy()
    for col in ("O", "H", "L", "C", "Vo", "Va"):
        bars2.loc[later, col] *= rng.uniform(0.5, 2.0, later.sum())
    bars2.loc[later, "AdjFactor"] = rng.choice([1.0, 0.5, 3.0], later.sum())
    topix2 = topix.copy()
    topix2.loc[topix2["Date"] > t, "C"] *= rng.uniform(0.8, 1.2, (topix2["Date"] > t).sum())
    master2 = master.copy()
    master2.loc[master2["Date"] > t, "S33"] = "9050"
    cfg = load_dataset_config(CONFIG, SMALL)
    out = []
    for i, (b, tp, m) in enumerate(((bars, topix, master), (bars2, topix2, master2))):
        write_lake(tmp_path / f"lake{i}", b, tp, m)
        build_dataset(backend, cfg, tmp_path / f"lake{i}", tmp_path / f"ds{i}", progress=False)
        df = pads.dataset(tmp_path / f"ds{i}" / "data", format="parquet").to_table().to_pandas()
        out.append(df.sort_values(["Code", "Date"]).reset_index(drop=True))
    a, b = out
    early = a["Date"] <= t
    cols = [c for c in a.columns if not c.startswith("target_")]
    pd.testing.assert_frame_equal(a.loc[early, cols], b.loc[early, cols], check_exact=True)
    assert not a.loc[~early, "ret_1d"].equals(b.loc[~early, "ret_1d"])  # the perturbation did change the future


def test_warm_up_is_the_longest_declared_lookback_and_is_not_written(backend: Backend, tmp_path: Path) -> None:
    """Without `start`, the first date written is the first with the warm-up before it; the warm-up is read
    from the ops' declared lookbacks (and the time-series z-score's min_periods), never a fixed number."""
    from gpuetl.dataset.build import warmup_days
    from gpuetl.dataset.registry import REGISTRY

    bars, topix, master = raw_market(days=200)
    write_lake(tmp_path / "lake", bars, topix, master)
    cfg = load_dataset_config(CONFIG, [*SMALL, "enrich.listing=false"])  # this master has no listing fields
    lookbacks = {op: REGISTRY.get(op).lookback(p) for op, p in cfg.feature_params()}
    assert lookbacks["sma"] == 25 and lookbacks["market"] == 10
    warm = warmup_days(cfg)
    assert warm == max(max(lookbacks.values()), lookbacks["market"] + cfg.normalize.ts_min_periods - 1) == 69
    res = build_dataset(backend, cfg, tmp_path / "lake", tmp_path / "ds", progress=False)
    meta = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    table = pads.dataset(tmp_path / "ds" / "data", format="parquet").to_table().to_pandas()
    dates = np.sort(bars["Date"].unique())
    assert table["Date"].min() == dates[warm] and meta["warmup_days"] == res.warmup_days == warm
    # every feature has a value on the first date written (its window is full there)
    first = table[table["Date"] == dates[warm]]
    assert all(first[c].notna().any() for c in res.features), [c for c in res.features if first[c].isna().all()]
    assert meta["coverage"]["sma20_gap"]["first_date"] == str(pd.Timestamp(dates[warm]).date())
    with pytest.raises(BuildError, match="warm-up"):  # a lake shorter than the warm-up says what to do
        build_dataset(backend, load_dataset_config(CONFIG), tmp_path / "lake", tmp_path / "ds2", progress=False)


def test_non_positive_prices_are_missing_and_counted(backend: Backend, tmp_path: Path) -> None:
    bars, topix, master = raw_market(days=120)
    bad = bars.index[[10, 50, 51]]
    bars.loc[bad[0], "C"] = 0.0
    bars.loc[bad[1], ["O", "H", "L", "C"]] = -5.0
    bars.loc[bad[2], "Vo"] = -1.0
    write_lake(tmp_path / "lake", bars, topix, master)
    res = build_dataset(backend, load_dataset_config(CONFIG, [*SMALL, "start=2020-01-01"]), tmp_path / "lake",
                        tmp_path / "ds", progress=False)
    assert res.invalid_prices == 3
    meta = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    assert meta["invalid_price_rows"] == 3
    table = pads.dataset(tmp_path / "ds" / "data", format="parquet").to_table().to_pandas()
    assert np.isfinite(table[res.features].to_numpy(dtype=float)[
        ~np.isnan(table[res.features].to_numpy(dtype=float))]).all()
    row = table[(table["Code"] == bars.loc[bad[0], "Code"]) & (table["Date"] == bars.loc[bad[0], "Date"])]
    assert row["ret_1d"].isna().all()


def test_a_lake_without_sector_codes_builds_the_default_dataset(backend: Backend, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """Issue 10.4: a master without S33 (any attribute can be missing from a lake): the sector features are
    missing, one INFO line says why, and the build goes on."""
    bars, topix, master = raw_market(seed=12)
    master["S33"] = None
    write_lake(tmp_path / "lake", bars, topix, master)
    cfg = load_dataset_config(CONFIG, ["start=2020-01-01"])
    with caplog.at_level("INFO"):
        res = build_dataset(backend, cfg, tmp_path / "lake", tmp_path / "ds", progress=False)
    assert sum("no code has a 33-sector" in r.getMessage() for r in caplog.records) == 1
    table = pads.dataset(tmp_path / "ds" / "data", format="parquet").to_table().to_pandas()
    sector_cols = [c for c in res.features if c.startswith(("sector_", "ret_vs_sector"))]
    assert len(sector_cols) == 9 and table[sector_cols].isna().all().all()
    assert table["ret_1d"].notna().mean() > 0.8  # the rest is built


def test_clear_errors(backend: Backend, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no 'bars_daily' data; fetch it first"):
        build_dataset(backend, load_dataset_config(CONFIG, SMALL), tmp_path / "empty", tmp_path / "ds",
                      progress=False)
    with pytest.raises(ConfigError, match=r"features\[0\] \(returns\): unknown parameter\(s\) horizon"):
        load_dataset_config(CONFIG, ["features=[{op: returns, params: {horizon: [1]}}]"])


def test_default_config_builds_every_feature(backend: Backend, tmp_path: Path) -> None:
    from gpuetl.dataset.registry import REGISTRY

    bars, topix, master = raw_market(seed=11)
    write_lake(tmp_path / "lake", bars, topix, master)
    # a 160-day lake (shorter than the warm-up) whose master has no listing fields
    cfg = load_dataset_config(CONFIG, ["start=2020-01-01", "enrich.listing=false"])
    res = build_dataset(backend, cfg, tmp_path / "lake", tmp_path / "ds", progress=False)
    declared = [c for op, p in cfg.feature_params() for c in REGISTRY.get(op).outputs(p)]
    assert res.features == declared and len(declared) >= 130
    df = pads.dataset(tmp_path / "ds" / "data", format="parquet").to_table().to_pandas()
    finite = df[declared].notna().mean()
    # 160-row codes: the 250-day windows never fill; everything shorter has values somewhere
    never = set(finite[finite == 0].index)
    assert never <= {"sma200_gap", "sma200_slope", "sma60_200_cross", "ema200_gap", "ema200_slope",
                     "dist_high_250d", "dist_low_250d", "days_since_last_high_250d", "days_since_last_low_250d",
                     "dist_high_250d_rank"}, never


@pytest.mark.gpu
def test_gpu_build_equals_cpu_build(cpu_backend: Backend, gpu_backend: Backend, tmp_path: Path) -> None:
    """Issue acceptance: every column of the GPU build matches the CPU build (keys and flags exactly, floats
    to the float32 tolerance: float64 work that differs in the last bits, stored as float32)."""
    bars, topix, master = raw_market(seed=13)
    write_lake(tmp_path / "lake", bars, topix, master)
    cfg = load_dataset_config(CONFIG, ["start=2020-01-01"])  # a 160-day lake: shorter than the warm-up
    frames = []
    for name, b in (("cpu", cpu_backend), ("gpu", gpu_backend)):
        build_dataset(b, cfg, tmp_path / "lake", tmp_path / name, progress=False)
        frames.append(read_dataset(tmp_path / name))
    cpu, gpu = frames
    assert_backend_equal(gpu[["Code", "Date"]], cpu[["Code", "Date"]], tol="exact")
    assert_backend_equal(gpu.filter(like="_missing"), cpu.filter(like="_missing"), tol="exact")
    assert_backend_equal(gpu, cpu, tol="float32")
