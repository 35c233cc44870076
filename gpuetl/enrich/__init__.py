"""Leakage-free enrichment: statements, flows, margin, short selling, listing and event data joined onto
the (Code, Date) panel as of each day's close.

Each group reads its raw datasets from the lake, maps every row to the business day it becomes usable
(`effective`), and projects it onto the panel's days with as-of joins (`asof`, on the `segmented_asof`
kernel). The dataset build runs the groups its config switches on (`enrich:` in configs/dataset/*.yaml)
after building the panel and before the feature ops, so later ops and the normalisation see the columns.

Switches: `true` runs the group and fails (naming what to fetch) when the lake lacks its data; `false`
skips it; `auto` runs it when the lake has every dataset it needs and otherwise skips it, saying so in
the log and in metadata.json. Every group needs the trading calendar (`calendar`) for its effective days.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from gpuetl import ops
from gpuetl.backend import Backend
from gpuetl.enrich import events, flows, listing, statements
from gpuetl.enrich.context import Context, EnrichError, has_data
from gpuetl.features.panel import Panel
from gpuetl.lake.manifest import Manifest
from gpuetl.ops import Op, by_column
from gpuetl.stages import StageTimer

log = logging.getLogger(__name__)


def _group(name: str, datasets: tuple[str, ...], outputs: tuple[str, ...], rule: ops.NormalizeRule, tolerance: str,
           fn: Callable[[Context], Mapping[str, Any]], doc: str) -> Op:
    return ops.op(name, stage="enrich", group=name, inputs=datasets, outputs=lambda params: outputs,
                  normalize=rule, tolerance=tolerance, doc=doc)(fn)


# The enrichment ops, in the order of the dataset config's switches: name, raw datasets read (every one needs the
# trading calendar for its effective days), outputs, normalisation, parity tolerance (as-of joins and arithmetic
# are exact; rolling means and groupby sums add in another order on the GPU), the function of the build's
# Context, and what it adds.
GROUPS: tuple[Op, ...] = (
    _group("statements", ("fins_summary", "calendar"), statements.OUTPUTS, by_column(raw=["st_quarter"]), "exact",
           statements.statement_features,
           "valuation, profitability, growth, progress and revisions from fins_summary"),
    _group("investor_types", ("investor_types", "calendar"), flows.IT_OUTPUTS,
           by_column(raw=["it_days_since"], time_series=["it_mkt_frgn_net", "it_mkt_ind_net"]), "exact",
           flows.investor_type_features, "weekly trading by investor type in the code's market section"),
    _group("margin_interest", ("margin_interest", "calendar"), flows.MI_OUTPUTS, by_column(raw=["mi_days_since"]),
           "sum_order", flows.margin_interest_features, "weekly outstanding margin positions per code"),
    _group("margin_alert", ("margin_alert", "calendar"), flows.MA_OUTPUTS,
           by_column(raw=["ma_active", "ma_restricted", "ma_daily_pub", "ma_jsf_precaution"]), "exact",
           flows.margin_alert_features, "daily margin data of issues under TSE/JSF alert"),
    _group("short_ratio", ("short_ratio", "calendar"), flows.SS_OUTPUTS, by_column(time_series=["ss_mkt_ratio"]),
           "sum_order", flows.short_ratio_features, "short-selling share of turnover in the code's 33-sector"),
    _group("listing", ("master", "calendar"), listing.OUTPUTS,
           by_column(raw=[c for c in listing.OUTPUTS if c != "lst_bdays_listed"]), "exact",
           listing.listing_features, "sectors, scale, market tier, margin eligibility, business days since listing"),
    _group("earnings", ("earnings_calendar", "calendar"), events.EARNINGS_OUTPUTS,
           by_column(raw=["ev_announcement_soon"]), "exact", events.earnings_features,
           "days to the next scheduled earnings announcement"),
    _group("dividends", ("dividend", "calendar"), events.DIVIDEND_OUTPUTS, by_column(raw=["dv_special"]), "exact",
           events.dividend_features, "next ex-dividend date and its yield"),
)


def groups() -> dict[str, Op]:
    """The enrichment ops by name (dataset configs switch them with `enrich.<name>`)."""
    return {group.name: group for group in GROUPS}


def group(name: str) -> Op:
    """Enrichment op `name`; a miss lists the valid names."""
    found = groups().get(name)
    if found is None:
        raise KeyError(f"unknown enrich {name!r}; registered: {', '.join(sorted(groups()))}")
    return found


def select(switches: Mapping[str, bool | str], manifest: Manifest) -> tuple[list[str], dict[str, str]]:
    """Which groups run on this lake: (groups to run, status of every group). Raises for a group switched
    on whose data is missing."""
    run: list[str] = []
    status: dict[str, str] = {}
    for name, switch in switches.items():
        spec = group(name)
        if switch is False:
            status[name] = "off"
            continue
        missing = [d for d in spec.inputs if not has_data(manifest, d)]
        if not missing:
            run.append(name)
            status[name] = "on"
        elif switch == "auto":
            status[name] = f"skipped: the lake has no {', '.join(missing)}"
            log.info("enrich %s skipped (auto): the lake at %s has no %s", name, manifest.root, ", ".join(missing))
        else:
            raise EnrichError(f"enrich.{name} needs {', '.join(missing)}, which the lake at {manifest.root} "
                              f"does not hold; fetch it (gpuetl fetch --datasets {' '.join(missing)} ...) or set "
                              f"enrich.{name}=auto|false")
    return run, status


def enrich(backend: Backend, manifest: Manifest, panel: Panel, frame: Any, names: list[str],
           timer: StageTimer | None = None) -> dict[str, dict[str, Any]]:
    """Run the enrichment ops `names` and return their columns, each float64 aligned with the panel rows; `timer`
    times each op (`enrich:<name>`) when it times ops."""
    if not names:
        return {}
    ctx = Context.create(backend, manifest, panel, frame)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        with timer.op(f"enrich:{name}") if timer is not None else contextlib.nullcontext():
            cols = ops.run(group(name), ctx)
        out[name] = {k: backend.xp.asarray(v, dtype=backend.xp.float64) for k, v in cols.items()}
    return out


__all__ = ["GROUPS", "EnrichError", "enrich", "group", "groups", "plan"]
