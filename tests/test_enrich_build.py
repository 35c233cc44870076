"""The enrichment inside the dataset build: metadata, the leakage rule by perturbation (every raw value
dated after t changed: prices, statements, flows, margin, short selling, listing, events; every feature
at or before t bit-identical), and GPU == CPU on the enriched dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest

from gpuetl.backend import Backend
from gpuetl.dataset.build import build_dataset
from gpuetl.dataset.config import load_dataset_config
from gpuetl.enrich import GROUPS
from gpuetl.lake.canonical import SNAPSHOT_COLUMN
from tests.test_dataset_build import SMALL
from tests.test_enrich_features import CPU, Bdays, days, synthetic_tables, write_tables

CONFIG = "configs/dataset/default.yaml"
ALL_ON = [f"enrich.{g}=true" for g in GROUPS]
T = pd.Timestamp("2024-11-05")  # the first 15:30 close


def read(out: Path) -> pd.DataFrame:
    df = pads.dataset(out / "data", format="parquet", partitioning="hive").to_table().to_pandas()
    return df.sort_values(["Code", "Date"]).reset_index(drop=True)


def perturb(tables: dict[str, pd.DataFrame], seed: int = 3) -> dict[str, pd.DataFrame]:
    """Every raw value published after T's close changed (by independent rules: each dataset's own dates,
    the close at 15:30 on T, margin interest published two business days after its date)."""
    rng = np.random.default_rng(seed)
    out = {k: v.copy() for k, v in tables.items()}
    cal = Bdays(tables["calendar"])
    t = int(days([T])[0])

    def scale(name: str, rows: pd.Series, cols: list[str]) -> None:
        df = out[name]
        assert rows.any(), name
        for c in cols:
            df.loc[rows, c] = df.loc[rows, c] * rng.uniform(0.5, 2.0, int(rows.sum()))

    bars = out["bars_daily"]
    later = bars["Date"] > T
    scale("bars_daily", later, ["O", "H", "L", "C", "Vo", "Va"])
    bars.loc[later, "AdjFactor"] = rng.choice([1.0, 0.5, 3.0], int(later.sum()))
    scale("topix", out["topix"]["Date"] > T, ["C"])
    master = out["master"]
    master.loc[master["Date"] > T, ["S33", "S17", "ScaleCat", "Mrgn", "Mkt"]] = ["9050", "10", "-", "3", "0113"]
    fins = out["fins_summary"]
    after_close = (fins["DiscDate"] > T) | ((fins["DiscDate"] == T) & (fins["DiscTime"] >= "15:30:00"))
    assert ((fins["DiscDate"] == T) & (fins["DiscTime"] == "15:30:00")).any()
    scale("fins_summary", after_close, [c for c in fins.columns if fins[c].dtype == float])
    it = out["investor_types"]
    scale("investor_types", it["PubDate"] >= T, [c for c in it.columns if it[c].dtype == float])
    mi = out["margin_interest"]
    published = pd.Series([cal.after(d, 3) > t for d in days(mi["Date"])], index=mi.index)
    scale("margin_interest", published, ["ShrtVol", "LongVol", "ShrtStdVol", "LongStdVol", "ShrtNegVol", "LongNegVol"])
    ma = out["margin_alert"]
    scale("margin_alert", ma["PubDate"] >= T, ["ShrtOut", "LongOut", "ShrtOutRatio", "LongOutRatio", "SLRatio"])
    ma.loc[ma["PubDate"] >= T, "PubReason"] = '{"Restricted":"1","RestrictedByJSF":"1"}'
    scale("short_ratio", out["short_ratio"]["Date"] >= T, ["SellExShortVa", "ShrtWithResVa", "ShrtNoResVa"])
    dv = out["dividend"]
    notice = (dv["PubDate"] > T) | ((dv["PubDate"] == T) & (dv["PubTime"] >= "15:30"))
    scale("dividend", notice, ["DivRate"])
    dv.loc[notice, "CommSpecCode"] = "2"
    ec = out["earnings_calendar"]
    assert (ec[SNAPSHOT_COLUMN] >= T).all()  # a snapshot taken on T is effective the next business day
    ec["Date"] = ec["Date"] + pd.Timedelta(days=3)
    return out


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """The synthetic market plus rows placed right at T's edges, so that a rule off by one session shows:
    filings on T at 15:29 (in T) and 15:30 (after T's close) for a newer period, an investor-type
    correction published on T, margin interest dated two business days before T (published on T after
    the close), a dividend notice at 15:30 on T for an ex-date two days later, an earnings-calendar
    snapshot taken on T."""
    tabs = synthetic_tables(codes=10, start="2024-01-04", end="2025-03-31", seed=11)
    fins = tabs["fins_summary"]
    fs = fins[fins["DocType"].str.contains("FinancialStatements") & (fins["DiscDate"] < T - pd.Timedelta(days=20))]
    extra = fs.groupby("Code").tail(1).iloc[:2].copy()
    extra["DiscDate"], extra["DiscTime"] = T, ["15:29:00", "15:30:00"]
    extra["CurPerEn"] = extra["CurPerEn"] + pd.offsets.MonthEnd(2)
    extra["DiscNo"] = extra["DiscNo"] + "7"
    tabs["fins_summary"] = pd.concat([fins, extra], ignore_index=True)
    it = tabs["investor_types"]
    fix = it[it["EnDate"] == it.loc[it["PubDate"] < T, "EnDate"].max()].copy()
    fix["PubDate"] = T
    tabs["investor_types"] = pd.concat([it, fix], ignore_index=True)
    mi = tabs["margin_interest"]
    thu = mi[mi["Date"] == pd.Timestamp("2024-10-25")].copy()
    thu["Date"] = pd.Timestamp("2024-10-31")  # + 3 business days (11-01, 11-05, 11-06): effective after T
    tabs["margin_interest"] = pd.concat([mi, thu], ignore_index=True)
    dv = tabs["dividend"]
    notice = dv.iloc[[0]].copy()
    notice[["PubDate", "PubTime", "ExDate", "StatCode", "DivRate"]] = [T, "15:30", T + pd.Timedelta(days=2), "1", 40.0]
    notice["RefNo"] = notice["CARefNo"] = "20241105T0001"
    tabs["dividend"] = pd.concat([dv, notice], ignore_index=True)
    ec = tabs["earnings_calendar"]
    tabs["earnings_calendar"] = pd.concat([ec.assign(**{SNAPSHOT_COLUMN: T}), ec], ignore_index=True)
    return tabs


def test_build_with_every_group(tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    write_tables(tmp_path / "lake", tables)
    cfg = load_dataset_config(CONFIG, [*SMALL, *ALL_ON, "start=2024-06-03"])
    res = build_dataset(CPU, cfg, tmp_path / "lake", tmp_path / "ds", progress=False)
    meta = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    enriched = [c for g in GROUPS.values() for c in g.outputs]
    assert res.features[: len(enriched)] == enriched and meta["feature_count"] == 29 + len(enriched)
    assert meta["enrich"] == dict.fromkeys(GROUPS, "on")
    assert all(meta["features_by_group"][g] == list(GROUPS[g].outputs) for g in GROUPS)
    assert {f"enrich:{g}" for g in GROUPS} <= set(meta["timings_s"])
    df = read(tmp_path / "ds")
    assert {f"{c}_z" for c in enriched} <= set(df.columns) and all(df[c].dtype == np.float32 for c in enriched)
    assert df["st_bps_yield"].notna().mean() > 0.8 and df["it_frgn_net"].notna().mean() > 0.9


def test_default_config_on_a_lake_with_every_dataset(tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    """`auto` switches every group on when the lake has its data: the default dataset's full feature set."""
    from gpuetl.features import registry

    write_tables(tmp_path / "lake", tables)
    cfg = load_dataset_config(CONFIG, ["start=2023-10-02"])  # every day: this market is shorter than the warm-up
    res = build_dataset(CPU, cfg, tmp_path / "lake", tmp_path / "ds", progress=False)
    enriched = [c for g in GROUPS.values() for c in g.outputs]
    declared = [c for op, p in cfg.feature_params() for c in registry.get(op).outputs(p)]
    assert res.features == enriched + declared and len(res.features) >= 150
    assert json.loads((tmp_path / "ds" / "metadata.json").read_text())["enrich"] == dict.fromkeys(GROUPS, "on")
    df = read(tmp_path / "ds")
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
        out.append(read(tmp_path / f"ds{i}"))
    a, b = out
    early = a["Date"] <= T
    assert early.sum() > 1000 and (~early).sum() > 500
    cols = [c for c in a.columns if not c.startswith("target_")]
    pd.testing.assert_frame_equal(a.loc[early, cols], b.loc[early, cols], check_exact=True)
    # the perturbation did reach every group after t
    for group in ("statements", "investor_types", "margin_interest", "short_ratio", "listing", "dividends"):
        changed = [c for c in GROUPS[group].outputs if not a.loc[~early, c].equals(b.loc[~early, c])]
        assert changed, group


@pytest.mark.gpu
def test_gpu_equals_cpu_on_the_enriched_dataset(gpu_backend: Backend, tables: dict[str, pd.DataFrame],
                                                tmp_path: Path) -> None:
    from tests.conftest import _backend

    write_tables(tmp_path / "lake", tables)
    cfg = load_dataset_config(CONFIG, [*SMALL, *ALL_ON])
    build_dataset(_backend("cpu"), cfg, tmp_path / "lake", tmp_path / "cpu", progress=False)
    build_dataset(gpu_backend, cfg, tmp_path / "lake", tmp_path / "gpu", progress=False)
    cpu, gpu = read(tmp_path / "cpu"), read(tmp_path / "gpu")
    assert cpu[["Code", "Date"]].equals(gpu[["Code", "Date"]])
    enriched = [c for g in GROUPS.values() for c in g.outputs]
    for col in enriched:
        np.testing.assert_allclose(gpu[col], cpu[col], rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=col)
    for col in (c for c in cpu.columns if c.endswith("_z") or c.endswith("_missing")):
        np.testing.assert_allclose(gpu[col], cpu[col], rtol=1e-5, atol=1e-5, equal_nan=True, err_msg=col)
