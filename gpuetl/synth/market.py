"""The synthetic market: the core (calendar, universe, disclosures, returns, price panel) built eagerly,
each J-Quants dataset built on first use from it.

Every dataset draws from its own seeded stream, so the frames are identical whatever order they are
built in: `build_market(config)` is deterministic bit for bit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from gpuetl.jquants import spec
from gpuetl.synth import bars, corporate, derivatives, flows, index, margin, statements
from gpuetl.synth.calendar import Calendar, Timeline, build_calendar
from gpuetl.synth.config import MarketConfig
from gpuetl.synth.core import Fundamentals
from gpuetl.synth.prices import BarPanel, build_panel
from gpuetl.synth.returns import build_returns
from gpuetl.synth.schedule import Schedule, build_schedule
from gpuetl.synth.universe import Universe, build_universe

Builder = Callable[["SyntheticMarket"], pd.DataFrame]
BUILDERS: dict[str, Builder] = {
    "calendar": lambda m: m.calendar,
    "master": bars.master,
    "bars_daily": bars.bars_daily,
    "fins_summary": statements.fins_summary,
    "fins_details": statements.fins_details,
    "dividend": corporate.dividend,
    "earnings_calendar": corporate.earnings_calendar,
    "investor_types": flows.investor_types,
    "margin_interest": margin.margin_interest,
    "margin_alert": margin.margin_alert,
    "short_ratio": flows.short_ratio,
    "short_sale_report": margin.short_sale_report,
    "breakdown": flows.breakdown,
    "topix": index.topix,
    "indices": index.indices,
    "options_225": derivatives.options_225,
    "futures": derivatives.futures,
    "options": derivatives.options,
}

# datasets J-Quants serves only as the current snapshot: what the API showed on a given day
SNAPSHOTS: dict[str, Callable[[SyntheticMarket, Any], pd.DataFrame]] = {
    "earnings_calendar": corporate.earnings_calendar_on,
}


class LazyTables(Mapping[str, pd.DataFrame]):
    """Dataset name -> canonical frame, built on first access and kept; `release` drops one again."""

    def __init__(self, market: SyntheticMarket) -> None:
        self._market = market
        self._built: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in BUILDERS:
            raise KeyError(f"unknown dataset {name!r}; known: {', '.join(BUILDERS)}")
        if name not in self._built:
            self._built[name] = _in_range(self._market, name, BUILDERS[name](self._market))
        return self._built[name]

    def __contains__(self, name: object) -> bool:  # without building the table
        return name in BUILDERS

    def __iter__(self) -> Iterator[str]:
        return iter(spec.datasets())

    def __len__(self) -> int:
        return len(spec.datasets())

    def release(self, name: str) -> None:
        self._built.pop(name, None)


def _in_range(market: SyntheticMarket, name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Keep rows dated in [start, end] and on or after the dataset's first date (`spec.since`)."""
    ds = spec.get(name)
    if name == "calendar" or ds.date_field is None:
        return df
    lo = max(pd.Timestamp(market.config.start), pd.Timestamp(ds.since))
    col = df[ds.date_field]
    keep = (col >= lo) & (col <= pd.Timestamp(market.config.end))
    return df if bool(keep.all()) else df.loc[
        keep.to_numpy()].reset_index(drop=True)  # host-ok: the synthetic market is NumPy/pandas by design


class SyntheticMarket:
    """A seeded synthetic Japanese equity market and every J-Quants dataset drawn from it."""

    def __init__(self, config: MarketConfig) -> None:
        self.config = config
        first, last = int(config.start[:4]), int(config.end[:4]) + 1
        # internally two earlier years too, so disclosures of the years before `start` land on real days
        self.cal: Calendar = build_calendar(first - 2, last)
        published = self.cal.dates >= np.datetime64(f"{first}-01-01")
        self.calendar: pd.DataFrame = Calendar(self.cal.dates[published], self.cal.holdiv[published]).frame()
        bdays = self.cal.business_days("equity")
        days = bdays[(bdays >= np.datetime64(config.start)) & (bdays <= np.datetime64(config.end))]
        if days.size == 0:
            raise ValueError(f"no business day between {config.start} and {config.end}")
        self.timeline = Timeline(days=days, bdays=bdays)
        self.universe: Universe = build_universe(config, self.timeline)
        self.schedule: Schedule = build_schedule(config, self.universe, self.timeline)
        code, day, size = statements.price_reactions(config, self.universe, self.schedule, self.timeline.n)
        returns = build_returns(config, self.universe, self.timeline.n, code, day, size)
        self.panel: BarPanel = build_panel(config, self.universe, days, returns)
        self.truth: dict[str, Any] = _truth(self, returns)
        self.tables: LazyTables = LazyTables(self)

    @property
    def days(self) -> np.ndarray:
        """The equity business days in [start, end] (datetime64[D]): the panel's rows."""
        return self.timeline.days

    def table(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def snapshot(self, name: str, day: Any) -> pd.DataFrame:
        """What a snapshot-only dataset (`SNAPSHOTS`) showed on `day`: the row a daily fetch recorded then."""
        if name not in SNAPSHOTS:
            raise KeyError(f"{name!r} has no snapshot history; snapshot datasets: {', '.join(SNAPSHOTS)}")
        return SNAPSHOTS[name](self, day)

    def business_days(self, kind: str = "equity") -> pd.DatetimeIndex:
        """Business days of the published calendar: HolDiv 1/2 (equity) or 1/2/3 (derivatives)."""
        days = self.cal.business_days(kind)
        return pd.DatetimeIndex(days[days >= np.datetime64(self.calendar["Date"].iloc[0], "D")]
                                .astype("datetime64[ns]"))

    @functools.cached_property
    def fundamentals(self) -> Fundamentals:
        """Per-disclosure financial values, shared by fins_summary, fins_details and dividend."""
        return statements.build_fundamentals(self)


def _truth(m: SyntheticMarket, returns: Any) -> dict[str, Any]:
    """What the data hides: the planted effects (their sizes and rules), the peer graph, loadings and events."""
    u, g, c = m.universe, returns.peers, m.config
    codes = u.code
    day_or_none = lambda idx: pd.Series(  # noqa: E731
        np.where(idx < m.timeline.n, m.timeline.days[np.minimum(idx, m.timeline.n - 1)], np.datetime64("NaT"))
        .astype("datetime64[ns]"))
    return {
        "peers": pd.DataFrame({"follower": codes[g.follower], "leader": codes[g.leader], "weight": g.weight}),
        "lead_lag": c.lead_lag,
        "lead_lag_decay": list(c.lead_lag_decay),
        "lead_lag_rule": "r[t+l, i] += lead_lag * lead_lag_decay[l-1] * sum_j weight[i, j] * x[t, j] "
                         "for l = 1, 2, ...; x = sector + idiosyncratic part",
        "in_sector_share": c.in_sector_share,
        "reversal": c.reversal,
        "reversal_days": c.reversal_days,
        "reversal_rule": "r[t, i] -= reversal * sum_{l=1..reversal_days} e[t-l, i]; e = idiosyncratic part "
                         "(without the sector part and the earnings jumps)",
        "momentum": c.momentum,
        "momentum_window": [c.momentum_skip, c.momentum_lookback],
        "momentum_rule": "r[t, i] += momentum * sum_{l=skip..lookback} x[t-l, i]; (skip, lookback) = "
                         "momentum_window; x = sector + idiosyncratic part",
        "earnings_jump": c.earnings_jump,
        "loadings": pd.DataFrame({"Code": codes, "beta": returns.beta, "sector_beta": returns.sector_beta,
                                  "idio_vol": returns.idio_vol}),
        "factors": pd.DataFrame(returns.sector, index=pd.DatetimeIndex(m.days.astype("datetime64[ns]"), name="Date"),
                                columns=[f"S33_{c}" for c in bars.S33_CODES]).assign(market=returns.market),
        "universe": pd.DataFrame({
            "Code": codes, "S33": np.array(bars.S33_CODES, dtype=object)[u.s33], "MarketOld": u.market_old,
            "MarketNew": u.market_new, "ScaleCat": u.scale_cat, "TopixMember": u.topix, "FineTick": u.fine_tick,
            "Shares0": u.shares0, "ListDate": day_or_none(u.list_day).where(u.list_day > 0),
            "DelistDate": day_or_none(u.delist_day), "FYEndMonth": u.fy_month}),
        "splits": pd.DataFrame({"Code": codes[u.split_code], "ExDate": m.days[u.split_day].astype("datetime64[ns]"),
                                "Ratio": u.split_ratio, "AdjFactor": np.round(1.0 / u.split_ratio, 6)}),
    }


def build_market(config: MarketConfig) -> SyntheticMarket:
    """Build the core of a synthetic market; datasets are built on first access to `.tables[name]`."""
    return SyntheticMarket(config)


@functools.lru_cache(maxsize=2)
def cached_market(config: MarketConfig) -> SyntheticMarket:
    """One shared market per config (tests, the fake server): treat its frames as read-only."""
    return build_market(config)
