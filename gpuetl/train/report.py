"""The run's Markdown report (per-fold tables, the overall row, training cost) and its PNG charts (training
curves, daily test RankIC, cumulative long-short return), from metrics.json's content."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from gpuetl.train.rules import rules_table

COLUMNS = (("rank_ic", "RankIC", "+.4f"), ("rank_icir", "RankICIR", "+.3f"), ("rank_ic_t", "t", "+.2f"),
           ("ic", "IC", "+.4f"), ("icir", "ICIR", "+.3f"), ("hit_rate", "hit", ".3f"),
           ("jpx_score", "JPX score", "+.3f"), ("long_short_cum", "long-short", "+.1%"), ("days", "days", "d"))


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


def fold_table(metrics: dict[str, Any]) -> str:
    """The per-fold metrics and the overall row as a Markdown table ('chosen' and 'valid RankIC': per seed)."""
    head = ["fold", "test year", *(c[1] for c in COLUMNS), "chosen", "valid RankIC"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for f in metrics["folds"]:
        members = f["members"]
        cells = [str(f["fold"]), str(f["test_year"]), *(_fmt(f[k], s) for k, _, s in COLUMNS),
                 "/".join(str(m["best"]) for m in members),
                 "/".join(_fmt(m["best_valid_rank_ic"], "+.4f") for m in members)]
        lines.append("| " + " | ".join(cells) + " |")
    o = metrics["overall"]
    lines.append("| **all** | " + " | ".join(["", *(_fmt(o[k], s) for k, _, s in COLUMNS), "", ""]) + " |")
    return "\n".join(lines)


def seed_table(metrics: dict[str, Any]) -> str:
    """Each seed's model alone over all test days, the mean +- std over seeds, and the ensemble."""
    keys = (("rank_ic", "RankIC", "+.4f"), ("rank_ic_t", "t", "+.2f"), ("jpx_score", "JPX score", "+.3f"),
            ("long_short_cum", "long-short", "+.1%"))
    seeds = metrics["seeds"]
    lines = ["| seed | " + " | ".join(k[1] for k in keys) + " |", "|" + "---:|" * (len(keys) + 1)]
    for e in seeds["each"]:
        lines.append(f"| {e['seed']} | " + " | ".join(_fmt(e[k], s) for k, _, s in keys) + " |")
    lines.append("| mean ± std | " + " | ".join(f"{_fmt(seeds['mean'][k], s)} ± {_fmt(seeds['std'][k], s.lstrip('+'))}"
                                               for k, _, s in keys) + " |")
    lines.append("| **ensemble** | " + " | ".join(_fmt(metrics["overall"][k], s) for k, _, s in keys) + " |")
    return "\n".join(lines)


def horizon_table(metrics: dict[str, Any]) -> str:
    """Each head's scores against its own target over all test days."""
    keys = (("rank_ic", "RankIC", "+.4f"), ("rank_ic_t", "t", "+.2f"), ("ic", "IC", "+.4f"),
            ("jpx_score", "JPX score", "+.3f"), ("hit_rate", "hit", ".3f"))
    lines = ["| head (target) | " + " | ".join(k[1] for k in keys) + " |", "|---|" + "---:|" * len(keys)]
    for head, summary in metrics["horizons"].items():
        name = f"**{head}**" if head == metrics["label"] else head
        lines.append(f"| {name} | " + " | ".join(_fmt(summary[k], s) for k, _, s in keys) + " |")
    return "\n".join(lines)


def edge_table(metrics: dict[str, Any]) -> str:
    """Edges per day of each relation, per fold (mean, min-max, days without an edge)."""
    lines = ["| fold | relation | edges per day (mean) | min-max | days without |", "|---:|---|---:|---:|---:|"]
    for f in metrics["folds"]:
        for rel, e in f.get("edges", {}).items():
            span = f"{e['min']:,}-{e['max']:,}"
            lines.append(f"| {f['fold']} | {rel} | {e['mean']:,.0f} | {span} | {e['days_without']} |")
    return "\n".join(lines)


def write_report(out: Path, metrics: dict[str, Any]) -> Path:
    charts = write_charts(out, metrics)
    t = metrics["train"]
    chosen = "epoch" if metrics["model"] != "xgb" else "trees"
    lines = [
        f"# {metrics['model']}: walk-forward test metrics",
        "",
        f"Label `{metrics['label']}` (heads: {', '.join(metrics['heads'])}); metrics per test day over the codes "
        "that count, then averaged. RankIC t = mean / std * sqrt(days); JPX score = mean / std of the daily "
        "spread (top/bottom 200, or 20% of the names below 400, weights linspace(2, 1)); long-short = "
        "cumulated daily return of the same portfolios. 'chosen' is the "
        f"{chosen} picked by validation RankIC.",
        "",
        fold_table(metrics),
        "",
        f"The **all** row pools the test days: each day counts once, so a fold weighs by its days "
        f"({', '.join(str(f['days']) for f in metrics['folds'])}), and a short fold never counts as a full year.",
    ]
    if metrics.get("rules"):
        lines += ["", "## Beside simple rules", "",
                  "The same test days, codes, label and metrics, ranked by rules that fit nothing "
                  "(gpuetl/train/rules.py); 'model minus it' is the mean paired daily difference of RankIC, with its "
                  "t-statistic. A model that does not beat them has no signal worth its cost.", "",
                  rules_table(metrics)]
        if metrics.get("rules_missing"):
            lines += ["", "Rules the dataset lacks the columns of: " + ", ".join(metrics["rules_missing"]) + "."]
    if len(metrics.get("horizons", {})) > 1:
        lines += ["", "## Horizons", "", "Each head scored against its own target on the same test days (the run's "
                  "label in bold is the one above). A k-day target overlaps the next k - 1 days', so its daily values "
                  "are correlated and its t overstates the evidence by about sqrt(k).", "", horizon_table(metrics)]
    if len(metrics["seeds"]["each"]) > 1:
        lines += ["", "## Seeds", "", "Each seed's model alone over all test days, and the mean and std (ddof 1) over "
                  "seeds; the run's scores above are the **ensemble**'s: the mean of the seeds' per-day z-scores.", "",
                  seed_table(metrics)]
    if any(f.get("edges") for f in metrics["folds"]):
        lines += ["", "## Graph", "", "Edges per day of each relation the model learnt over, from each fold's first "
                  "training day to its last test day (`edges.parquet` has every day).", "", edge_table(metrics)]
    if metrics["skipped_years"]:
        lines += ["", "Years without a fold: " + "; ".join(metrics["skipped_years"])]
    rate = t["stock_days_per_s"]
    lines += ["", f"Training: {t['seconds']:.1f} s, {t['stock_days']:,} stock-days"
              + (f" ({rate:,.0f} stock-days/s)" if rate else "")
              + f", peak host memory {t['peak_host_bytes'] / 2**30:.2f} GiB"
              + (f", peak device memory {t['peak_device_bytes'] / 2**30:.2f} GiB" if t["peak_device_bytes"] else "")
              + "."]
    lines += ["", *(f"![{name}](charts/{name}.png)" for name in charts), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def write_charts(out: Path, metrics: dict[str, Any]) -> list[str]:
    """charts/curves.png, rank_ic.png, rules.png (with the rules), long_short.png; returns their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = out / "charts"
    folder.mkdir(parents=True, exist_ok=True)
    names: list[str] = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for f in metrics["folds"]:
        for m in f["members"]:
            h = m["history"]
            x = [e.get("epoch", e.get("trees")) for e in h]
            name = f"fold {f['fold']}" + (f" seed {m['seed']}" if len(f["members"]) > 1 else "")
            if h and "train_loss" in h[0]:
                axes[0].plot(x, [e["train_loss"] for e in h], marker="o", label=name)
            axes[1].plot(x, [e["valid_rank_ic"] for e in h], marker="o", label=name)
    axes[0].set(title="training loss", xlabel="epoch")
    axes[1].set(title="validation RankIC", xlabel="epoch" if metrics["model"] != "xgb" else "trees")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=8)
    _save(plt, fig, folder, "curves", names)

    daily = metrics["daily"]
    dates = np.array(daily["dates"], dtype="datetime64[D]")
    ric = _series(daily["rank_ic"])
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.bar(dates, np.nan_to_num(ric), width=1.0, color="tab:blue", alpha=0.4, label="daily RankIC")
    rolling = np.convolve(np.nan_to_num(ric), np.ones(20) / 20, mode="same")
    ax.plot(dates, rolling, color="tab:blue", label="20-day mean")
    ax.axhline(0, color="black", lw=0.5)
    ax.set(title=f"{metrics['model']}: test RankIC per day")
    ax.legend(fontsize=8)
    _save(plt, fig, folder, "rank_ic", names)

    if daily.get("rules_rank_ic"):
        fig, ax = plt.subplots(figsize=(11, 4))
        ax.plot(dates, np.cumsum(np.nan_to_num(ric)), lw=2, label=metrics["model"])
        for rule, values in daily["rules_rank_ic"].items():
            ax.plot(dates, np.cumsum(np.nan_to_num(_series(values))), lw=1, label=rule)
        ax.axhline(0, color="black", lw=0.5)
        ax.set(title=f"{metrics['model']} and simple rules: cumulative daily test RankIC")
        ax.legend(fontsize=8)
        _save(plt, fig, folder, "rules", names)

    ls = _series(daily["long_short"])
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(dates, np.cumprod(1 + np.nan_to_num(ls)) - 1, color="tab:green")
    ax.axhline(0, color="black", lw=0.5)
    ax.set(title=f"{metrics['model']}: cumulative long-short return (test days)")
    _save(plt, fig, folder, "long_short", names)
    return names


def _series(values: list[float | None]) -> np.ndarray:
    """A daily series of metrics.json (null where undefined) as floats (NaN)."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _save(plt: Any, fig: Any, folder: Path, name: str, names: list[str]) -> None:
    """charts/<name>.png, and its name in `names`."""
    fig.tight_layout()
    fig.savefig(folder / f"{name}.png", dpi=100)
    plt.close(fig)
    names.append(name)
