"""`fetch`: pull J-Quants datasets over a date range into the raw lake, resumably.

Order of work: the trading calendar first (from/to chunks, stored in the lake like any dataset), then
every other dataset's missing units, interleaved by date so all datasets advance together, run by
`concurrency` workers that share the client's one rate limiter. Each unit is fetched (pagination
followed), normalised, written and recorded; the manifest is flushed every few seconds and at the end,
so an interrupted run resumes where it stopped and a repeated run requests nothing.

Failures: a dataset the server refuses (plan gate, window, bad request) stops that dataset only; a
refused credential or a server that stays down after all retries stops the run. Either way what
completed stays in the lake and the manifest, and `FetchError` carries the summary.

An empty answer for a day a dense dataset must have rows on (`spec.DatasetSpec.dense`: daily bars on a trading
day, the calendar on any day) is recorded as not final, so the next run asks again: the data was not there
yet, which is not the same as there being none. A window the server's calendar has no day of is refused.
With `verify`, the lake's units in the window are first hashed against the manifest and checked against the
trading calendar; bad ones (and those `redo` names) are fetched again while the manifest still records them, so
the manifest changes only when a replacement is written: a repair that fails leaves the lake as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal

from rich.console import Console

from gpuetl.config import Settings
from gpuetl.fetch.plan import (
    DatasetPlan,
    FetchInputError,
    parse_day,
    plan_dataset,
    select,
    weekdays,
)
from gpuetl.fetch.report import DatasetSummary, FetchProgress, FetchSummary
from gpuetl.jquants import env, normalize, spec
from gpuetl.jquants.client import Client, Record
from gpuetl.jquants.env import Credentials
from gpuetl.jquants.errors import AuthError, JQuantsError, RateLimitError, ServerError, TransportError
from gpuetl.jquants.ratelimit import Clock
from gpuetl.lake import Lake, Unit, UnitRecord, read
from gpuetl.lake.outputs import LakeSource, check_lake_dir, mark_lake
from gpuetl.lake.units import business_days, today_jst
from gpuetl.lake.verify import BadUnit
from gpuetl.lake.verify import verify as verify_lake

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 2.0
# Errors after which no further request can succeed: stop the whole run.
FATAL = (AuthError, RateLimitError, ServerError, TransportError)

__all__ = ["FetchError", "FetchInputError", "FetchSummary", "fetch"]


class FetchError(JQuantsError):
    """The fetch stopped or some datasets failed; completed units are in the lake. `.summary` says what."""

    def __init__(self, message: str, summary: FetchSummary) -> None:
        super().__init__(message)
        self.summary = summary


async def fetch(
    settings: Settings,
    start: dt.date | str,
    end: dt.date | str,
    datasets: Sequence[str] | None = None,
    lake: str | Path | None = None,
    api_url: str | None = None,
    plan: spec.Plan | None = None,
    progress: bool = True,
    *,
    api_version: Literal["v2", "v1"] | None = None,
    credentials: Credentials | None = None,
    clock: Clock | None = None,
    today: dt.date | None = None,
    console: Console | None = None,
    verify: bool = False,
    redo: Collection[tuple[str, str]] = (),
    source: LakeSource = "jquants",
) -> FetchSummary:
    """Fetch `datasets` (default: settings.fetch.datasets) for [start, end] into `lake`.

    `plan` sets pacing and which datasets exist; `credentials` default to the environment / .env;
    `clock` and `today` exist for tests; progress draws on `console` (default stderr). `verify` first checks
    the lake's units in the window (hashes, holes against the trading calendar) and fetches bad ones again; `redo`
    names more (dataset, unit id) to fetch again although the manifest holds them: either is replaced only once its
    new files are written. Raises FetchInputError / PlanError / MissingCredentialsError / OutputError (a lake path
    that cannot be written) before any request for bad input, FetchError (with `.summary`) when the run could not
    finish. `source` says what the lake holds (`synthetic` for the demo market): the two never mix.
    """
    first, last = parse_day(start, "start"), parse_day(end, "end")
    if first > last:
        raise FetchInputError(f"start {first} is after end {last}")
    js = settings.jquants
    plan_ = plan or js.plan
    version = api_version or js.api_version
    chosen, skipped = select(datasets, settings.fetch.datasets, plan_, version)
    creds = credentials or env.credentials(version)
    root = check_lake_dir(lake or settings.paths.lake, "--lake", source)  # a lake of `source`, or a new folder
    lake_ = Lake(root)
    with lake_.exclusive():  # one writer per lake
        mark_lake(root, source)
        lake_.vacuum()  # files a killed run wrote but never recorded, and its temporary files
        client = Client.from_settings(js, creds, api_url=api_url, plan=plan_, api_version=version, clock=clock)
        run = _Run(client, lake_, first, last, today or today_jst(), settings.fetch.range_chunk_days, js.concurrency)
        bad = _bad_units(lake_, chosen, first, last, run.today) if verify else []
        for name, uid in [*redo, *((b.dataset, b.unit) for b in bad)]:
            run.redo.setdefault(name, set()).add(uid)
        summary = FetchSummary(
            start=first.isoformat(), end=last.isoformat(), plan=plan_, api_version=version, api_url=client.api_url,
            lake=str(run.lake.root), requests_per_minute=client.limiter.rpm, skipped=skipped,
            refetched={f"{b.dataset}/{b.unit}": b.problem for b in bad})
        fatal: BaseException | None = None
        with FetchProgress(progress, console) as bar:
            run.bar = bar
            async with client:
                try:
                    await run.go(chosen, explicit=datasets is not None)
                except FATAL as err:
                    fatal = err
                    summary.stopped = str(err)
                finally:
                    await asyncio.to_thread(run.lake.flush)
                    run.fill(summary)
    if fatal is not None or summary.errors:
        raise FetchError(_failure_message(summary, fatal), summary) from fatal
    return summary


def _bad_units(lake: Lake, chosen: list[spec.DatasetSpec], start: dt.date, end: dt.date,
               today: dt.date) -> list[BadUnit]:
    """The units in the window whose files do not hold what the manifest recorded, and the open days with no unit,
    that this run can fetch (a past snapshot cannot be). They stay recorded: the run fetches them again and
    `Lake.write` replaces each one only once its new files are in place."""
    out = []
    report = verify_lake(lake.root, [ds.name for ds in chosen], start, end, manifest=lake.manifest)
    for note in report.notes:
        log.warning("verify: %s", note)
    for b in report.bad:
        if b.unit.startswith("s") and b.unit != Unit.snapshot(today).id:
            log.warning("%s %s: %s; a past snapshot cannot be fetched again", b.dataset, b.unit, b.problem)
            continue
        log.warning("%s %s: %s; fetching it again", b.dataset, b.unit, b.problem)
        out.append(b)
    return out


def _failure_message(summary: FetchSummary, fatal: BaseException | None) -> str:
    parts = [f"stopped: {fatal}"] if fatal else []
    parts += [f"{n}: {e}" for n, e in summary.errors.items() if fatal is None or str(fatal) not in e]
    done = sum(d.done for d in summary.datasets.values())
    return ("fetch incomplete — " + "; ".join(parts)
            + f". {done} unit(s) fetched this run are in the lake and its manifest; run the same command "
            "again to resume.")


class _Run:
    """One fetch's mutable state: plans, per-dataset tallies, the worker pool."""

    def __init__(self, client: Client, lake: Lake, start: dt.date, end: dt.date, today: dt.date,
                 chunk_days: int, workers: int) -> None:
        self.client = client
        self.lake = lake
        self.start = start
        self.end = end
        self.today = today
        self.chunk_days = chunk_days
        self.workers = max(1, workers)
        self.bar = FetchProgress(False)
        self.redo: dict[str, set[str]] = {}  # per dataset, recorded unit ids to fetch again (bad files)
        self.tally: dict[str, DatasetSummary] = {}
        self._t0 = client.clock.monotonic()
        self._first_at: dict[str, float] = {}
        self._last_at: dict[str, float] = {}

    # ------------------------------------------------------------------ stages

    async def go(self, chosen: list[spec.DatasetSpec], *, explicit: bool) -> None:
        cal = spec.get("calendar")
        others = [ds for ds in chosen if ds.name != "calendar"]
        days: dict[str, list[dt.date]] = {}
        if cal in chosen or any(ds.fetch == "date" for ds in others):
            days = await self._calendar(cal, required=explicit and cal in chosen)
        plans = [plan_dataset(ds, self.lake, self.start, self.end, days, self.today, self.chunk_days,
                              self.redo.get(ds.name, set())) for ds in others]
        await self._run(plans)

    async def _calendar(self, cal: spec.DatasetSpec, *, required: bool) -> dict[str, list[dt.date]]:
        """Fetch the calendar's missing chunks, then read the range's trading days from the lake."""
        await self._run([plan_dataset(cal, self.lake, self.start, self.end, {}, self.today, self.chunk_days,
                                      self.redo.get(cal.name, set()))])
        tally = self.tally["calendar"]
        if tally.error:
            log.warning("no trading calendar (%s); walking weekdays instead", tally.error)
            if not required:  # only a means to an end here: the other datasets can still be fetched
                tally.error = None
            return dict.fromkeys(("equity", "derivatives"), weekdays(self.start, self.end))
        await asyncio.to_thread(self.lake.flush)
        rows = await asyncio.to_thread(read, self.lake.root, "calendar", self.start, self.end, ["Date", "HolDiv"])
        if not rows.num_rows:  # the calendar has a row for every day the server knows
            raise FetchInputError(f"the server's trading calendar has no day in {self.start} .. {self.end}: it "
                                  "serves no data for those dates; ask for dates it covers")
        return {kind: business_days(rows, kind, self.start, self.end) for kind in ("equity", "derivatives")}

    async def _run(self, plans: list[DatasetPlan]) -> None:
        """All units of `plans`, oldest first across datasets, on the worker pool."""
        queue: asyncio.Queue[tuple[DatasetPlan, Unit]] = asyncio.Queue()
        order = {p.dataset.name: i for i, p in enumerate(plans)}
        for p in plans:
            t = self.tally.setdefault(p.dataset.name, DatasetSummary(p.dataset.name))
            t.units += len(p.units)
            t.already += p.complete
            self.bar.add(p.dataset.name, len(p.units))
        work = [(p, u) for p in plans for u in p.units]
        for item in sorted(work, key=lambda pu: (pu[1].start, order[pu[0].dataset.name])):
            queue.put_nowait(item)
        if queue.empty():
            return
        flusher = asyncio.create_task(self._flush_periodically())
        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(self.workers, queue.qsize())):
                    tg.create_task(self._worker(queue))
        except BaseExceptionGroup as group:  # the first worker failure is the story; the rest were cancelled
            raise group.exceptions[0] from None
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher

    async def _worker(self, queue: asyncio.Queue[tuple[DatasetPlan, Unit]]) -> None:
        while not queue.empty():
            plan, unit = queue.get_nowait()
            tally = self.tally[plan.dataset.name]
            if tally.error:
                continue
            try:
                await self._unit(plan, unit)
            except FATAL:
                raise
            except JQuantsError as err:  # this dataset cannot go on; the others can
                if not tally.error:
                    tally.error = str(err)
                    log.error("%s", err)
                    self.bar.fail(plan.dataset.name, str(err))

    async def _unit(self, plan: DatasetPlan, unit: Unit) -> None:
        ds = plan.dataset
        self._first_at.setdefault(ds.name, self.client.clock.monotonic())
        records: list[Record]
        if unit.kind == "date":
            records = await self.client.day_records(ds, unit.start)
        elif unit.kind == "range":
            records = await self.client.range_records(ds, unit.start, unit.end)
        else:
            records = await self.client.records(ds, {})
        rec = await asyncio.to_thread(self._write, plan, unit, records)
        self._last_at[ds.name] = self.client.clock.monotonic()
        tally = self.tally[ds.name]
        tally.done += 1
        tally.rows += rec.rows
        tally.empty += rec.rows == 0 and not rec.final and plan.is_final(unit)
        self.bar.advance(ds.name, tally.rows)
        self._totals()

    def _write(self, plan: DatasetPlan, unit: Unit, records: list[Record]) -> UnitRecord:
        table = normalize.to_table(plan.dataset, records)
        # nothing for a day a dense dataset has rows on: not published yet (or lost), so ask again next run
        final = plan.is_final(unit) and (table.num_rows > 0 or not plan.dataset.has_rows_on(unit.start.isoformat()))
        return self.lake.write(plan.dataset, unit, table, final=final)

    async def _flush_periodically(self) -> None:
        """Record progress every few seconds; a big manifest is flushed less often (at most ~5 % of the time)."""
        wait = FLUSH_EVERY_S
        while True:
            await asyncio.sleep(wait)
            t0 = time.monotonic()
            await asyncio.to_thread(self.lake.flush)
            wait = max(FLUSH_EVERY_S, 20 * (time.monotonic() - t0))
            self._totals()

    # ------------------------------------------------------------------ reporting

    def _totals(self) -> None:
        stats = self.client.stats.values()
        self.bar.totals(sum(s.requests for s in stats), sum(t.rows for t in self.tally.values()),
                        self.client.limiter.pace(), sum(s.rate_limited for s in stats),
                        sum(s.retries for s in stats))

    def fill(self, summary: FetchSummary) -> None:
        for name, t in self.tally.items():
            s = self.client.stats.get(name)
            if s is not None:
                t.requests, t.retries, t.rate_limited, t.transient = s.requests, s.retries, s.rate_limited, s.transient
            if name in self._first_at:
                t.seconds = round(self._last_at.get(name, self._first_at[name]) - self._first_at[name], 3)
            summary.datasets[name] = dataclasses.replace(t)
        auth = self.client.stats.get("auth")
        summary.auth_requests = auth.requests if auth else 0
        summary.seconds = round(self.client.clock.monotonic() - self._t0, 3)
        summary.pace = round(self.client.limiter.pace(), 3)
        summary.cooldowns = self.client.cooldowns
        summary.manifest_hash = self.lake.manifest.digest()

