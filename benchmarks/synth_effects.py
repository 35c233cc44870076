"""How big are the synthetic market's planted effects, measured the way the literature measures real ones?

    python -m benchmarks.synth_effects --codes 500 --start 2016-01-04 --end 2024-12-30 --seeds 1001,1002,1003

Builds each market (core only: the price panel, no dataset tables) and scores simple rules on it by their mean
daily RankIC (Spearman across codes, one per day) against three forward returns: close t -> t+1 (what published
daily ICs use, and what the defaults were sized on), close t -> t+5, and the project's default label close t+1 ->
t+2 (`target_next_ret_1d`, entered at the next close). The rules: -ret_1d, -ret_5d (short-term reversal),
momentum 12-1 (close t-250 -> t-21) and 120-20 (the rule `gpuetl/train/rules.py` scores), the true leaders'
return today (sum_j w_ij ret_1d[t, j], from `market.truth["peers"]`: what a model that found the planted graph
could know) and a random ranking (chance). Beside each rule sits the published range its default was sized to
(docs/synthetic-market.md has the sources). t-statistics are Newey-West with h - 1 lags for an h-day forward
return (overlapping windows), and the pooled column concatenates the seeds' days.

The calibration seeds (1001-1003 by default) are neither the demo market's seed 7 nor any seed the tests or
earlier benchmarks use, so the sizes are not tuned to a market anything else is scored on. `--null` adds the
null market of each seed (`without_signal`), where every planted rule should score zero.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gpuetl.synth import MarketConfig, build_market
from gpuetl.synth.config import without_signal

SEEDS = (1001, 1002, 1003)
MIN_CODES = 20  # a day scores only with at least this many codes holding both the signal and the return
#: forward return -> (first day after t, days): close t+a-1 -> close t+a-1+k
TARGETS = {"fwd_1d": (1, 1), "fwd_5d": (1, 5), "label_1d": (2, 1)}
#: rule -> (published range of the mean daily RankIC against fwd_1d, or None where no default was sized on it)
RULES: dict[str, tuple[float, float] | None] = {
    "reversal_1d": None,
    "reversal_5d": (0.02, 0.04),
    "momentum_12_1": (0.0, 0.005),
    "momentum_120_20": None,
    "leaders": (0.005, 0.01),
    "random": (0.0, 0.0),
}


def log_prices(market: Any) -> tuple[np.ndarray, np.ndarray]:
    """(D, N) split-adjusted log closes, carried over no-trade days while listed (NaN while not listed), and the
    days each code traded."""
    p = market.panel
    lp = np.log(p.C) - np.cumsum(np.log(p.adj_factor), axis=0)  # backward adjustment up to a constant per code
    lp = pd.DataFrame(lp).ffill().to_numpy(copy=True)
    lp[~p.listed] = np.nan
    return lp, p.traded


def signals(market: Any, lp: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Each rule's (D, N) score on close t (NaN where not computable)."""
    def back(k: int) -> np.ndarray:
        out = np.full_like(lp, np.nan)
        out[k:] = lp[:-k]
        return out

    r1 = lp - back(1)
    peers = market.truth["peers"]
    pos = {c: k for k, c in enumerate(market.universe.code)}
    n = lp.shape[1]
    w = np.zeros((n, n))
    w[peers["follower"].map(pos).to_numpy(), peers["leader"].map(pos).to_numpy()] = peers["weight"].to_numpy()
    leaders = np.nan_to_num(r1) @ w.T
    leaders[np.isnan(r1)] = np.nan
    return {"reversal_1d": -r1, "reversal_5d": -(lp - back(5)), "momentum_12_1": back(21) - back(250),
            "momentum_120_20": back(20) - back(120), "leaders": leaders,
            "random": np.random.default_rng(seed).random(lp.shape)}


def forward(lp: np.ndarray, start: int, days: int) -> np.ndarray:
    """(D, N) log return close t+start-1 -> close t+start-1+days."""
    out = np.full_like(lp, np.nan)
    a, b = start - 1, start - 1 + days
    out[: lp.shape[0] - b] = lp[b:] - lp[a: lp.shape[0] - b + a]
    return out


def daily_rank_ic(score: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Spearman correlation across codes, one per day, on the codes holding both (NaN on days with too few)."""
    ok = np.isfinite(score) & np.isfinite(target)
    rs = pd.DataFrame(np.where(ok, score, np.nan)).rank(axis=1).to_numpy(copy=True)
    rt = pd.DataFrame(np.where(ok, target, np.nan)).rank(axis=1).to_numpy(copy=True)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # days with no code: NaN, dropped below
        rs -= np.nanmean(rs, axis=1, keepdims=True)
        rt -= np.nanmean(rt, axis=1, keepdims=True)
        ic = np.nansum(rs * rt, axis=1) / np.sqrt(np.nansum(rs**2, axis=1) * np.nansum(rt**2, axis=1))
    ic[ok.sum(axis=1) < MIN_CODES] = np.nan
    return ic


def newey_west_t(ic: np.ndarray, lags: int) -> float:
    """Mean / its Newey-West standard error (Bartlett weights, `lags` lags): overlapping forward returns make
    consecutive days' ICs correlated, which a plain t would ignore."""
    x = ic[np.isfinite(ic)]
    if x.size < 3:
        return math.nan
    d = x - x.mean()
    lrv = d @ d / x.size
    for k in range(1, lags + 1):
        lrv += 2 * (1 - k / (lags + 1)) * (d[k:] @ d[:-k]) / x.size
    return float(x.mean() / math.sqrt(lrv / x.size)) if lrv > 0 else math.nan


def measure(config: MarketConfig) -> dict[str, dict[str, np.ndarray]]:
    """rule -> target -> the daily RankICs on the days the code traded at close t."""
    market = build_market(config)
    lp, traded = log_prices(market)
    targets = {name: forward(lp, *spec) for name, spec in TARGETS.items()}
    out: dict[str, dict[str, np.ndarray]] = {}
    for rule, score in signals(market, lp, config.seed).items():
        score = np.where(traded, score, np.nan)
        out[rule] = {name: daily_rank_ic(score, target) for name, target in targets.items()}
    return out


def summary(ics: list[np.ndarray], lags: int) -> dict[str, Any]:
    """Per seed and pooled: mean daily RankIC, its t, days."""
    rows = [{"rank_ic": float(np.nanmean(ic)), "t": newey_west_t(ic, lags), "days": int(np.isfinite(ic).sum())}
            for ic in ics]
    pooled = np.concatenate([ic[np.isfinite(ic)] for ic in ics])
    return {"seeds": rows, "pooled": {"rank_ic": float(pooled.mean()), "t": newey_west_t(pooled, lags),
                                      "days": int(pooled.size)}}


def table(results: dict[str, Any], seeds: list[int], title: str, ranges: bool = True) -> str:
    """One Markdown table: rule x forward return, each seed's IC (t) and the pooled one, the published range."""
    head = " | ".join(f"seed {s}" for s in seeds)
    lines = [f"**{title}**", "", f"| rule | forward return | published (fwd_1d) | {head} | pooled | in range |",
             "|---|---|---|" + "---:|" * len(seeds) + "---:|:---:|"]
    for rule, by_target in results.items():
        for target, res in by_target.items():
            rng = RULES[rule]
            published = f"{rng[0]:+.3f} .. {rng[1]:+.3f}" if rng and target == "fwd_1d" else ""
            cells = " | ".join(f"{r['rank_ic']:+.4f} ({r['t']:+.1f})" for r in res["seeds"])
            p = res["pooled"]
            inside = ""
            if ranges and rng and target == "fwd_1d" and rule != "random":
                inside = "yes" if rng[0] <= p["rank_ic"] <= rng[1] else "no"
            lines.append(f"| {rule} | {target} | {published} | {cells} | {p['rank_ic']:+.4f} ({p['t']:+.1f}) "
                         f"| {inside} |")
    return "\n".join(lines)


def run(config: MarketConfig, seeds: list[int]) -> dict[str, Any]:
    per_seed = [measure(dataclasses.replace(config, seed=s)) for s in seeds]
    return {rule: {target: summary([m[rule][target] for m in per_seed], TARGETS[target][1] - 1)
                   for target in TARGETS} for rule in RULES}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="synth_effects", description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=500)
    parser.add_argument("--start", default="2016-01-04")
    parser.add_argument("--end", default="2024-12-30")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)),
                        help="comma-separated market seeds (not 7, the demo's, nor a test's)")
    parser.add_argument("--seed", type=int, help="a single seed (instead of --seeds)")
    parser.add_argument("--null", action="store_true", help="also measure each seed's null market")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a MarketConfig float field, e.g. --set reversal=0.01 (calibration)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else [int(s) for s in args.seeds.split(",")]
    overrides: dict[str, Any] = {k: float(v) for k, _, v in (s.partition("=") for s in args.set)}
    config = dataclasses.replace(MarketConfig(codes=args.codes, start=args.start, end=args.end, seed=seeds[0]),
                                 **overrides)
    t0 = time.perf_counter()
    effects = {name: getattr(config, name) for name in ("reversal", "reversal_days", "momentum", "momentum_skip",
                                                       "momentum_lookback", "lead_lag", "lead_lag_decay",
                                                       "in_sector_share", "earnings_jump")}
    print(f"market: {args.codes} codes, {args.start} .. {args.end}, seeds {seeds}; effects {effects}")
    out: dict[str, Any] = {"codes": args.codes, "start": args.start, "end": args.end, "seeds": seeds,
                           "effects": effects, "device": platform.processor() or platform.machine()}
    out["market"] = run(config, seeds)
    print(table(out["market"], seeds, "default market"))
    if args.null:
        out["null"] = run(without_signal(config), seeds)
        print()
        print(table(out["null"], seeds, "null market (without_signal)", ranges=False))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"\n{out['seconds']} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, default=list))
    return out


if __name__ == "__main__":
    main()
