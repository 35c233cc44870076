"""`gpuetl fetch` as a command: --demo end to end (in-process fake server + synthetic market), exit codes."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest

from gpuetl.commands.common import common_options
from gpuetl.commands.fetch import add_parser
from gpuetl.config import load_settings
from gpuetl.jquants import env
from gpuetl.lake import read

DEMO = ["demo.codes=4", "demo.start=2024-01-04", "demo.end=2024-01-31"]


def run_cli(argv: list[str], overrides: list[str] = DEMO) -> int:
    parser = argparse.ArgumentParser(prog="gpuetl")
    add_parser(parser.add_subparsers(dest="command", required=True), common_options())
    args = parser.parse_args(argv)
    return int(args.run(args, load_settings(overrides=overrides)))


def test_demo_fetch_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    code = run_cli(["fetch", "--demo", "--start", "2024-01-22", "--end", "2024-01-26", "--datasets",
                    "bars_daily,earnings_calendar", "--lake", str(lake), "--json", "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["datasets"]["bars_daily"]["units"] == 5 and summary["rows"] > 0
    assert summary["plan"] == "premium" and summary["api_url"].startswith("http://127.0.0.1:")
    assert read(lake, "bars_daily").num_rows == summary["datasets"]["bars_daily"]["rows"]
    assert read(lake, "calendar").num_rows == 5  # the calendar came first, stored like any dataset


def test_cli_errors_exit_2_with_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(env.API_KEY, raising=False)
    monkeypatch.chdir(tmp_path)
    assert run_cli(["fetch", "--start", "2024-01-04", "--end", "2024-01-05", "--lake", str(tmp_path)]) == 2
    assert "JQUANTS_API_KEY" in capsys.readouterr().err
    assert run_cli(["fetch", "--start", "2024-02-04", "--end", "2024-01-05", "--demo"]) == 2
    assert "after end" in capsys.readouterr().err
    assert run_cli(["fetch", "--end", "2024-01-05"]) == 2
    assert "--start is required" in capsys.readouterr().err


def test_the_summary_goes_to_stdout_progress_and_logs_to_stderr(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(["fetch", "--demo", "--start", "2024-01-22", "--end", "2024-01-26", "--datasets", "bars_daily",
                    "--lake", str(tmp_path / "lake")])
    out, err = capsys.readouterr()
    assert code == 0 and "fetch 2024-01-22 .. 2024-01-26" in out and "bars_daily" in out and "demo:" not in out
    assert "demo: building a synthetic market" in err
    assert re.search(r"^fetch: \d+/\d+ units, [\d,]+ rows, \d+ requests", err, re.M)  # progress, where no terminal


def test_warmup_for_fetches_the_history_the_dataset_warm_up_needs() -> None:
    """`fetch --warmup-for CONFIG` starts early enough that the build, asked for START, has its warm-up (the
    longest declared lookback, in business days of the TSE calendar with its holidays) before START."""
    from gpuetl.commands.fetch import warmup_start
    from gpuetl.dataset.build import warmup_days
    from gpuetl.dataset.config import load_dataset_config
    from gpuetl.synth.calendar import build_calendar

    need = warmup_days(load_dataset_config("configs/dataset/default.yaml"))
    open_days = build_calendar(2013, 2017).business_days("equity")
    for start in ("2016-01-04", "2015-05-07", "2016-08-15"):
        first = np.datetime64(warmup_start(start, "configs/dataset/default.yaml"))
        between = ((open_days >= first) & (open_days < np.datetime64(start))).sum()
        assert need <= between <= need + 40, (start, between)
