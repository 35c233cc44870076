"""gpuetl.open_dataset and the tensors: the panel equals the frame's pivot, DLPack shares memory, edges match the
graph files in both directions, the sampler's windows are views and its masks never drop a code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest

torch = pytest.importorskip("torch")

from gpuetl.backend import Backend  # noqa: E402
from gpuetl.commands import main  # noqa: E402
from gpuetl.dataset.build import build_dataset  # noqa: E402
from gpuetl.dataset.config import load_dataset_config  # noqa: E402
from gpuetl.tensors import DatasetError, DaySampler, open_dataset  # noqa: E402
from gpuetl.tensors.sampler import eligible_rows  # noqa: E402
from tests._testing import CPU, assert_backend_equal  # noqa: E402
from tests.support.lakes import SMALL, raw_market, write_lake  # noqa: E402
from tests.support.train import write_tiny_dataset  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset and its graphs, built by `gpuetl build` and `gpuetl graph` code from a small hand-made lake."""
    root = tmp_path_factory.mktemp("built")
    bars, topix, master = raw_market(seed=7)
    write_lake(root / "lake", bars, topix, master)
    cfg = load_dataset_config("configs/dataset/default.yaml", [*SMALL, "start=2020-04-01"])
    build_dataset(CPU, cfg, root / "lake", root / "ds", progress=False)
    assert main(["graph", "--backend", "cpu", "--dataset", str(root / "ds"), "--lake", str(root / "lake"),
                 "--config-set", "window=20", "--config-set", "knn.k=2",
                 "--config-set", "knn.threshold=0.01", "--no-progress"]) == 0
    return root / "ds"


def host(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def hive(path: Path) -> pd.DataFrame:
    return pads.dataset(path, format="parquet", partitioning="hive").to_table().to_pandas()


def test_column_lists_and_frame_come_from_the_metadata(built: Path) -> None:
    ds = open_dataset(built, CPU)
    meta = json.loads((built / "metadata.json").read_text())
    assert ds.features == [f for g in meta["features_by_group"].values() for f in g]
    assert ds.normalized == [f + "_z" for f in ds.features] and ds.masks == [f + "_missing" for f in ds.features]
    assert ds.targets == meta["targets"] and ds.default_label == "target_next_ret_1d"
    assert ds.graph_features and all(c.startswith("graph_") for c in ds.graph_features)
    frame = ds.frame(["ret_1d_z", "graph_degree"])
    assert list(frame.columns) == ["Code", "Date", "ret_1d_z", "graph_degree"]  # no year= partition column
    whole = ds.frame()
    assert "year" not in whole.columns and len(whole) == meta["rows"]
    assert whole[["Date", "Code"]].equals(whole[["Date", "Code"]].sort_values(["Date", "Code"]).reset_index(drop=True))
    graph = hive(built / "graphs" / "features").set_index(["Code", "Date"])["graph_degree"]
    joined = frame.set_index(["Code", "Date"])["graph_degree"]
    pd.testing.assert_series_equal(joined.sort_index(), graph.reindex(joined.index).sort_index(), check_names=False)
    with pytest.raises(DatasetError, match="no column"):
        ds.frame(["nope"])
    with pytest.raises(DatasetError, match="gpuetl build"):
        open_dataset(built / "missing", CPU)


def test_panel_equals_the_pandas_pivot(built: Path, backend: Backend) -> None:
    ds = open_dataset(built, backend)
    columns = ["ret_1d_z", "sma5_gap", "ret_1d_missing", "mkt_ret_1d"]
    panel = ds.panel(columns, targets=["target_next_ret_1d", "target_ret_5d"])
    rows = hive(built / "data")
    dates = np.sort(rows["Date"].unique()).astype("datetime64[D]")
    codes = np.sort(rows["Code"].unique())
    np.testing.assert_array_equal(panel.dates, dates)
    np.testing.assert_array_equal(panel.codes, codes)
    assert panel.shape == (len(dates), len(codes), len(columns)) and panel.values.dtype == torch.float32
    for name in [*columns, *panel.target_names]:
        ref = rows.pivot(index="Date", columns="Code", values=name).reindex(index=dates.astype("datetime64[ms]"),
                                                                           columns=codes)
        got = panel.column(name) if name in columns else panel.target(name)
        assert_backend_equal(got, ref.to_numpy(np.float32), tol="exact", check_dtype=True, err_msg=name)
    had_row = rows.assign(x=1).pivot(index="Date", columns="Code", values="x").reindex(columns=codes).notna()
    assert_backend_equal(panel.present, had_row.to_numpy(), tol="exact")
    assert not panel.present.all()  # the hand-made lake has gaps and a late code: they are absent, not zero


def test_dlpack_hands_over_the_backend_arrays_without_a_copy(built: Path) -> None:
    panel = open_dataset(built, CPU).panel(["ret_1d_z"])
    for name, tensor in (("values", panel.values), ("present", panel.present), ("targets", panel.targets)):
        assert tensor.data_ptr() == panel.arrays[name].ctypes.data, name
    panel.arrays["values"][0, 0, 0] = 123.0
    assert panel.values[0, 0, 0].item() == 123.0


@pytest.mark.gpu
def test_dlpack_on_the_gpu_keeps_the_device_pointer(built: Path, gpu_backend: Backend) -> None:
    panel = open_dataset(built, gpu_backend).panel(["ret_1d_z", "sma5_gap"])
    for name, tensor in (("values", panel.values), ("present", panel.present), ("targets", panel.targets)):
        assert tensor.is_cuda and tensor.data_ptr() == panel.arrays[name].data.ptr, name


def test_edges_are_the_graph_files_in_both_directions(built: Path) -> None:
    ds = open_dataset(built, CPU)
    files = hive(built / "graphs" / "edges")
    node = pd.read_parquet(built / "graphs" / "codes.parquet").set_index("index")["Code"]
    day = files["Date"].value_counts().idxmax()
    ref = files[files["Date"] == day]
    edge_index, edge_weight = ds.edges(str(day.date()))
    got = {(ds.codes[s], ds.codes[d], round(float(w), 6)) for s, d, w in
           zip(*host(edge_index), host(edge_weight), strict=True)}
    want = {(node[s], node[d], round(float(w), 6)) for s, d, w in
            zip(ref["src"], ref["dst"], ref["weight"], strict=True)}
    assert got == want | {(b, a, w) for a, b, w in want} and len(got) == 2 * len(ref)
    t = int(np.searchsorted(ds.dates, np.datetime64(day.date(), "D")))
    torch.testing.assert_close(ds.edges(t)[0], edge_index)
    with pytest.raises(DatasetError, match="not a date"):
        ds.edges("1999-01-04")


def test_sampler_windows_are_views_and_masks_keep_every_code(tmp_path: Path) -> None:
    ds = open_dataset(write_tiny_dataset(tmp_path / "ds", codes=12, late_codes=2), CPU)
    panel = ds.panel(["ret_1d_z", "sma5_gap_z"], targets=["target_next_ret_1d"])
    eligible = eligible_rows(panel.present, 10)
    window = 5
    s = DaySampler(panel.values, eligible, panel.targets, window, graphs=ds.graphs())
    _, n, _ = panel.shape
    t = 40
    view = s.window(t)
    assert view.shape == (n, window, 2) \
        and view.untyped_storage().data_ptr() == panel.values.untyped_storage().data_ptr()
    torch.testing.assert_close(view, panel.values[t - window + 1: t + 1].permute(1, 0, 2), equal_nan=True)
    early = s.window(2)  # a day before the L-th: padded with missing days in front
    assert early.shape == (n, window, 2) and torch.isnan(early[:, :2]).all()
    torch.testing.assert_close(early[:, 2:], panel.values[:3].permute(1, 0, 2), equal_nan=True)
    # the late codes (no rows for 30 days) count from their 10th row on; absent rows never count
    late = slice(n - 2, n)
    assert not eligible[:39, late].any() and eligible[39, late].all() and eligible[:9].sum() == 0
    batch = s.batch([t, 12, 35])
    assert batch.x.shape == (3 * n, window, 2) and torch.isfinite(batch.x).all()  # missing read as 0
    assert batch.mask.shape == (3, n) and torch.equal(batch.mask[1], eligible[12])  # masked, not dropped
    assert not batch.mask[2, late].any() and batch.mask[0, late].all()
    # edges: each day's own, shifted to its block of nodes, plus one self-loop per node
    ei, attr = batch.edge_index, batch.edge_attr
    loops = attr[:, -1] == 1
    assert int(loops.sum()) == 3 * n and torch.equal(ei[0, loops], ei[1, loops])
    for b, day in enumerate((t, 12, 35)):
        own = (ei[1] // n == b) & ~loops
        want, weight = ds.edges(day)
        torch.testing.assert_close(ei[:, own] - b * n, want)
        torch.testing.assert_close(attr[own, 0], weight)
        assert ((ei[0, own] // n) == b).all()
    alone = DaySampler(panel.values, eligible, panel.targets, window, graphs=ds.graphs(), graph=False).batch([t])
    assert alone.edge_index.shape == (2, n) and alone.edge_attr.shape[1] == s.edge_dim


def test_sector_relation_links_each_code_to_the_largest_of_its_sector(tmp_path: Path) -> None:
    ds = open_dataset(write_tiny_dataset(tmp_path / "ds", codes=12, late_codes=0), CPU)
    graphs = ds.graphs()
    sector = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 2, np.nan, 3, 3, 3]] * len(ds.dates), dtype=torch.float32)
    size = torch.tensor([[5, 4, 3, 2, 1, 9, 8, 7, 6, np.nan, 2, 1]] * len(ds.dates), dtype=torch.float32)
    merged = graphs.with_sector(sector, size, peers=2)
    assert merged.relations == ("weight", "sector")
    lo, hi = merged.start[7], merged.stop[7]
    attr = merged.attr[lo:hi]
    pairs = {(int(a), int(b)) for a, b, on in zip(merged.src[lo:hi], merged.dst[lo:hi], attr[:, 1], strict=True) if on}
    want = set()
    for group in ([0, 1, 2, 3], [5, 6, 4], [10, 11, 9]):  # each sector, largest first (NaN size last)
        for member in group:
            want |= {(leader, member) for leader in [g for g in group if g != member][:2]}
    assert pairs == want  # code 7 is alone in its sector, code 8 has none
    corr = {(int(a), int(b)) for a, b, w in zip(merged.src[lo:hi], merged.dst[lo:hi], attr[:, 0], strict=True) if w}
    e, _ = graphs.edges(7)
    assert corr == {(int(a), int(b)) for a, b in e.T}  # the correlation edges keep their weights, merged by pair


def test_import_gpuetl_stays_light() -> None:
    code = ("import sys, gpuetl, gpuetl.commands; gpuetl.commands.build_parser(); assert 'torch' not in sys.modules; "
            "f = gpuetl.open_dataset; assert 'torch' in sys.modules and f.__name__ == 'open_dataset'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


@pytest.mark.gpu
def test_no_host_copy_from_the_dataset_to_the_training_step(tmp_path: Path, gpu_backend: Backend) -> None:
    """DLPack keeps the RMM pool's pointer, and a whole training epoch (batches, GAT steps, EMA) copies nothing
    between host and device: the profiler sees no Memcpy HtoD/DtoH. The loss is read after the epoch (the
    scalar logging), outside the profiled span."""
    from torch.profiler import ProfilerActivity, profile

    from gpuetl.train.config import load_gat_config
    from gpuetl.train.data import load_train_data
    from gpuetl.train.loop import GATLearner, batches, train_epoch
    from gpuetl.train.splits import label_reach, make_splits
    from tests.support.train import TINY_TRAIN

    ds = open_dataset(write_tiny_dataset(tmp_path / "ds"), gpu_backend)
    cfg = load_gat_config("configs/train/gat.yaml",
                          [*TINY_TRAIN, "model.relation_means=true",
                           "model.lead_lag={column: ret_1d, within: null, peers: 3, min_days: 50}"])
    data = load_train_data(ds, cfg.data, model=cfg.model)  # with the lead-lag edges and relation means
    assert data.device.type == "cuda"
    assert data.panel.values.data_ptr() == data.panel.arrays["values"].data.ptr
    assert data.panel.targets.data_ptr() == data.panel.arrays["targets"].data.ptr
    fold = data.fold(make_splits(ds.dates, cfg.splits, label_reach(data.label, cfg.data.horizons)).folds[0])
    learner = GATLearner(cfg, data, seed=0)
    sampler = learner.sampler(fold)
    day_batches = batches(data.days(fold.fold.train), cfg.optim.days_per_batch, np.random.default_rng(0))
    train_epoch(learner.model, learner.ema, learner.optimizer, sampler, day_batches[:2], cfg)  # lazy inits
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        loss = train_epoch(learner.model, learner.ema, learner.optimizer, sampler, day_batches, cfg)
        torch.cuda.synchronize()
    copies = [e.name for e in prof.events() if "memcpy" in e.name.lower()
              and ("htod" in e.name.lower() or "dtoh" in e.name.lower())]
    assert copies == [], copies
    assert np.isfinite(loss.item())


def plain_daily_graphs(folder: Path, codes: np.ndarray, dates: np.ndarray, sector: torch.Tensor | None = None,
                       size: torch.Tensor | None = None, peers: int = 0) -> pd.DataFrame:
    """The daily edges in pandas, all at once: each date takes the latest graph at or before it (its own with
    every_n_days 1), both directions; with the sector relation, its edges merged by (day, src, dst)."""
    edges = hive(folder / "edges")
    node = pd.read_parquet(folder / "codes.parquet").set_index("index")["Code"]
    position = pd.Series(np.arange(len(codes)), index=codes)
    every = json.loads((folder / "graphs.json").read_text())["config"]["every_n_days"]
    graph_days = np.sort(edges["Date"].unique()).astype("datetime64[D]")
    rows = []
    for t, day in enumerate(dates):
        g = np.searchsorted(graph_days, day, side="right") - 1
        if g < 0 or (every <= 1 and graph_days[g] != day):
            continue
        e = edges[edges["Date"].to_numpy().astype("datetime64[D]") == graph_days[g]]
        s, d = position[node[e["src"]].to_numpy()].to_numpy(), position[node[e["dst"]].to_numpy()].to_numpy()
        rows.append(pd.DataFrame({"day": t, "src": np.r_[s, d], "dst": np.r_[d, s], "weight": np.r_[e["weight"],
                                                                                                  e["weight"]]}))
    frame = pd.concat(rows, ignore_index=True).assign(sector=0.0)
    if sector is not None and size is not None:
        from gpuetl.tensors.graphs import sector_edges

        day, leader, member = (host(v) for v in sector_edges(sector, size, peers))
        frame = pd.concat([frame, pd.DataFrame({"day": day, "src": leader, "dst": member, "weight": 0.0,
                                                "sector": 1.0})], ignore_index=True)
    return frame.groupby(["day", "src", "dst"], as_index=False)[["weight", "sector"]].sum()


def as_frame(graphs: object) -> pd.DataFrame:
    from gpuetl.tensors.graphs import DailyGraphs

    assert isinstance(graphs, DailyGraphs)
    day = np.repeat(np.arange(len(graphs.start)), graphs.stop - graphs.start)
    out = pd.DataFrame({"day": day, "src": host(graphs.src).astype(np.int64), "dst": host(graphs.dst).astype(np.int64)})
    for j, name in enumerate(graphs.relations):
        out[name] = host(graphs.attr[:, j]).astype(np.float64)
    return out


@pytest.mark.parametrize("every", [1, 3])
def test_graphs_built_in_blocks_equal_the_edges_all_at_once(tmp_path: Path, every: int,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few days (and of a few edges, the year folders crossed within one) give the edges a build
    of every day at once gives, in (day, src, dst) order; with every_n_days > 1, a date takes the latest graph."""
    from gpuetl.tensors import graphs as graphs_mod

    root = write_tiny_dataset(tmp_path / "ds", codes=12, late_codes=2)
    folder = root / "graphs"
    if every > 1:  # keep every third date's graph: January's first dates take December's
        meta = json.loads((folder / "graphs.json").read_text())
        meta["config"]["every_n_days"] = every
        (folder / "graphs.json").write_text(json.dumps(meta))
        for f in (folder / "edges").rglob("*.parquet"):
            part = pd.read_parquet(f)
            days = np.sort(part["Date"].unique())
            part[part["Date"].isin(days[1::every])].to_parquet(f, index=False)
    monkeypatch.setattr(graphs_mod, "BLOCK_EDGES", 50)
    monkeypatch.setattr(graphs_mod, "BLOCK_DAYS", 7)
    ds = open_dataset(root, CPU)
    panel = ds.panel(["lst_s33", "st_log_mcap"], targets=[])
    sector, size = panel.column("lst_s33"), panel.column("st_log_mcap")
    plain = plain_daily_graphs(folder, ds.codes, ds.dates)
    got = ds.graphs()
    assert got.src.dtype == torch.int16 and got.relations == ("weight",)  # 2 bytes an index
    pd.testing.assert_frame_equal(as_frame(got), plain[["day", "src", "dst", "weight"]], check_dtype=False)
    want = plain_daily_graphs(folder, ds.codes, ds.dates, sector, size, peers=2)
    pd.testing.assert_frame_equal(as_frame(ds.graphs(sector=(sector, size, 2))), want, check_dtype=False)
    pd.testing.assert_frame_equal(as_frame(got.with_sector(sector, size, 2)), want, check_dtype=False)
    shuffled = torch.randperm(len(got.src))
    day = torch.repeat_interleave(torch.arange(len(ds.dates)), torch.as_tensor(got.stop - got.start))[shuffled]
    src, dst, attr = got.src.long()[shuffled], got.dst.long()[shuffled], got.attr[shuffled]
    twice = graphs_mod.DailyGraphs.from_edges(torch.cat([day, day]), torch.cat([src, src]), torch.cat([dst, dst]),
                                              torch.cat([attr, attr]), ("weight",), len(ds.dates), 12)
    doubled = plain[["day", "src", "dst", "weight"]].assign(weight=2 * plain["weight"])
    pd.testing.assert_frame_equal(as_frame(twice), doubled, check_dtype=False)  # duplicates merged, summed


def test_a_panel_of_graph_features_takes_them_where_the_dataset_has_rows(built: Path) -> None:
    ds = open_dataset(built, CPU)
    panel = ds.panel(["ret_1d_z", "graph_degree"], targets=[])
    frame = ds.frame(["graph_degree"])
    t = np.searchsorted(panel.dates, frame["Date"].to_numpy().astype("datetime64[D]"))
    c = np.searchsorted(panel.codes, frame["Code"].to_numpy())
    want = np.full(panel.shape[:2], np.nan, dtype=np.float32)
    want[t, c] = frame["graph_degree"].to_numpy(np.float32)
    assert_backend_equal(panel.column("graph_degree"), want, tol="exact")
    assert torch.isnan(panel.column("graph_degree")[~panel.present]).all()
