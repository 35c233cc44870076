"""Issue 24: every bad config input is one line naming the input and the fix, exit 2, checked at load time before any
data is read: declared bounds of every number (config fields and feature op parameters), rules across fields,
files that are not UTF-8 YAML, overrides blamed by their flag, empty date spans, unknown labels, demo-server flags."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import numpy as np
import pytest

from gpuetl.commands import main
from gpuetl.config import (
    ConfigError,
    Count,
    Items,
    Port,
    Positive,
    Range,
    Share,
    from_dict,
    load,
    load_settings,
)
from gpuetl.dataset.config import load_dataset_config
from gpuetl.dataset.plan import check_lake_span
from gpuetl.dataset.registry import REGISTRY
from gpuetl.dates import day_of
from gpuetl.graphs.config import load_graph_config
from gpuetl.train.config import load_gat_config, load_xgb_config
from gpuetl.train.tune_config import load_tune_config

ROOT = Path(__file__).resolve().parents[1]
DATASET = "configs/dataset/default.yaml"
GAT = "configs/train/gat.yaml"


@dataclasses.dataclass(frozen=True)
class Inner:
    rate: Share
    port: Port


@dataclasses.dataclass(frozen=True)
class Bounded:
    n: Count
    lr: Positive
    limit: Count | None
    horizons: Annotated[tuple[Count, ...], Items(min=1, unique=True)]
    pair: tuple[int, int]
    inner: Inner
    start: str | None
    end: str | None


GOOD: dict[str, Any] = {"n": 1, "lr": 0.1, "limit": None, "horizons": [1, 5], "pair": [1, 2],
                        "inner": {"rate": 0.0, "port": 0}, "start": "2024-01-01", "end": "2024-01-01"}


def test_good_values_pass_at_their_bounds() -> None:
    cfg = from_dict(Bounded, GOOD)
    assert (cfg.n, cfg.horizons, cfg.pair, cfg.inner) == (1, (1, 5), (1, 2), Inner(0.0, 0))
    assert from_dict(Bounded, {**GOOD, "inner": {"rate": 1, "port": 65535}, "limit": 3}).inner == Inner(1.0, 65535)


@pytest.mark.parametrize(("change", "message"), [
    ({"n": 0}, "n: must be >= 1, got 0"),
    ({"n": -5}, "n: must be >= 1, got -5"),
    ({"lr": 0}, "lr: must be > 0, got 0.0"),
    ({"lr": ".nan"}, "lr: expected a finite number, got nan"),
    ({"limit": 0}, "limit: must be >= 1, got 0"),
    ({"horizons": []}, "horizons: needs at least one value, got []"),
    ({"horizons": [1, 1]}, "horizons: 1 appears twice in [1, 1]; list each value once"),
    ({"horizons": [1, 0]}, "horizons[1]: must be >= 1, got 0"),
    ({"pair": [1]}, "pair: expected a list of 2 values, got [1]"),
    ({"inner": {"rate": 1.5, "port": 0}}, "inner.rate: must be in [0, 1], got 1.5"),
    ({"inner": {"rate": 0, "port": 70000}}, "inner.port: must be in [0, 65535], got 70000"),
    ({"end": "2023-12-31"}, "end: 2023-12-31 is before start 2024-01-01, so the span is empty; set end on or after"),
])
def test_out_of_range_values_name_the_key_the_bound_and_the_value(change: dict[str, Any], message: str) -> None:
    data = {**GOOD, **change}
    if data["lr"] == ".nan":
        data["lr"] = float("nan")
    with pytest.raises(ConfigError) as err:
        from_dict(Bounded, data)
    assert message in str(err.value)


def test_range_in_words() -> None:
    assert Range(min=1).describe() == ">= 1"
    assert Range(above=0).describe() == "> 0"
    assert Range(min=0, below=1).describe() == "in [0, 1)"
    assert Range(above=0, max=0.5).describe() == "in (0, 0.5]"
    assert Range(max=3).describe() == "<= 3"


# ------------------------------------------------------------------------------------ the shipped configs and ops


def test_every_shipped_config_loads() -> None:
    loaders = {"dataset": load_dataset_config, "graph": load_graph_config, "tune": load_tune_config}
    found = sorted((ROOT / "configs").rglob("*.yaml"))
    assert len(found) >= 5
    for path in found:
        kind = path.parent.name
        if kind == "configs":
            load_settings(path)
        elif kind == "train":
            (load_gat_config if "gat" in path.name else load_xgb_config)(path)
        else:
            loaders[kind](path)


def _ranges(tp: Any) -> list[Range]:
    """Every Range declared in a (nested) type."""
    found = [a for a in typing.get_args(tp) if isinstance(a, Range)] if typing.get_origin(tp) is Annotated else []
    return found + [r for arg in typing.get_args(tp) for r in _ranges(arg)]


def _numbers(tp: Any) -> bool:
    """Whether a (nested) type holds numbers."""
    return tp in (int, float) or any(_numbers(a) for a in typing.get_args(tp) if not isinstance(a, Range | Items))


def test_every_number_of_every_feature_op_declares_its_bounds() -> None:
    """A new op with `windows: Sequence[int]` fails here: windows, periods, horizons are Days (>= 1) or Days2."""
    numbers = 0
    for name, spec in REGISTRY.of("feature").items():
        hints = typing.get_type_hints(spec.fn, include_extras=True)
        for param in list(inspect.signature(spec.fn).parameters)[1:]:
            if _numbers(hints[param]):
                assert _ranges(hints[param]), f"{name}.{param}: declare its bounds (gpuetl.ops.Days, ...)"
                numbers += 1
    assert numbers >= 30


@pytest.mark.parametrize(("feature", "message"), [
    ("{op: sma, params: {windows: [5, 0], slope_days: 5, crosses: []}}",
     "features[0] (sma).params.windows[1]: must be >= 1, got 0"),
    ("{op: sma, params: {windows: [5], slope_days: 0, crosses: []}}",
     "features[0] (sma).params.slope_days: must be >= 1"),
    ("{op: ema, params: {windows: [5], slope_days: 1, crosses: [[5, -20]]}}", "features[0] (ema).params.crosses[0][1]"),
    ("{op: sma, params: {windows: [5], slope_days: 1, crosses: [[5]]}}", "crosses[0]: expected a list of 2 values"),
    ("{op: rsi, params: {periods: [-5]}}", "features[0] (rsi).params.periods[0]: must be >= 1, got -5"),
    ("{op: rsi, params: {periods: []}}", "features[0] (rsi).params.periods: needs at least one value"),
    ("{op: adx, params: {period: 1}}", "features[0] (adx).params.period: must be >= 2, got 1"),
    ("{op: macd, params: {fast: 0, slow: 26, signal: 9}}", "features[0] (macd).params.fast: must be >= 1"),
    ("{op: bollinger, params: {window: 20, nbdev: 0}}", "features[0] (bollinger).params.nbdev: must be > 0"),
    ("{op: realized_vol, params: {windows: [1]}}", "features[0] (realized_vol).params.windows[0]: must be >= 2"),
    ("{op: returns, params: {horizons: [-1]}}", "features[0] (returns).params.horizons[0]: must be >= 1"),
    ("{op: market, params: {horizons: [1], vol_window: 1, trend_window: 5}}",
     "(market).params.vol_window: must be >= 2"),
    ("{op: amihud, params: {windows: [20], scale: -1}}", "features[0] (amihud).params.scale: must be > 0"),
    ("{op: days_since_extreme, params: {windows: [0]}}", "(days_since_extreme).params.windows[0]: must be >= 1"),
    ("{op: rsi, params: {periods: [14, 14]}}", "features[0] (rsi): column rsi14 is made twice"),
])
def test_bad_feature_parameters_are_config_errors_naming_the_op(feature: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_dataset_config(DATASET, [f"features=[{feature}]"])
    assert message in str(err.value)
    assert str(err.value).startswith(f"--config-set features=[{feature}]: ")


def test_the_same_column_from_two_ops_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"features\[1\] \(rsi\): column rsi14 is made already by features\[0\]"):
        load_dataset_config(DATASET, ["features=[{op: rsi, params: {periods: [14]}}, "
                                      "{op: rsi, params: {periods: [2, 14]}}]"])


@pytest.mark.parametrize(("overrides", "message"), [
    (["normalize.clip=0"], "normalize.clip: must be > 0, got 0.0"),
    (["normalize.ts_window=1"], "normalize.ts_window: must be >= 2, got 1"),
    (["normalize.ts_min_periods=0"], "normalize.ts_min_periods: must be >= 1, got 0"),
    (["normalize.ts_min_periods=300"], "normalize.ts_min_periods: 300 is more than normalize.ts_window 250"),
    (["targets.horizons=[1, 0]"], "targets.horizons[1]: must be >= 1, got 0"),
    (["targets.horizons=[5, 5]"], "targets.horizons: 5 appears twice"),
    (["start=2024-06-01", "end=2024-01-01"], "end: 2024-01-01 is before start 2024-06-01"),
])
def test_dataset_config_bounds(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_dataset_config(DATASET, overrides)
    assert message in str(err.value)


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.hidden=0"], "model.hidden: must be >= 1, got 0"),
    (["model.heads=3"], "model.hidden (32) must be a multiple of model.heads (3)"),
    (["model.dropout=1"], "model.dropout: must be in [0, 1), got 1.0"),
    (["optim.lr=0"], "optim.lr: must be > 0, got 0.0"),
    (["optim.weight_decay=-0.1"], "optim.weight_decay: must be >= 0, got -0.1"),
    (["optim.ema_decay=1"], "optim.ema_decay: must be in [0, 1), got 1.0"),
    (["loss.huber_delta=0"], "loss.huber_delta: must be > 0"),
    (["loss.huber_weight=0", "loss.rank_weight=0"], "loss.huber_weight and loss.rank_weight are both 0"),
    (["data.horizons=[]"], "data.horizons: needs at least one value"),
    (["data.horizons=[1, 1]"], "data.horizons: 1 appears twice"),
    (["data.min_history=0"], "data.min_history: must be >= 1, got 0"),
    (["splits.test_years=0"], "splits.test_years: must be >= 1, got 0"),
    (["eval.fallback_share=0.6"], "eval.fallback_share: must be in (0, 0.5], got 0.6"),
    (["eval.min_names=100"], "eval.min_names (100) must be at least twice eval.portfolio_size (200)"),
    (["run.seeds=[-1]"], "run.seeds[0]: must be >= 0, got -1"),
    (["run.seeds=[]"], "run.seeds: needs at least one value"),
    (["model.lead_lag.min_days=1"], "model.lead_lag.min_days: must be >= 2, got 1"),
    (["model.sector.peers=0"], "model.sector.peers: must be >= 1, got 0"),
])
def test_gat_config_bounds_and_rules(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_gat_config(GAT, overrides)
    assert message in str(err.value)
    assert str(err.value).startswith(f"--config-set {overrides[-1]}: "), str(err.value)


@pytest.mark.parametrize(("overrides", "message"), [
    (["xgb.subsample=0"], "xgb.subsample: must be in (0, 1], got 0.0"),
    (["xgb.learning_rate=0"], "xgb.learning_rate: must be in (0, 1]"),
    (["xgb.max_bin=1"], "xgb.max_bin: must be >= 2, got 1"),
])
def test_xgb_config_bounds(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_xgb_config("configs/train/xgb.yaml", overrides)


@pytest.mark.parametrize(("overrides", "message"), [
    (["window=1"], "window: must be >= 2, got 1"),
    (["halflife=0"], "halflife: must be > 0, got 0.0"),
    (["min_coverage=0"], "min_coverage: must be in (0, 1], got 0.0"),
    (["knn.k=0"], "knn.k: must be in [1, 64], got 0"),
    (["shrinkage.gamma=1.5"], "shrinkage.gamma: must be in [0, 1], got 1.5"),
    (["pagerank.damping=1"], "pagerank.damping: must be in (0, 1), got 1.0"),
    (["louvain.threshold=-1"], "louvain.threshold: must be >= 0"),
])
def test_graph_config_bounds(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_graph_config(overrides=overrides)
    assert message in str(err.value)


@pytest.mark.parametrize(("overrides", "message"), [
    (["demo.port=70000"], "demo.port: must be in [0, 65535], got 70000"),
    (["demo.codes=0"], "demo.codes: must be >= 1, got 0"),
    (["demo.faults.error_rate=1.5"], "demo.faults.error_rate: must be in [0, 1], got 1.5"),
    (["demo.end=2020-01-01"], "demo.end: 2020-01-01 is before demo.start 2022-01-04"),
    (["jquants.concurrency=0"], "jquants.concurrency: must be >= 1, got 0"),
    (["jquants.requests_per_minute=0"], "jquants.requests_per_minute: must be >= 1, got 0"),
    (["gpu.device=-1"], "gpu.device: must be >= 0, got -1"),
    (["build.partition_rows=0"], "build.partition_rows: must be >= 1, got 0"),
    (["cluster.workers=0"], "cluster.workers: must be >= 1, got 0"),
])
def test_settings_bounds_name_the_set_flag(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(overrides=overrides)
    assert str(err.value).startswith(f"--set {overrides[0]}: {message}"), str(err.value)


# ------------------------------------------------------------------------------------ files and overrides


def test_a_binary_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(ConfigError, match=f"^{path}: not a UTF-8 YAML file"):
        load(Bounded, path)
    path.write_bytes(b"name: x\x00\x01")  # UTF-8, but control characters
    with pytest.raises(ConfigError, match=f"^{path}: not a UTF-8 YAML file"):
        load(Bounded, path)


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("n: 1\nlr: 0.1\ninner: {rate: 0.5\nport: 3\n")
    with pytest.raises(ConfigError) as err:
        load(Bounded, path)
    message = str(err.value)
    assert message.startswith(f"{path}:") and "not valid YAML" in message and "\n" not in message
    assert message.split(":")[1] in {"3", "4", "5"}, message  # the line
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        path.write_text("- a\n- b\n")
        load(Bounded, path)
    with pytest.raises(ConfigError, match="is a folder"):
        load(Bounded, tmp_path)


def test_an_override_is_blamed_by_its_flag_and_the_file_for_its_own_values(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    with pytest.raises(ConfigError, match=r"^--config-set nosuch=1: unknown key\(s\) nosuch; valid keys at <root>: n,"):
        load(Bounded, path, ["nosuch=1"], "--config-set")
    with pytest.raises(ConfigError, match=r"^--set inner.port=x: inner\.port: expected an integer, got 'x'$"):
        load(Bounded, path, ["n=2", "inner.port=x"])
    with pytest.raises(ConfigError, match=r"^--set inner={rate: 2, port: 1}: inner\.rate: must be in \[0, 1\]"):
        load(Bounded, path, ["inner={rate: 2, port: 1}"])
    with pytest.raises(ConfigError, match=r"^--set limit=0: limit: must be >= 1, got 0$"):
        load(Bounded, path, ["limit=0"])
    with pytest.raises(ConfigError, match=r"^--set end=2020-01-01: end: 2020-01-01 is before start"):
        load(Bounded, path, ["end=2020-01-01"])
    with pytest.raises(ConfigError, match=r"^--set 'n': the value is not valid YAML|^--set n=\[1: the value"):
        load(Bounded, path, ["n=[1"])
    path.write_text(yaml.safe_dump({**GOOD, "n": 0}))
    with pytest.raises(ConfigError, match=f"^{path}: n: must be >= 1, got 0$"):
        load(Bounded, path, ["lr=0.5"])  # an override of another key: the file is at fault

    def rule(cfg: Bounded) -> None:
        if cfg.lr > 1:
            raise ConfigError("lr: more than 1", "lr")

    path.write_text(yaml.safe_dump(GOOD))
    with pytest.raises(ConfigError, match=r"^--set lr=2: lr: more than 1$"):
        load(Bounded, path, ["lr=2"], check=rule)


# ------------------------------------------------------------------------------------ dates against the lake, labels


def _span(start: str | None, end: str | None) -> None:
    cfg = load_dataset_config(DATASET, [f"start={start or 'null'}", f"end={end or 'null'}"])
    check_lake_span(cfg, np.array([day_of("2024-01-04"), day_of("2024-01-05"), day_of("2024-01-09")], dtype=np.int64))


def test_a_span_outside_the_lake_is_a_config_error() -> None:
    _span("2024-01-05", None)
    _span(None, "2024-01-04")
    with pytest.raises(ConfigError, match=r"^start: 2030-01-01 is after the lake's last trading day 2024-01-09; "
                                          r"choose a start on or before it"):
        _span("2030-01-01", None)
    with pytest.raises(ConfigError, match=r"^end: 2023-01-01 is before the lake's first trading day 2024-01-04"):
        _span(None, "2023-01-01")
    with pytest.raises(ConfigError, match=r"the lake has no trading day from 2024-01-06 to 2024-01-08; widen the span"):
        _span("2024-01-06", "2024-01-08")


def test_an_unknown_label_is_a_config_error_naming_data_label() -> None:
    pytest.importorskip("torch")
    from gpuetl.train.data import resolve_label

    cfg = load_gat_config(GAT)
    ds = SimpleNamespace(targets=["target_next_ret_1d", "target_next_ret_5d", "target_next_ret_20d"],
                         default_label="target_next_ret_1d", path=Path("ds"))
    assert resolve_label(ds, cfg.data) == ("target_next_ret_1d", ("target_next_ret_1d", "target_next_ret_5d",
                                                                  "target_next_ret_20d"))
    bad = dataclasses.replace(cfg.data, label="target_nosuch_1d")
    with pytest.raises(ConfigError, match=r"^data\.label: 'target_nosuch_1d' is not a target of ds; choose one of "
                                          r"target_next_ret_1d, target_next_ret_5d, target_next_ret_20d"):
        resolve_label(ds, bad)
    with pytest.raises(ConfigError, match=r"^data\.horizons: \[1, 3\] has no target|^data\.horizons: ds has no"):
        resolve_label(ds, dataclasses.replace(cfg.data, horizons=(1, 3)))


# ------------------------------------------------------------------------------------ the command line


def one_line(capsys: pytest.CaptureFixture[str], argv: list[str], *expect: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr that starts with the command and holds `expect`."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == "" and err.count("\n") == 1 and err.startswith(f"gpuetl {argv[0]}: "), err
    assert "Traceback" not in err and all(e in err for e in expect), err
    return err


def test_config_errors_on_the_command_line_are_one_line_exit_2_before_any_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # nothing here is a lake or a dataset: reaching the data would be exit 1
    nolake = ["--backend", "cpu", "--lake", str(tmp_path / "nolake"), "--out", str(tmp_path / "out")]
    sma = "features=[{op: sma, params: {windows: [0], slope_days: 5, crosses: []}}]"
    one_line(capsys, ["build", *nolake, "--config-set", sma],
             "features[0] (sma).params.windows[0]: must be >= 1, got 0")
    one_line(capsys, ["build", *nolake, "--config-set", "start=2024-06-01", "--config-set", "end=2024-01-01"],
             "--config-set end=2024-01-01: end: 2024-01-01 is before start 2024-06-01")
    one_line(capsys, ["build", *nolake, "--config-set", "nosuch=1"],
             "--config-set nosuch=1: unknown key(s) nosuch; valid keys at <root>: name, start")
    one_line(capsys, ["build", *nolake, "--config-set", "normalize.clip=0"], "normalize.clip: must be > 0, got 0.0")
    one_line(capsys, ["doctor", "--set", "nosuch=1"], "--set nosuch=1: unknown key(s) nosuch")
    one_line(capsys, ["doctor", "--set", "demo.port=70000"], "--set demo.port=70000: demo.port: must be in [0, 65535]")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(128, 256)))
    one_line(capsys, ["build", *nolake, "--config", str(binary)], f"{binary}: not a UTF-8 YAML file")
    one_line(capsys, ["doctor", "--settings", str(binary)], f"{binary}: not a UTF-8 YAML file")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nfeatures: [\n")
    one_line(capsys, ["build", *nolake, "--config", str(broken)], f"{broken}:3:", "not valid YAML")
    nodata = ["--backend", "cpu", "--dataset", str(tmp_path / "nodataset"), "--out", str(tmp_path / "graphs")]
    one_line(capsys, ["graph", *nodata, "--config-set", "knn.k=0"], "--config-set knn.k=0: knn.k: must be in [1, 64]")


def test_train_config_errors_come_before_the_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    if any(importlib.util.find_spec(m) is None for m in ("torch", "torch_geometric", "xgboost", "matplotlib")):
        pytest.skip("needs the train extra")
    monkeypatch.chdir(tmp_path)
    nodata = ["--backend", "cpu", "--dataset", str(tmp_path / "nodataset"), "--out", str(tmp_path / "run")]
    one_line(capsys, ["train", *nodata, "--config-set", "model.heads=3"],
             "--config-set model.heads=3: model.hidden (32) must be a multiple of model.heads (3)")
    one_line(capsys, ["train", *nodata, "--config-set", "optim.lr=-1"], "optim.lr: must be > 0, got -1.0")
    one_line(capsys, ["baseline", *nodata, "--config-set", "xgb.max_depth=0"], "xgb.max_depth: must be >= 1, got 0")


def test_an_unknown_label_on_the_command_line_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    if any(importlib.util.find_spec(m) is None for m in ("torch", "torch_geometric", "xgboost", "matplotlib")):
        pytest.skip("needs the train extra")
    from tests.support.train import write_tiny_dataset

    monkeypatch.chdir(tmp_path)
    dataset = write_tiny_dataset(tmp_path / "ds")
    one_line(capsys, ["baseline", "--backend", "cpu", "--dataset", str(dataset), "--out", str(tmp_path / "run"),
                      "--no-progress", "--config-set", "data.label=target_nosuch_1d"],
             "data.label: 'target_nosuch_1d' is not a target of", "choose one of target_")


def test_a_start_after_the_lake_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.lakes import SMALL, raw_market, write_lake

    monkeypatch.chdir(tmp_path)
    bars, topix, master = raw_market(days=60)
    write_lake(tmp_path / "lake", bars, topix, master)
    last = bars["Date"].max().date().isoformat()
    out = tmp_path / "ds"
    one_line(capsys, ["build", "--backend", "cpu", "--lake", str(tmp_path / "lake"), "--out", str(out), "--no-progress",
                      "--config-set", SMALL[0], "--config-set", "start=2030-01-01"],
             f"start: 2030-01-01 is after the lake's last trading day {last}; choose a start on or before it")
    assert not out.exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--port", "70000"], "--port: must be in [0, 65535], got 70000"),
    (["--port", "-1"], "--port: must be in [0, 65535], got -1"),
    (["--codes", "0"], "--codes: must be >= 1, got 0"),
    (["--page-size", "0"], "--page-size: must be >= 1, got 0"),
    (["--faults", "error=1.5"], "rates lie in [0, 1]"),
    (["--start", "2024-06-01", "--end", "2024-01-01"], "--end: 2024-01-01 is before --start 2024-06-01"),
    (["--start", "2024-13-01"], "--start: '2024-13-01' is not a date"),
])
def test_demo_server_flags_are_checked(flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    one_line(capsys, ["demo-server", *flags], message)
