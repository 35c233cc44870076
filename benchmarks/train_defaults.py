"""The default models beside the simple rules, on the default (realistic) synthetic market and its null twin.

What README's Training table shows: per market, the default GAT, its graph-free ablation and XGBoost, each
trained with five seeds (`run.seeds`, one model per seed: their ensemble scores the run, and each seed's own
score gives the mean and std over seeds), beside the rules every report scores on the same days (reversal,
momentum, low volatility, random). The markets are `gpuetl synth` lakes of the demo's shape (200 codes,
2022-2024: one test year, 2024), built with the default dataset and graph configs; the null market is the same
seed with nothing planted (`--no-signal`). Nothing here chooses a setting: the defaults were fixed before
(docs/training.md, "How the training defaults were chosen"). A finished run is skipped, so a stopped script
resumes.

    python -m benchmarks.train_defaults --out data/defaults \
        --report benchmarks/results/cpu-2026-12-07-train-defaults.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.train_seeds import gpuetl
from gpuetl.train.metrics import information_ratio

SEEDS = "run.seeds=[7, 8, 9, 10, 11]"
MODELS = {  # name: (run folder, command, config overrides)
    "GAT (default)": ("gat", "train", [SEEDS]),
    "its ablation (model.graph=false)": ("ablation", "train", [SEEDS, "model.graph=false"]),
    "XGBoost (default)": ("xgb", "baseline", [SEEDS]),
}


def prepare(root: Path, seed: int, codes: int, start: str, end: str, null: bool) -> Path:
    """synth -> build -> graph with the default configs (each step skipped when its output is there)."""
    lake, ds = root / "lake", root / "dataset"
    if not lake.exists():
        gpuetl("synth", "--codes", str(codes), "--start", start, "--end", end, "--seed", str(seed),
               *(["--no-signal"] if null else []), "--out", str(lake), log=root / "log.txt")
    if not (ds / "metadata.json").exists():
        gpuetl("build", "--lake", str(lake), "--out", str(ds), "--backend", "cpu", log=root / "log.txt")
    if not (ds / "graphs").exists():
        gpuetl("graph", "--dataset", str(ds), "--lake", str(lake), "--backend", "cpu", log=root / "log.txt")
    return ds


def fit(name: str, ds: Path, root: Path, threads: int) -> dict:
    folder, command, sets = MODELS[name]
    out = root / "runs" / folder
    if not (out / "metrics.json").exists():
        cfg = "configs/train/gat.yaml" if command == "train" else "configs/train/xgb.yaml"
        args = [a for s in (*sets, f"run.threads={threads}") for a in ("--config-set", s)]
        stopped = out.with_name(f".{out.name}.tmp").is_dir()
        gpuetl(command, "--config", cfg, "--dataset", str(ds), "--out", str(out), "--no-progress", *args,
               *(["--resume"] if stopped else []), log=root / "log.txt")
    return json.loads((out / "metrics.json").read_text())


def table(runs: dict[str, dict]) -> str:
    """Models (ensemble, and mean +- std over seeds) and rules, with the paired daily difference to the best rule."""
    first = next(iter(runs.values()))
    rules = first["rules"]
    best = max(rules, key=lambda r: rules[r]["rank_ic"] if r != "random" else -1.0)
    best_daily = np.array([np.nan if v is None else v for v in first["daily"]["rules_rank_ic"][best]], float)
    lines = ["| ranking | RankIC (t) | each seed: mean ± std | JPX score | long-short | minus " + best + " (t) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, m in runs.items():
        o, s = m["overall"], m["seeds"]
        d = np.array([np.nan if v is None else v for v in m["daily"]["rank_ic"]], float) - best_daily
        d = d[np.isfinite(d)]
        lines.append(f"| {name} | {o['rank_ic']:+.4f} ({o['rank_ic_t']:+.2f}) | "
                     f"{s['mean']['rank_ic']:+.4f} ± {s['std']['rank_ic'] or 0:.4f} | {o['jpx_score']:+.3f} | "
                     f"{o['long_short_cum']:+.1%} | {d.mean():+.4f} ({information_ratio(d) * np.sqrt(len(d)):+.2f}) |")
    for rule, r in rules.items():
        lines.append(f"| rule: {rule} | {r['rank_ic']:+.4f} ({r['rank_ic_t']:+.2f}) | | {r['jpx_score']:+.3f} | "
                     f"{r['long_short_cum']:+.1%} | |")
    gat = runs["GAT (default)"]
    if len(gat.get("horizons", {})) > 1:
        lines += ["", "GAT per head (ensemble; k-day targets overlap, so t overstates by about sqrt(k)): "
                  + ", ".join(f"{h} {v['rank_ic']:+.4f} ({v['rank_ic_t']:+.2f})" for h, v in gat["horizons"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=7, help="the market seed (the demo's)")
    p.add_argument("--codes", type=int, default=200)
    p.add_argument("--start", default="2022-01-04")
    p.add_argument("--end", default="2024-12-30")
    p.add_argument("--threads", type=int, default=0, help="run.threads of every run (0: all cores)")
    p.add_argument("--out", default="data/defaults", help="realistic/ and null/: lake, dataset, runs, log.txt")
    p.add_argument("--report", help="write the Markdown tables here too")
    p.add_argument("--only", help="comma-separated run folders to train now (gat, ablation, xgb); no report")
    p.add_argument("--prepare-only", action="store_true", help="build the markets' datasets and graphs, train nothing")
    a = p.parse_args(argv)
    parts = []
    for market, null in (("realistic", False), ("null", True)):
        root = Path(a.out) / market
        root.mkdir(parents=True, exist_ok=True)
        print(f"{market} market (seed {a.seed}) -> {root}", flush=True)
        ds = prepare(root, a.seed, a.codes, a.start, a.end, null)
        if a.prepare_only:
            continue
        if a.only:
            for name, (folder, _, _) in MODELS.items():
                if folder in a.only.split(","):
                    fit(name, ds, root, a.threads)
            continue
        runs = {name: fit(name, ds, root, a.threads) for name in MODELS}
        days = runs["GAT (default)"]["overall"]["days"]
        parts.append(f"### The {market} market (seed {a.seed}{', --no-signal' if null else ''}; {days} test days)"
                     f"\n\n{table(runs)}\n")
    if a.prepare_only or a.only:
        return 0
    text = (f"Mean daily test RankIC, {a.codes} codes, {a.start} to {a.end}, default configs, five seeds per "
            f"model; runs in {a.out}/*/runs.\n\n" + "\n".join(parts))
    print(text)
    if a.report:
        Path(a.report).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
