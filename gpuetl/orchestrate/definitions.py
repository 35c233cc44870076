"""The Dagster `Definitions`: the daily assets on Tokyo-day partitions, a job over them, and a schedule that runs
the day's partition on weekdays at 18:00 Tokyo time (after the 15:30 close and J-Quants' evening data), skipping
days the lake's trading calendar marks closed. `defs` is what `dagster dev -m gpuetl.orchestrate` loads; the
partitions span the settings' `orchestrate.start` .. `orchestrate.end` (configs/gpuetl.yaml: the demo market's last
year by default; end null: up to today)."""

# no `from __future__ import annotations`: Dagster reads the context and resource annotations at run time

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from gpuetl.config import load_settings
from gpuetl.lake.manifest import FILENAME as MANIFEST
from gpuetl.lake.reader import read
from gpuetl.lake.units import business_days
from gpuetl.orchestrate.assets import daily_assets
from gpuetl.orchestrate.resources import GpuetlResource

TOKYO = "Asia/Tokyo"
AFTER_THE_CLOSE = "0 18 * * 1-5"  # weekdays, 18:00 in Tokyo
JOB = "gpuetl_daily"


def daily_partitions(start: str, end: str | None = None) -> dg.DailyPartitionsDefinition:
    """Tokyo days from `start` up to `end` (excluded), or up to today's (its evening run scores it)."""
    return dg.DailyPartitionsDefinition(start_date=start, end_date=end, timezone=TOKYO, end_offset=1)


def closed_day(gpuetl: GpuetlResource, day: str) -> bool:
    """Whether the lake's trading calendar (published a year ahead) marks `day` closed for equities; False when the
    lake has no calendar row for it."""
    lake = gpuetl.lake_path(gpuetl.load())
    if not (lake / MANIFEST).is_file():
        return False
    table = read(lake, "calendar", day, day, ["Date", "HolDiv"])
    return table.num_rows > 0 and not business_days(table, "equity")


def make_definitions(start: str, end: str | None, resource: GpuetlResource | None = None) -> dg.Definitions:
    """The assets, the job and the schedule on the days `start` .. `end`, with `resource` (default: the demo's)."""
    partitions = daily_partitions(start, end)
    assets = daily_assets(partitions)
    job = dg.define_asset_job(JOB, selection=dg.AssetSelection.assets(*assets),
                              description="fetch, build, graph and rank the day")

    @dg.schedule(job=job, cron_schedule=AFTER_THE_CLOSE, execution_timezone=TOKYO,
                 description="the day's partition after the Tokyo close, on the days the TSE trades")
    def after_the_close(context: dg.ScheduleEvaluationContext,
                        gpuetl: GpuetlResource) -> dg.RunRequest | dg.SkipReason:
        when = context.scheduled_execution_time or dt.datetime.now(ZoneInfo(TOKYO))
        day = when.astimezone(ZoneInfo(TOKYO)).date().isoformat()
        if not partitions.has_partition_key(day):
            return dg.SkipReason(f"{day} is not one of the partitions ({start} .. {end or 'today'})")
        if closed_day(gpuetl, day):
            return dg.SkipReason(f"the TSE is closed on {day} (the lake's trading calendar)")
        return dg.RunRequest(run_key=day, partition_key=day)

    return dg.Definitions(assets=assets, jobs=[job], schedules=[after_the_close],
                          resources={"gpuetl": resource or GpuetlResource()})


_span = load_settings().orchestrate
defs = make_definitions(_span.start, _span.end)
