"""The Dagster assets (gpuetl/orchestrate) make what the commands make: on a small demo market, materialising two
days' lake, dataset (built, then updated), graphs and predictions in-process gives the same lake units, the same
dataset and graph files bit for bit and the same rankings as `gpuetl fetch --demo`, `build`, `graph` and `predict`
run by hand through the last day; the schedule runs the day after the close and skips the days the TSE is closed;
a step fails in one line."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

pytest.importorskip("dagster", reason="dagster is not installed: pip install -e '.[orchestrate]' (make setup "
                                      "installs it)")
pytest.importorskip("xgboost", reason="the predictions need the train extra")

import dagster as dg

from gpuetl.commands import main
from gpuetl.graphs.io import dataset_digest, graphs_digest
from gpuetl.lake.reader import manifest_hash
from gpuetl.orchestrate import GpuetlResource, daily_assets, defs, make_definitions
from gpuetl.orchestrate.definitions import JOB, daily_partitions
from tests.support.lakes import SMALL
from tests.support.train import TINY_XGB

RAW = ["calendar", "master", "bars_daily", "topix"]
DAY, EVE = "2024-06-28", "2024-06-27"  # the demo market's last day, a Friday, and the day before
GRAPH = ["features.pagerank=false", "features.louvain=false", "window=20"]
XGB = [*TINY_XGB, "data.horizons=[1, 5]", "splits.embargo_days=5"]  # the dataset's horizons


def files(root: Path, under: str = "") -> dict[str, list[str]]:
    """Every file under `root / under` but the markers and the metadata written per run, by content hash; the files
    Arrow names at random in a partition folder (`<uuid>-0.parquet`) by their folder."""
    out: dict[str, list[str]] = {}
    for p in sorted((root / under).rglob("*")):
        if p.is_file() and p.name not in (".gpuetl-output.json", "_manifest.json", "metadata.json", "graphs.json",
                                          "prediction.json"):
            name = re.sub(r"^[0-9a-f]{32}-\d+\.parquet$", "*.parquet", p.relative_to(root).as_posix().split("/")[-1])
            key = (p.parent.relative_to(root) / name).as_posix()
            out[key] = sorted([*out.get(key, []), hashlib.sha256(p.read_bytes()).hexdigest()])
    return out


def sets(flag: str, values: list[str]) -> list[str]:
    return [a for v in values for a in (flag, v)]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The day by hand (the commands) and by Dagster (the assets), from one demo market; the baseline run that
    ranks is trained on the hand-made dataset."""
    root = tmp_path_factory.mktemp("dagster")
    overrides = ["backend=cpu", "demo.codes=12", "demo.start=2023-01-04", f"demo.end={DAY}", f"paths.data={root}"]
    s = sets("--set", overrides)
    hand, run = root / "hand", root / "runs" / "xgb"
    for day in (EVE, DAY):  # evening by evening, as the assets fetch
        assert main(["fetch", *s, "--demo", "--datasets", ",".join(RAW), "--lake", str(hand / "lake"), "--end", day,
                     "--no-progress"]) == 0
    assert main(["build", *s, "--lake", str(hand / "lake"), "--out", str(hand / "ds"),
                 *sets("--config-set", [*SMALL, f"end={DAY}"]), "--no-progress"]) == 0
    assert main(["graph", *s, "--dataset", str(hand / "ds"), "--lake", str(hand / "lake"),
                 *sets("--config-set", GRAPH), "--no-progress"]) == 0
    assert main(["baseline", *s, "--dataset", str(hand / "ds"), "--out", str(run), *sets("--config-set", XGB),
                 "--no-progress"]) == 0
    for day, out in ((DAY, "pred"), (EVE, "pred-eve")):
        assert main(["predict", *s, "--run", str(run), "--dataset", str(hand / "ds"), "--date", day,
                     "--out", str(hand / out), "--no-progress"]) == 0
    auto = root / "dagster"
    resource = GpuetlResource(overrides=overrides, demo=True, lake=str(auto / "lake"), datasets=RAW,
                              dataset=str(auto / "ds"), dataset_overrides=SMALL, graph_overrides=GRAPH, run=str(run),
                              predictions=str(auto / "pred"))
    assets = daily_assets(daily_partitions("2024-06-01", "2024-07-01"))
    actions = []
    for day in (EVE, DAY):  # the dataset built through the eve, then updated by the day
        result = dg.materialize(assets, partition_key=day, resources={"gpuetl": resource})
        assert result.success
        actions += [result.asset_materializations_for_node(n)[0].metadata["action"].value
                    for n in ("dataset", "graphs")]
    assert actions == ["built", "made", "extended", "current"]  # the update extended the graphs too
    return {"hand": hand, "auto": auto, "run": run, "root": root, "resource": resource}  # type: ignore[dict-item]


def test_the_assets_make_what_the_commands_make(made: dict[str, Path]) -> None:
    hand, auto = made["hand"], made["auto"]
    assert manifest_hash(auto / "lake") == manifest_hash(hand / "lake")
    assert files(auto / "lake") == files(hand / "lake")
    assert dataset_digest(auto / "ds") == dataset_digest(hand / "ds")  # what the build made, paths and times aside
    data = files(auto / "ds", "data")
    assert data and data == files(hand / "ds", "data")  # bit for bit
    assert graphs_digest(auto / "ds" / "graphs") == graphs_digest(hand / "ds" / "graphs")
    graphs = files(auto / "ds", "graphs")
    assert "graphs/edges" in " ".join(graphs) and graphs == files(hand / "ds", "graphs")
    ranking = f"predictions-{DAY}.parquet"
    assert files(auto / "pred" / DAY) == files(hand / "pred") == {ranking: files(hand / "pred")[ranking]}  # a day's
    a, b = (json.loads((p / "prediction.json").read_text()) for p in (auto / "pred" / DAY, hand / "pred"))
    assert a.pop("dataset") == str((auto / "ds").resolve()) and b.pop("dataset") == str((hand / "ds").resolve())
    rows = pd.read_parquet(hand / "ds" / "data", columns=["Code", "Date"])
    listed = rows.loc[rows["Date"] == pd.Timestamp(DAY), "Code"]
    assert a == b and a["date"] == DAY and a["codes"] + a["left_out_short_history"] == len(listed) > 8
    # the eve's ranking, made on the dataset as it was that evening, is the one the dataset through the day gives
    assert files(auto / "pred" / EVE) == files(hand / "pred-eve")


def test_the_schedule_runs_the_day_after_the_close_on_trading_days(made: dict[str, Path]) -> None:
    resource = made["resource"]
    found = make_definitions("2024-01-04", "2024-07-01", resource)
    schedule = found.resolve_schedule_def("after_the_close")
    assert schedule.cron_schedule == "0 18 * * 1-5" and schedule.execution_timezone == "Asia/Tokyo"

    def evaluate(day: str) -> list[object]:
        when = dt.datetime.fromisoformat(f"{day}T18:00:00").replace(tzinfo=ZoneInfo("Asia/Tokyo"))
        context = dg.build_schedule_context(scheduled_execution_time=when, resources={"gpuetl": resource},
                                            repository_def=found.get_repository_def())
        data = schedule.evaluate_tick(context)
        return [*(data.run_requests or []), *([data.skip_message] if data.skip_message else [])]

    [request] = evaluate(DAY)
    assert isinstance(request, dg.RunRequest) and request.partition_key == DAY
    [skipped] = evaluate("2024-05-03")  # Constitution Memorial Day, a Friday
    assert "the TSE is closed on 2024-05-03" in str(skipped)
    [outside] = evaluate("2024-07-05")
    assert "is not one of the partitions" in str(outside)


def test_a_step_fails_in_one_line(made: dict[str, Path]) -> None:
    assets = daily_assets(daily_partitions("2024-06-01", "2024-07-01"))
    result = dg.materialize(assets, selection=["predictions"], partition_key="2024-06-29",  # a Saturday
                            resources={"gpuetl": made["resource"]}, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "gpuetl predict: --date 2024-06-29 is not a day of" in message, message


def test_dagster_dev_loads_the_definitions() -> None:
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def(JOB)
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "lake", "dataset", "graphs", "predictions"}
