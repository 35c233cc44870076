"""Does the graph help? The GAT, its graph-free ablation and XGBoost on several fresh synthetic markets.

One market seed is one sample of a cross-section; a 4-year mean RankIC on 200 codes has a standard error
of about 0.003, the size of the gaps between the models. This script repeats the whole path (synth ->
build -> graph -> train / ablation / baseline, the real commands) on markets whose seeds were not used
to choose any setting, then pools the daily test RankIC over the seeds and tests the paired daily
differences. A finished step (its output present) is skipped, so an interrupted run resumes.

    python -m benchmarks.train_seeds --seeds 101,102,103 --out data/seeds \
        --report benchmarks/results/cpu-2026-12-01-train-seeds.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gpuetl.train.metrics import information_ratio, summarize

#: The inputs and label all three models share (data.* must be equal between the GAT and XGBoost configs).
SHARED = ("data.inputs.groups=[returns,sector]", "data.horizons=[1]")

#: The small lead-lag GAT (docs/training.md, "Does the graph help?"), fixed before any of these seeds was drawn.
SMALL_GAT = (
    *SHARED, "model.hidden=8", "model.heads=2", "model.gat_layers=1", "model.dropout=0.1",
    "model.relation_means=true", "optim.lr=0.001", "optim.weight_decay=0.01", "optim.days_per_epoch=0",
    "optim.max_epochs=8", "model.lead_lag={column: ret_1d, within: lst_s33, peers: 10, min_days: 120}",
)


@dataclass(frozen=True)
class Variant:
    """One model run per market: the command, its config overrides, and the model it is compared with."""

    name: str
    command: str                 # train | baseline
    sets: tuple[str, ...]
    against: tuple[str, ...] = ()


def variants(windows: list[int]) -> list[Variant]:
    """Per window: the small GAT, its ablation; then one XGBoost baseline (it has no window)."""
    out: list[Variant] = []
    for w in windows:
        gat, abl = f"gat-w{w}", f"ablation-w{w}"
        out.append(Variant(gat, "train", (*SMALL_GAT, f"model.window={w}"), against=(abl, "xgb")))
        out.append(Variant(abl, "train", (*SMALL_GAT, f"model.window={w}", "model.graph=false")))
    out.append(Variant("xgb", "baseline", SHARED))
    return out


def gpuetl(*args: str, log: Path) -> None:
    """Run one gpuetl command, its output appended to the market's log; a failure stops the script."""
    t0 = time.perf_counter()
    with log.open("a") as fh:
        fh.write(f"$ gpuetl {' '.join(args)}\n")
        fh.flush()
        rc = subprocess.call([sys.executable, "-m", "gpuetl", *args], stdout=fh, stderr=subprocess.STDOUT)
    print(f"  {args[0]:<8} {time.perf_counter() - t0:7.0f} s  {' '.join(args[1:3])}", flush=True)
    if rc:
        raise SystemExit(f"gpuetl {args[0]} failed (exit {rc}); see {log}")


def prepare(seed: int, root: Path, codes: int, start: str, end: str) -> Path:
    """The market's lake, dataset and graphs (each made once)."""
    lake, ds, log = root / "raw", root / "dataset", root / "log.txt"
    root.mkdir(parents=True, exist_ok=True)
    if not lake.exists() or not any(lake.iterdir()):
        gpuetl("synth", "--codes", str(codes), "--start", start, "--end", end, "--seed", str(seed),
               "--out", str(lake), log=log)
    if not (ds / "metadata.json").exists():
        gpuetl("build", "--lake", str(lake), "--out", str(ds), "--backend", "cpu", log=log)
    if not (ds / "graphs").exists():
        gpuetl("graph", "--dataset", str(ds), "--lake", str(lake), "--backend", "cpu", log=log)
    return ds


def fit(v: Variant, ds: Path, root: Path, threads: int) -> dict:
    """One variant's metrics.json (run once)."""
    out = root / "runs" / v.name
    metrics = out / "metrics.json"
    if not metrics.exists():
        cfg = "configs/train/gat.yaml" if v.command == "train" else "configs/train/xgb.yaml"
        sets = [a for s in (*v.sets, f"run.threads={threads}") for a in ("--config-set", s)]
        stopped = out.with_name(f".{out.name}.tmp").is_dir()  # a run that was stopped: continue it
        gpuetl(v.command, "--config", cfg, "--dataset", str(ds), "--out", str(out), "--no-progress", *sets,
               *(["--resume"] if stopped else []), log=root / "log.txt")
    return json.loads(metrics.read_text())


def daily(metrics: dict) -> pd.Series:
    """The run's daily test RankIC, by date (for the paired differences)."""
    d = metrics["daily"]
    return pd.Series([np.nan if v is None else v for v in d["rank_ic"]], index=pd.to_datetime(d["dates"]),
                     dtype=float)


def pooled(runs: list[dict]) -> dict[str, float]:
    """The metrics' own summaries (`summarize`) of the runs' daily series laid end to end."""
    keys = ("ic", "rank_ic", "hit_rate", "spread", "long_short")
    return summarize({k: np.array([np.nan if v is None else v for m in runs for v in m["daily"][k]], dtype=float)
                      for k in keys})


def report(results: dict[int, dict[str, dict]], vs: list[Variant]) -> str:
    """Markdown: per seed and pooled mean test RankIC (t), the pooled JPX score (mean / std of the daily
    spread), mean validation RankIC; then the paired daily RankIC differences."""
    names = [v.name for v in vs]
    lines = ["| model | " + " | ".join(f"seed {s}" for s in results) + " | pooled (t) | JPX score | validation |",
             "|---|" + "---:|" * (len(results) + 3)]
    for n in names:
        runs = [results[s][n] for s in results]
        p = pooled(runs)
        valid = np.nanmean([f.get("best_valid_rank_ic") or np.nan for m in runs for f in m["folds"]])
        cells = [f"{m['overall']['rank_ic']:+.4f}" for m in runs]
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {p['rank_ic']:+.4f} ({p['rank_ic_t']:+.2f}) | "
                     f"{p['jpx_score']:+.3f} | {valid:.4f} |")
    lines += ["", "Paired daily differences (same markets, same test days):", "",
              "| comparison | " + " | ".join(f"seed {s}" for s in results) + " | pooled (t) | seeds ahead |",
              "|---|" + "---:|" * (len(results) + 2)]
    for v in vs:
        for other in v.against:
            diffs = [(daily(results[s][v.name]) - daily(results[s][other])).dropna() for s in results]
            both = np.concatenate([d.to_numpy() for d in diffs])
            t = information_ratio(both) * np.sqrt(len(both))
            ahead = sum(d.mean() > 0 for d in diffs)
            lines.append(f"| {v.name} - {other} | " + " | ".join(f"{d.mean():+.4f}" for d in diffs)
                         + f" | {both.mean():+.4f} ({t:+.2f}) | {ahead} of {len(diffs)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="101,102,103", help="comma-separated market seeds")
    p.add_argument("--codes", type=int, default=200)
    p.add_argument("--start", default="2019-01-04")
    p.add_argument("--end", default="2024-12-30")
    p.add_argument("--windows", default="60,5", help="comma-separated model.window values")
    p.add_argument("--threads", type=int, default=0, help="run.threads of every run (0: all cores)")
    p.add_argument("--out", default="data/seeds", help="one folder per market: raw/, dataset/, runs/, log.txt")
    p.add_argument("--report", help="write the Markdown tables here too")
    a = p.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    vs = variants([int(w) for w in a.windows.split(",")])
    results: dict[int, dict[str, dict]] = {}
    for seed in seeds:
        root = Path(a.out) / f"seed-{seed}"
        print(f"market seed {seed} -> {root}", flush=True)
        ds = prepare(seed, root, a.codes, a.start, a.end)
        results[seed] = {v.name: fit(v, ds, root, a.threads) for v in vs}
    text = (f"Mean daily test RankIC, {a.codes} codes, {a.start} to {a.end}, market seeds {a.seeds}; "
            f"runs in {a.out}/seed-*/runs.\n\n" + report(results, vs))
    print(text)
    if a.report:
        Path(a.report).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
