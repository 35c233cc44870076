"""`gpuetl synth` writes the lake a fetch from the demo server would: same units, same rows, same hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuetl.commands import main
from gpuetl.lake import Manifest, read
from gpuetl.lake.outputs import marker
from gpuetl.synth import MarketConfig, build_market

MARKET = ["--set", "demo.codes=5", "--set", "demo.start=2024-01-04", "--set", "demo.end=2024-01-19"]
DATASETS = "calendar,master,bars_daily,fins_summary,topix,investor_types,margin_alert,earnings_calendar,options_225"


def test_synth_lake_equals_a_demo_fetch_of_the_same_market(tmp_path: Path) -> None:
    synth, fetched = tmp_path / "synth", tmp_path / "fetched"
    assert main(["synth", *MARKET, "--datasets", DATASETS, "--out", str(synth), "--no-progress"]) == 0
    assert main(["fetch", "--demo", *MARKET, "--datasets", DATASETS, "--lake", str(fetched), "--no-progress"]) == 0
    a, b = Manifest.load(synth), Manifest.load(fetched)
    names = DATASETS.split(",")
    for name in names:
        assert sorted(a.units(name)) == sorted(b.units(name)), name
        x, y = read(synth, name), read(fetched, name)
        if name == "master":  # the synthetic master leaves ProdCat (a V2 string) unset: null in the lake, "" on
            # the wire (as the API writes an empty string). Until gpuetl/synth/bars.py fills it the two differ there.
            assert x.column("ProdCat").null_count == x.num_rows and set(y.column("ProdCat").to_pylist()) == {""}
            x, y = x.drop_columns(["ProdCat"]), y.drop_columns(["ProdCat"])
        assert x.equals(y), name
    assert a.digest([n for n in names if n != "master"]) == b.digest([n for n in names if n != "master"])
    market = build_market(MarketConfig(codes=5, start="2024-01-04", end="2024-01-19", seed=7))
    assert read(synth, "bars_daily").num_rows == len(market.table("bars_daily")) > 0


def test_fetch_after_synth_requests_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    assert main(["synth", *MARKET, "--datasets", "bars_daily,topix", "--out", str(lake), "--no-progress"]) == 0
    capsys.readouterr()  # synth's own summary
    assert main(["fetch", "--demo", *MARKET, "--datasets", "bars_daily,topix", "--lake", str(lake), "--json",
                 "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["datasets"]["bars_daily"]["requests"] == 0 and summary["datasets"]["topix"]["requests"] == 0


def test_the_null_market_lake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gpuetl synth --no-signal`: the null market's lake, so marked; the same days and codes, other closes."""
    null, signal = tmp_path / "null", tmp_path / "signal"
    capsys.readouterr()
    assert main(["synth", *MARKET, "--datasets", "bars_daily", "--out", str(null), "--no-signal", "--json",
                 "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["signal"] is False
    assert main(["synth", *MARKET, "--datasets", "bars_daily", "--out", str(signal), "--no-progress"]) == 0
    assert marker(null)["signal"] is False and marker(signal)["signal"] is True
    a, b = read(null, "bars_daily"), read(signal, "bars_daily")
    assert a.select(["Date", "Code"]).equals(b.select(["Date", "Code"])) and not a.column("C").equals(b.column("C"))
    capsys.readouterr()  # a fetch from the demo server (the market with its signal) never adds to the null one
    assert main(["fetch", "--demo", *MARKET, "--datasets", "bars_daily", "--lake", str(null), "--no-progress"]) == 2
    assert "holds the null market (gpuetl synth --no-signal)" in capsys.readouterr().err
