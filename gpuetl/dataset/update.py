"""`gpuetl update`: a built dataset (and its graphs) brought to what the lake holds now, rewriting only what changed,
into the same files a full build over the longer span makes.

What changes, and why nothing else does. A value dated t depends on raw data dated at or before t only (prefix
invariance, tests/test_leakage.py), except the targets, which read the code's next `max(horizons) + 1` rows and
TOPIX's next dates. So when the data from day d on changes (new days after the last date, or a month of raw units
that J-Quants rewrote since the build: `gpuetl.dataset.record`), the rows that can change are those from `since`:
each code's `max(horizons) + 1` rows before d (counting the code's own rows, as the targets do) and the same
number of business days before d. Only the years from `since` are written again; every earlier year's file is kept
(a hard link into the new folder), with its counts from metadata.json.

The years written are computed exactly as the full build computes them: every code part over the same history from
the lake (EWM-type features are seeded from a code's first row, so they cannot start later), the time-series
z-scores fitted over every date, the year stage on the years from `since` only (and the spill of the year before,
which its day ops read). A changed config, a gpuetl of another version, a lake whose history before the dataset
changed or whose enrichment inputs appeared or went: the whole dataset is built again, saying so.

The folder is replaced whole (`replaced_dir`): data, metadata.json and graphs/ at once, graphs.json's
`dataset_hash` the new metadata's digest, so a reader never sees the new rows with old graphs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpuetl.backend import Backend
from gpuetl.cluster import InProcess, Runner
from gpuetl.config import ConfigError, to_dict
from gpuetl.dataset.build import (
    DEFAULT_DAY_ROWS,
    DEFAULT_PARTITION_ROWS,
    BuildResult,
    finish,
    plan_build,
    read_datasets,
    run_plan,
)
from gpuetl.dataset.config import DatasetConfig
from gpuetl.dataset.days import YearResult
from gpuetl.dataset.plan import BuildError, BuildPlan
from gpuetl.dataset.record import day, first_change, iso, kept_year
from gpuetl.dates import civil_from_days
from gpuetl.graphs.extend import GraphUpdate, extend_graphs, link
from gpuetl.graphs.io import StaleGraphsError, check_graphs
from gpuetl.lake.manifest import Manifest
from gpuetl.lake.outputs import Input, check_output_dir, claimed, replaced_dir
from gpuetl.lake.reader import read_raw
from gpuetl.version import __version__

log = logging.getLogger(__name__)


class UpdateError(RuntimeError):
    """The dataset cannot be updated from this lake (none there, a lake that ends before it); says what to run."""


@dataclasses.dataclass
class UpdateResult:
    out: Path
    action: str  # "current" (nothing to do), "extended" (the rows from `since` on), "rebuilt" (every row)
    reason: str  # why, as said on stderr
    since: str | None  # the first date written again
    last_date: str
    new_dates: int  # business days added
    years_written: list[int]
    years_kept: list[int]
    graphs: str  # "extended", "recomputed", "stale" (kept, as they were), "none"
    build: BuildResult | None
    graph: GraphUpdate | None
    seconds: float


def update_dataset(backend: Backend, cfg: DatasetConfig, lake: str | Path, dataset: str | Path, *,
                   runner: Runner | None = None, progress: bool = True,
                   partition_rows: int = DEFAULT_PARTITION_ROWS, read: Sequence[Input] = (),
                   day_rows: int = DEFAULT_DAY_ROWS,
                   say: Callable[[str], None] = log.warning) -> UpdateResult:
    """Bring the dataset at `dataset` (built by `gpuetl build`) to `cfg` over what `lake` holds now; `say` gets the
    one line that says what is recomputed and why. The dataset folder is locked for the whole update."""
    lake = Path(lake).absolute()
    read = [Input(lake, "the lake"), *read]
    out = check_output_dir(dataset, "dataset", overwrite=True, flag="--dataset", read=read)
    with claimed(out, "--dataset"):
        return _update(backend, cfg, lake, out, runner or InProcess(backend, progress), partition_rows, read, say,
                       day_rows)


def _update(backend: Backend, cfg: DatasetConfig, lake: Path, out: Path, runner: Runner, partition_rows: int,
            read: Sequence[Input], say: Callable[[str], None], day_rows: int) -> UpdateResult:
    clock = time.perf_counter()
    old = old_metadata(out)
    manifest = Manifest.load(lake)
    plan = plan_build(backend, cfg, lake, manifest, partition_rows, runner, day_rows)
    last = int(plan.dates[-1])
    whole = why_whole(old, cfg, plan)
    if whole:
        since, new_dates, reason = plan.first_day, 0, f"{whole}: rebuilding it whole"
    else:
        was = day(old["inputs"]["last_date"])
        if last < was:
            raise (ConfigError(f"end: {cfg.end} is before the dataset's last date {iso(was)}: update only adds days "
                               "(rebuild a shorter span with `gpuetl build --overwrite`)", "end") if cfg.end else
                   UpdateError(f"the lake at {lake} ends at {iso(last)}, before the dataset's last date {iso(was)}: "
                               "fetch the missing days (`gpuetl lake verify --repair`) or rebuild"))
        found = _changes(plan, manifest, old, was)
        if found is None:
            reason = f"up to date: the lake has no day after {iso(was)} and no raw data changed since the build"
            say(reason)
            return UpdateResult(out, "current", reason, None, iso(was), 0, [], [], _graphs_state(out, None), None,
                                None, round(time.perf_counter() - clock, 3))
        first, new_dates, what = found
        since = max(_reach_back(backend, manifest, plan, out, first), plan.first_day)
        reason = f"{what}: recomputing the rows from {iso(since)}"
    return _write(backend, plan, manifest, old, out, runner, read, say, since, reason, new_dates, bool(whole),
                  clock)


def _write(backend: Backend, plan: BuildPlan, manifest: Manifest, old: dict[str, Any], out: Path, runner: Runner,
           read: Sequence[Input], say: Callable[[str], None], since: int, reason: str, new_dates: int, whole: bool,
           clock: float) -> UpdateResult:
    every = plan.years()
    year = int(civil_from_days(np, np.asarray([since]))[0][0])
    plan = dataclasses.replace(plan, years_from=every[0] if whole else year)
    kept = [y for y in every if y < plan.years_from]
    say(f"{reason} (years {_span(plan.years())} written" + (f", {_span(kept)} kept)" if kept else ")"))
    graphs = _graphs_state(out, say)
    with replaced_dir(out, "dataset", overwrite=True, flag="--dataset", read=read) as tmp:
        parts, written = run_plan(backend, plan, runner, tmp)
        same = [_keep_year(backend, plan, old, out, tmp, y) for y in kept]
        build = finish(backend, manifest, plan, runner, parts, [*written, *same], tmp, out)
        graph = None
        if graphs == "fresh":
            graph = extend_graphs(backend, out / "graphs", tmp, plan.lake, None if whole else since, tmp / "graphs",
                                  runner, say)
            graphs = graph.action
    return UpdateResult(out, "rebuilt" if whole else "extended", reason, iso(since), iso(int(plan.dates[-1])),
                        new_dates, plan.years(), kept, graphs, build, graph, round(time.perf_counter() - clock, 3))


def _span(years: list[int]) -> str:
    """Years as text: "2024", "2015-2023" (a run), else listed."""
    if len(years) > 2 and years == list(range(years[0], years[-1] + 1)):
        return f"{years[0]}-{years[-1]}"
    return ", ".join(map(str, years))


def old_metadata(dataset: Path) -> dict[str, Any]:
    """The metadata.json of the dataset being updated (UpdateError when there is none)."""
    try:
        meta: dict[str, Any] = json.loads((dataset / "metadata.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UpdateError(f"no dataset at {dataset}: build it first with `gpuetl build`") from None
    return meta


def why_whole(old: dict[str, Any], cfg: DatasetConfig, plan: BuildPlan) -> str | None:
    """Why the dataset must be built whole again (one phrase), or None when it can be extended."""
    if "inputs" not in old or "years" not in old:
        return "the dataset was built before `gpuetl update` kept its record of what the build read"
    if old.get("gpuetl") != __version__:
        return f"the dataset was built by gpuetl {old.get('gpuetl')}, this is {__version__}"
    now = json.loads(json.dumps(to_dict(cfg), default=str))
    keys = differences({k: v for k, v in old.get("config", {}).items() if k != "end"},
                       {k: v for k, v in now.items() if k != "end"})
    if keys:
        return f"the dataset config differs from the one it was built with ({', '.join(keys[:4])})"
    inputs = old["inputs"]
    if (inputs["first_date"], inputs["read_from"]) != (iso(plan.first_day), iso(plan.read_from)):
        return (f"the lake's history before the dataset changed (first date {iso(plan.first_day)}, read from "
                f"{iso(plan.read_from)}; was {inputs['first_date']}, {inputs['read_from']})")
    if old.get("enrich") != plan.enrich_status:
        groups = sorted(g for g in {**old.get("enrich", {}), **plan.enrich_status}
                        if old.get("enrich", {}).get(g) != plan.enrich_status.get(g))
        return f"the enrichment the lake allows changed ({', '.join(groups)})"
    return None


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """The key paths where two JSON values differ (a whole list counts as one key)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for key in sorted(set(a) | set(b), key=str)
                for k in differences(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))]
    return [] if a == b else [path or "config"]


def _changes(plan: BuildPlan, manifest: Manifest, old: dict[str, Any], was: int) -> tuple[int, int, str] | None:
    """(the first day whose data changed, the days added, what changed), or None when nothing did."""
    added = plan.dates[plan.dates > was]
    found = first_change(old["inputs"], manifest, read_datasets(plan))
    if not len(added) and found is None:
        return None
    what = []
    if len(added):
        what.append(f"{len(added)} new day(s) ({iso(int(added[0]))} .. {iso(int(added[-1]))})")
    if found is not None:
        what.append(f"the lake's {found[1]} changed since the build (raw data rewritten from {iso(found[0])} on)")
    firsts = ([int(added[0])] if len(added) else []) + ([found[0]] if found is not None else [])
    return min(firsts), len(added), " and ".join(what)


def _reach_back(backend: Backend, manifest: Manifest, plan: BuildPlan, dataset: Path, first: int) -> int:
    """The first date whose row can change when the data from day `first` on changes: the targets' reach
    (`max(horizons) + 1` rows) back from `first` in every code with a row from `first` on (in the lake now, or in
    the dataset as it was: a row the lake no longer has), and as many business days back (TOPIX's forward
    returns)."""
    reach = max(plan.cfg.targets.horizons) + 1
    xp, xdf = backend.xp, backend.xdf
    keys = read_raw(backend, manifest, "bars_daily", ["Code", "Date"], BuildError)
    days = backend.days(keys["Date"])
    inside = (days >= plan.read_from) & (days <= int(plan.dates[-1]))
    later = keys["Code"].iloc[xp.flatnonzero(inside & (days >= first))]
    files = [str(f) for f in sorted((dataset / "data").glob("year=*/*.parquet"))
             if int(f.parent.name[5:]) >= int(civil_from_days(np, np.asarray([first]))[0][0])]
    if files:
        rows = backend.read_parquet(files, ["Code", "Date"])
        later = xdf.concat([later, rows["Code"].iloc[xp.flatnonzero(backend.days(rows["Date"]) >= first)]
                            .astype(later.dtype)], ignore_index=True)
    before = xp.flatnonzero(inside & (days < first) & backend.to_array(keys["Code"].isin(later.unique())
                                                                      .astype("float64")).astype(bool))
    ids, _ = keys["Code"].iloc[before].factorize()
    code, when = xp.asarray(ids), days[before]
    order = xp.lexsort(xp.stack([-when, code]))  # by code, then latest first
    code, when = code[order], when[order]
    first_row = xp.concatenate([xp.ones(min(len(code), 1), dtype=bool), code[1:] != code[:-1]])
    rank = xp.arange(len(code)) - xp.flatnonzero(first_row)[xp.cumsum(first_row) - 1]  # the row's place in its code
    near = when[rank < reach]  # each code's last `reach` rows before `first`
    by_codes = int(near.min()) if len(near) else first  # host-ok: one date
    at = int(np.searchsorted(plan.dates, first))
    return min(by_codes, int(plan.dates[max(at - reach, 0)]), first)


def _keep_year(backend: Backend, plan: BuildPlan, old: dict[str, Any], dataset: Path, tmp: Path,
               year: int) -> YearResult:
    """A year none of whose rows changed: its file hard-linked from the dataset as it was, its counts from its
    record (and the codes its file holds)."""
    src, dst = dataset / "data" / f"year={year}", tmp / "data" / f"year={year}"
    record = old["years"].get(str(year))
    if record is None or not src.is_dir():
        raise UpdateError(f"the dataset at {dataset} lacks its year {year}: rebuild it with `gpuetl build "
                          "--overwrite`")
    dst.mkdir(parents=True, exist_ok=True)
    files = sorted(src.iterdir())
    for f in files:
        link(f, dst / f.name)
    codes = backend.read_parquet([str(f) for f in files], ["Code"])["Code"].unique()
    return kept_year(plan, year, record, [str(c) for c in backend.to_host(codes)])  # host-ok: the year's codes


def _graphs_state(dataset: Path, say: Callable[[str], None] | None) -> str:
    """"fresh" (graphs of the dataset as it is: they are extended), "stale" (kept as they are) or "none"."""
    if not (dataset / "graphs" / "graphs.json").is_file():
        return "none"
    try:
        check_graphs(dataset)
    except StaleGraphsError:
        if say is not None:
            say(f"the graphs at {dataset / 'graphs'} were made from an earlier build (stale): kept as they are; "
                f"rerun `gpuetl graph --dataset {dataset} --overwrite`")
        return "stale"
    return "fresh"
