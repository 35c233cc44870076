"""The listed universe: codes, names, sectors, markets, size, listings, delistings and splits.

Everything here is per issue (arrays of length N, sorted by code) and fixed for the whole range,
except the market segment, which switches at the 2022-04-04 TSE restructuring.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gpuetl.synth import reference as ref
from gpuetl.synth.calendar import Timeline
from gpuetl.synth.config import MarketConfig, stream

RESTRUCTURE = np.datetime64("2022-04-04")
ALNUM_FROM = np.datetime64("2024-01-01")  # new listings get codes like "130A0" from 2024
OUTAGE = np.datetime64("2020-10-01")  # the arrowhead outage: no trading at all that day
_LETTERS = np.array(list("ACEFGHJKLMNPRSTUWXY"))
_FY_MONTHS = np.array([3, 12, 9, 2, 6, 1, 5, 8, 11, 4, 7, 10])
_FY_WEIGHTS = np.array([65, 14, 4, 4, 3, 2, 2, 2, 1.5, 1, 1, 0.5])


@dataclasses.dataclass(frozen=True)
class Universe:
    """Per-issue attributes (length N, sorted by code); day indices refer to `Timeline.days`."""

    code: np.ndarray  # object, 5-char codes
    name_jp: np.ndarray  # object
    name_en: np.ndarray  # object
    s33: np.ndarray  # int, index into ref.S33_CODES
    market_old: np.ndarray  # object, segment code before 2022-04-04
    market_new: np.ndarray  # object, segment code from 2022-04-04
    scale_cat: np.ndarray  # object, one of ref.SCALE_CATS
    margin: np.ndarray  # object, "1"/"2"/"3"
    topix: np.ndarray  # bool, a TOPIX (and sector index) constituent
    fine_tick: np.ndarray  # bool, TOPIX100 (0.1-yen tick table)
    size_pct: np.ndarray  # float, 0 = largest market cap .. 1 = smallest
    shares0: np.ndarray  # float, shares outstanding at the first listed day
    price0: np.ndarray  # float, price at the first listed day (IPO price for new listings)
    list_day: np.ndarray  # int, first listed row (0 if listed before start)
    delist_day: np.ndarray  # int, first row no longer listed (n if still listed at end)
    fy_month: np.ndarray  # int, fiscal-year end month
    standard: np.ndarray  # object, accounting: "JP", "IFRS", "US"
    consolidated: np.ndarray  # bool
    split_code: np.ndarray  # int, issue index of each split
    split_day: np.ndarray  # int, ex-date row of each split
    split_ratio: np.ndarray  # float, new shares per old share (2.0 for 1:2, 0.1 for a 10:1 consolidation)

    @property
    def n(self) -> int:
        return int(self.code.size)

    def listed(self, n_days: int) -> np.ndarray:
        """(days, N) bool: listed on that day."""
        t = np.arange(n_days)[:, None]
        return (t >= self.list_day[None, :]) & (t < self.delist_day[None, :])


def _codes(rng: np.random.Generator, s33: np.ndarray, alnum: np.ndarray) -> np.ndarray:
    """Unique 5-char codes: 4 digits (mostly in the sector's traditional range) + "0", or "DDDL0"."""
    n = s33.size
    lo = np.array([ref.S33_TO_S17[c][2][0] for c in ref.S33_CODES])[s33]
    hi = np.array([ref.S33_TO_S17[c][2][1] for c in ref.S33_CODES])[s33]
    num = np.where(rng.random(n) < 0.7, rng.integers(lo, hi), rng.integers(1301, 9998, n))
    _, first = np.unique(num, return_index=True)
    dup = np.ones(n, dtype=bool)
    dup[first] = False
    free = np.setdiff1d(np.arange(1301, 9998), num)
    num[dup] = rng.choice(free, size=int(dup.sum()), replace=False)
    numeric = np.char.add(num.astype("U4"), "0")
    k = int(alnum.sum())
    combos = rng.choice(np.arange(130, 1000) * _LETTERS.size, size=k, replace=False) if k else np.zeros(0, int)
    combos = combos + rng.integers(0, _LETTERS.size, size=k)
    alpha = np.char.add(np.char.add((combos // _LETTERS.size).astype("U3"), _LETTERS[combos % _LETTERS.size]), "0")
    out = numeric.astype(object)
    out[alnum] = alpha.astype(object)
    return out


def _split_events(rng: np.random.Generator, config: MarketConfig, timeline: Timeline, list_day: np.ndarray,
                  delist_day: np.ndarray, price0: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = list_day.size
    years = timeline.n / 245.0
    count = rng.poisson(config.splits_per_year * years, n)
    code = np.repeat(np.arange(n), count)
    lo, hi = list_day[code] + 5, delist_day[code] - 1
    ok = hi > lo
    code, lo, hi = code[ok], lo[ok], hi[ok]
    day = lo + (rng.random(code.size) * (hi - lo)).astype(int)
    outage = timeline.day_index(np.array([OUTAGE]))[0]
    day = np.where(day == outage, day + 1, day)
    keep = np.unique(code * (timeline.n + 1) + day, return_index=True)[1]
    code, day = code[keep], day[keep]
    p = price0[code]
    forward = rng.choice(np.array([2.0, 2.0, 2.0, 3.0, 4.0, 5.0, 10.0]), size=code.size)
    ratio = np.where(p > 6000, np.where(p > 30000, np.maximum(forward, 5.0), forward),
                     np.where(p < 150, 0.1, np.minimum(forward, 3.0)))
    return code, day, ratio


def build_universe(config: MarketConfig, timeline: Timeline) -> Universe:
    rng = stream(config, "universe")
    n, d = config.codes, timeline.n
    weights = np.array([ref.S33_TO_S17[c][1] for c in ref.S33_CODES], dtype=float)
    s33 = rng.choice(len(weights), size=n, p=weights / weights.sum())
    if n >= 2 * len(weights):  # every sector present once the market is big enough
        s33[rng.choice(n, size=len(weights), replace=False)] = np.arange(len(weights))
    # size: market cap in yen, log-normal; price and shares from it
    log_cap = np.log(2e10) + 1.6 * rng.standard_normal(n)
    size_pct = (np.argsort(np.argsort(-log_cap)) + 0.5) / n
    log_price = np.log(1200.0) + 0.25 * (log_cap - np.log(2e10)) / 1.6 + 0.75 * rng.standard_normal(n)
    price0 = np.clip(np.exp(log_price), 60.0, 90000.0)
    shares0 = np.maximum(np.round(np.exp(log_cap) / price0, -2), 1e5)
    # listings and delistings inside the range
    new = rng.random(n) < config.listing_share
    list_day = np.where(new, rng.integers(1, max(d - 20, 2), n), 0)
    gone = rng.random(n) < config.delisting_share
    delist_day = np.where(gone, list_day + 20 + (rng.random(n) * np.maximum(d - list_day - 20, 0)).astype(int), d)
    delist_day = np.minimum(np.maximum(delist_day, list_day + 1), d)
    list_date = timeline.days[np.minimum(list_day, d - 1)]
    # markets: old segments by size (new listings mostly Mothers / Growth), then the 2022 mapping
    score = size_pct + 0.15 * rng.standard_normal(n)
    market_old = np.select([score < 0.55, score < 0.67, score < 0.84, score < 0.96],
                           ["0101", "0102", "0106", "0104"], "0107").astype(object)
    market_old[new] = rng.choice(np.array(["0104", "0104", "0104", "0106", "0101"], dtype=object), int(new.sum()))
    to_prime = (market_old == "0101") & (size_pct < 0.5)
    market_new = np.select([to_prime, np.isin(market_old, ["0101", "0102", "0106"])], ["0111", "0112"],
                           "0113").astype(object)
    late = new & (list_date >= RESTRUCTURE)
    market_new[late] = rng.choice(np.array(["0113"] * 7 + ["0112"] * 2 + ["0111"], dtype=object), int(late.sum()))
    market_old[late] = market_new[late]  # never traded before 2022-04-04; keep the array well-defined
    topix = (market_old == "0101") | (market_old == "0111")
    # ScaleCat: size buckets among TOPIX members, scaled from the real 30/70/400/500 of ~2,150
    rank = n - 1 - np.argsort(np.argsort(np.where(topix, log_cap, -np.inf)))  # 0 = largest member
    m = max(int(topix.sum()), 1)
    edges = np.cumsum([max(1, round(m * k / 2150)) for k in (30, 70, 400, 500)])
    scale_cat = np.array(ref.SCALE_CATS, dtype=object)[np.searchsorted(edges, rank, side="right")]
    scale_cat[~topix] = "-"
    fine_tick = topix & (rank < edges[1])
    margin = np.where(topix, np.where(rng.random(n) < 0.8, "2", "1"),
                      rng.choice(np.array(["2", "2", "1", "1", "1", "3"]), n)).astype(object)
    # names
    s17 = np.array([ref.S33_TO_S17[c][0] for c in ref.S33_CODES])[s33]
    pre = rng.integers(0, len(ref.NAME_PREFIXES), n)
    pre_jp = np.array([p[0] for p in ref.NAME_PREFIXES], dtype=object)[pre]
    pre_en = np.array([p[1] for p in ref.NAME_PREFIXES], dtype=object)[pre]
    word_jp = np.array([ref.SECTOR_WORDS[s][0] for s in s17], dtype=object)
    word_en = np.array([ref.SECTOR_WORDS[s][1] for s in s17], dtype=object)
    holding = rng.random(n) < 0.3
    name_jp = pre_jp + word_jp + np.where(holding, "ホールディングス", "")
    name_en = pre_en + " " + word_en + np.where(holding, " Holdings,Inc.", " Co.,Ltd.")
    # fiscal year and accounting
    fy_month = rng.choice(_FY_MONTHS, size=n, p=_FY_WEIGHTS / _FY_WEIGHTS.sum())
    u = rng.random(n)
    ifrs_share = np.where(size_pct < 0.1, 0.35, 0.05)
    standard = np.where(u < ifrs_share, "IFRS", np.where(u > 0.99, "US", "JP")).astype(object)
    consolidated = (standard != "JP") | (rng.random(n) > 0.08)
    alnum = new & (list_date >= ALNUM_FROM)
    code = _codes(rng, s33, alnum)
    split_code, split_day, split_ratio = _split_events(rng, config, timeline, list_day, delist_day, price0)
    order = np.argsort(code.astype(str), kind="stable")
    inv = np.empty(n, dtype=int)
    inv[order] = np.arange(n)
    split_order = np.lexsort((split_day, inv[split_code]))
    return Universe(
        code=code[order], name_jp=name_jp[order], name_en=name_en[order], s33=s33[order],
        market_old=market_old[order], market_new=market_new[order], scale_cat=scale_cat[order],
        margin=margin[order], topix=topix[order], fine_tick=fine_tick[order], size_pct=size_pct[order],
        shares0=shares0[order], price0=price0[order], list_day=list_day[order], delist_day=delist_day[order],
        fy_month=fy_month[order], standard=standard[order], consolidated=consolidated[order],
        split_code=inv[split_code][split_order], split_day=split_day[split_order],
        split_ratio=split_ratio[split_order],
    )
