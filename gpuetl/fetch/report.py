"""What a fetch reports: the summary (dataclass, JSON, rich table) and live progress.

The summary is the contract tests read (requests, retries, 429s, rows per dataset, seconds); the
progress display is for people watching a multi-hour pull and is entirely optional.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text


@dataclasses.dataclass
class DatasetSummary:
    dataset: str
    units: int = 0  # units this run had to fetch
    done: int = 0  # of which completed and recorded
    already: int = 0  # units in the window the lake already held (not requested)
    rows: int = 0
    requests: int = 0  # HTTP requests, retries included
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    transient: int = 0  # 5xx, timeouts, dropped connections, broken bodies
    empty: int = 0  # units answered empty on days the dataset has rows: kept not final, fetched next run
    seconds: float = 0.0
    error: str | None = None


@dataclasses.dataclass
class FetchSummary:
    start: str
    end: str
    plan: str
    api_version: str
    api_url: str
    lake: str
    requests_per_minute: float  # the pacing limit
    datasets: dict[str, DatasetSummary] = dataclasses.field(default_factory=dict)
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)  # dataset -> why it was not fetched
    seconds: float = 0.0
    pace: float = 0.0  # requests per second between the first and last request (the limiter's pacing)
    cooldowns: int = 0
    auth_requests: int = 0
    manifest_hash: str = ""
    stopped: str | None = None  # why the whole run stopped early (credentials refused, server down)
    refetched: dict[str, str] = dataclasses.field(default_factory=dict)  # "dataset/unit" -> why (--verify)

    @property
    def requests(self) -> int:
        return sum(d.requests for d in self.datasets.values()) + self.auth_requests

    @property
    def data_requests(self) -> int:
        return sum(d.requests for d in self.datasets.values())

    @property
    def retries(self) -> int:
        return sum(d.retries for d in self.datasets.values())

    @property
    def rate_limited(self) -> int:
        return sum(d.rate_limited for d in self.datasets.values())

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.datasets.values())

    @property
    def rate(self) -> float:
        """Requests per second over the run."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def errors(self) -> dict[str, str]:
        return {n: d.error for n, d in self.datasets.items() if d.error}

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(requests=self.requests, data_requests=self.data_requests, retries=self.retries,
                   rate_limited=self.rate_limited, rows=self.rows, rate=round(self.rate, 3))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def render_summary(summary: FetchSummary, console: Console) -> None:
    table = Table(title=f"fetch {summary.start} .. {summary.end} ({summary.plan}, {summary.api_version})")
    for col in ("dataset", "units", "had", "rows", "req", "retry", "429", "s", "status"):
        table.add_column(col, justify="left" if col in ("dataset", "status") else "right")
    for d in summary.datasets.values():
        status = f"[red]{d.error}[/red]" if d.error else ("ok" if d.done == d.units else f"{d.done}/{d.units}")
        if d.empty:
            status += f", [yellow]{d.empty} empty: asked again next run[/yellow]"
        table.add_row(d.dataset, str(d.units), str(d.already), f"{d.rows:,}", str(d.requests), str(d.retries),
                      str(d.rate_limited), f"{d.seconds:.1f}", status)
    for name, why in summary.skipped.items():
        table.add_row(name, "-", "-", "-", "-", "-", "-", "-", f"[yellow]skipped: {why}[/yellow]")
    table.add_section()
    table.add_row("total", str(sum(d.units for d in summary.datasets.values())),
                  str(sum(d.already for d in summary.datasets.values())), f"{summary.rows:,}",
                  str(summary.requests), str(summary.retries), str(summary.rate_limited), f"{summary.seconds:.1f}", "")
    console.print(table)
    if summary.stopped:
        console.print(f"[red]stopped early: {summary.stopped}[/red]")
    if summary.refetched:
        console.print(f"verify: {len(summary.refetched)} unit(s) were bad or missing and were fetched again")
    console.print(f"units: to fetch this run; had: already in the lake. Pace {summary.pace:.2f} req/s "
                  f"(pacing limit {summary.requests_per_minute / 60:.2f} req/s = {summary.requests_per_minute:g}/min)"
                  + (f"; {summary.cooldowns} cool-down(s) after repeated 429s" if summary.cooldowns else ""))


class _Progress(Progress):
    """Progress bars under one header line of run totals."""

    header = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield Text.from_markup(self.header)
        yield self.make_tasks_table(self.tasks)


class FetchProgress:
    """Live bars per dataset (units done, rows) under a totals line on a terminal; elsewhere (a log, CI) a
    totals line every PLAIN_EVERY_S seconds; a no-op when disabled."""

    PLAIN_EVERY_S = 10.0

    def __init__(self, enabled: bool, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self._progress = _Progress(
            TextColumn("{task.description:<18}"), BarColumn(bar_width=20), MofNCompleteColumn(),
            TextColumn("{task.fields[rows]:>10,} rows"), TimeElapsedColumn(),
            console=self.console, transient=False, disable=not self.live)
        self._tasks: dict[str, TaskID] = {}
        self._next_line = 0.0

    def __enter__(self) -> FetchProgress:
        if self.live:
            self._progress.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self.live:
            self._progress.stop()

    def add(self, dataset: str, units: int) -> None:
        if self.enabled and dataset not in self._tasks:
            self._tasks[dataset] = self._progress.add_task(dataset, total=units, rows=0)

    def advance(self, dataset: str, rows_total: int) -> None:
        if self.enabled:
            self._progress.update(self._tasks[dataset], advance=1, rows=rows_total)

    def fail(self, dataset: str, message: str) -> None:
        if self.enabled and dataset in self._tasks:
            self._progress.update(self._tasks[dataset], description=f"[red]{dataset} (failed)[/red]")

    def totals(self, requests: int, rows: int, pace: float, rate_limited: int, retries: int) -> None:
        if self.live:
            self._progress.header = (f"[bold]{requests:,}[/bold] requests  {pace:.2f} req/s  {rows:,} rows  "
                                     f"{retries} retries  {rate_limited} x 429")
            self._progress.refresh()
        elif self.enabled and time.monotonic() >= self._next_line:
            self._next_line = time.monotonic() + self.PLAIN_EVERY_S
            tasks = self._progress.tasks
            done, total = sum(int(t.completed) for t in tasks), sum(int(t.total or 0) for t in tasks)
            self.console.print(f"fetch: {done:,}/{total:,} units, {rows:,} rows, {requests:,} requests "
                               f"({pace:.2f}/s), {retries} retries, {rate_limited} x 429", markup=False,
                               highlight=False)
