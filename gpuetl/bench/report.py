"""The benchmark's results: the equality verdicts, the ratios, results.json, results.md, a PNG chart, a table,
and the line printed as each stage ends.

A ratio `A vs B` is B's median seconds / A's for the same stage in the same run (how many times faster A
is; below 1, slower), given only where both ran and B's output was checked equal (or no check was asked).
Every timed row says the machine's 1-minute load before and after its timed runs, and whether they were run
again because it moved (gpuetl.bench.measure.load_moved), so a number taken on a busy machine shows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from gpuetl.bench.spec import BACKENDS, GPUETL_BACKENDS, STAGES

GIB = 2**30


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For every stage, each gpuetl backend against every other backend that ran the stage (and agreed)."""
    ok = {(r["backend"], r["stage"]): r for r in results if r["status"] == "ok" and r.get("equal") is not False}
    out = []
    for stage in STAGES:
        for fast in GPUETL_BACKENDS:
            for slow in BACKENDS:
                if slow == fast or slow == "gpu" or (fast, stage) not in ok or (slow, stage) not in ok:
                    continue
                out.append({"stage": stage, "fast": fast, "slow": slow,
                            "ratio": ok[(slow, stage)]["median_s"] / ok[(fast, stage)]["median_s"]})
    return out


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    if r["status"] != "ok":
        return r["status"]
    text = f"{r['median_s']:.3f} s ±{100 * r['spread']:.0f}%"
    return text + (" NOT EQUAL" if r.get("equal") is False else "")


def load_text(r: dict[str, Any]) -> str:
    """The 1-minute load around a row's timed runs, e.g. "1.1 -> 1.3", and its reruns; "" when not read."""
    if r.get("load_before") is None:
        return ""
    text = f"{r['load_before']:.1f} -> {r['load_after']:.1f}"
    retries = r.get("load_retries", 0)
    return text + (f" (timed runs repeated {retries}x: the load moved)" if retries else "")


def progress_line(backend: str, r: dict[str, Any]) -> str:
    """The line printed as a worker ends a stage: its median and load, why it did not run, or an input's time."""
    head = f"bench: {backend} {r['stage']}"
    if r["status"] != "ok":
        return f"{head} {r['status']}: {r.get('note', '')}"
    if r.get("input"):
        return f"{head} {r['seconds'][0]:.3f} s (an input of the chosen stages, untimed)"
    runs = "1 run" if r["repeat"] == 1 else f"median of {r['repeat']}"
    load = load_text(r)
    note = f"; {r['note']}" if r.get("note") else ""
    return f"{head} {r['median_s']:.3f} s ({runs}{', load ' + load if load else ''}){note}"


def _grid(report: dict[str, Any]) -> tuple[list[str], list[str], list[tuple[str, str]], dict[tuple[str, str], Any]]:
    by = {(r["backend"], r["stage"]): r for r in report["results"]}
    backends = [b for b in BACKENDS if any(k[0] == b for k in by)]
    stages = [s for s in STAGES if any(k[1] == s for k in by)]
    pairs = [(f, s) for f in GPUETL_BACKENDS for s in backends
             if f in backends and s != f and s != "gpu" and any(x["fast"] == f and x["slow"] == s
                                                                  for x in report["ratios"])]
    return backends, stages, pairs, by


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main table: median seconds (± spread) per backend, then the ratios."""
    backends, stages, pairs, by = _grid(report)
    ratio = {(x["stage"], x["fast"], x["slow"]): x["ratio"] for x in report["ratios"]}
    header = ["stage", *backends, *(f"{f} vs {s}" for f, s in pairs)]
    rows = []
    for stage in stages:
        cells = [_cell(by.get((b, stage))) for b in backends]
        cells += [f"{ratio[(stage, f, s)]:.2f}x" if (stage, f, s) in ratio else "-" for f, s in pairs]
        rows.append([stage, *cells])
    return header, rows


def markdown(report: dict[str, Any]) -> str:
    header, rows = table_rows(report)
    m, size = report["machine"], report["size"]
    gpu = m.get("gpu") or {}
    start, end = m["load_average"], m.get("load_average_end")
    s = report["settings"]
    lines = [f"# gpuetl bench: {size['label']}, {report['rows']:,} daily bar rows", "",
             f"Machine: {m['cpu']}, {m['cores_usable']} usable cores of {m['cores']}, {m['memory_gib']} GiB; "
             f"GPU: {gpu.get('name', m.get('gpu_note', 'none'))}; 1-minute load average {start[0]} at the start, "
             f"{end[0] if end else '?'} at the end (1, 5, 15 minutes: {start} and {end or '?'}); {m['platform']}, "
             f"Python {m['python']}, gpuetl {m['gpuetl']}.",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + ".",
             f"Each stage: {s['warmup']} warm-up run(s), then up to {s['repeat']} "
             f"timed runs (fewer when one run exceeds {s['budget_s']:.0f} s / repeats); "
             "median ± (max - min) / median. `A vs B`: B's median / A's (how many times faster A is). Rows: daily "
             "bar rows of the size, for every stage. Peak host RSS: the process's, sampled during the stage's runs. "
             + (f"Load: the 1-minute load average before -> after the timed runs; they are run again (at most "
                f"{s['load_retries']} more times) when it moved by more than {s['load_tolerance']:g} core(s) "
                "beyond the stage's own busy cores. " if "load_retries" in s else "")
             + ("Every output checked against gpuetl on the CPU before its ratio counts." if report["checked"]
                else "Outputs not checked (--no-check)."), "",
             "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "| backend | stage | rows/s | peak host RSS | peak device | load | same numbers | note |",
              "|---|---|---:|---:|---:|---|---|---|"]
    verdict = {True: "equal", False: "NOT EQUAL", None: "-"}
    for r in report["results"]:
        rate = f"{r['rows_per_s']:,.0f}" if r.get("rows_per_s") else "-"
        rss = f"{r['peak_rss_bytes'] / GIB:.2f} GiB" if r.get("peak_rss_bytes") else "-"
        dev = f"{r['peak_device_bytes'] / GIB:.2f} GiB" if r.get("peak_device_bytes") is not None else "-"
        note = "; ".join([*r.get("mismatches", []), *([r["note"]] if r.get("note") else [])])
        lines.append(f"| {r['backend']} | {r['stage']} | {rate} | {rss} | {dev} | {load_text(r) or '-'} | "
                     f"{verdict[r.get('equal')]} | {note} |")
    skipped = [f"{b}: {v['note']}" for b, v in report["backends"].items() if v.get("note")]
    if skipped:
        lines += ["", "Backends not run: " + "; ".join(skipped) + "."]
    return "\n".join(lines) + "\n"


def console_table(report: dict[str, Any]) -> Table:
    header, rows = table_rows(report)
    table = Table(*header, title=f"gpuetl bench: {report['size']['label']}, {report['rows']:,} rows")
    for row in rows:
        table.add_row(*row)
    return table


def chart(report: dict[str, Any], path: Path) -> None:
    """Median seconds per stage and backend as grouped bars (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends, stages, _, by = _grid(report)
    stages = [s for s in stages if any(by.get((b, s), {}).get("status") == "ok" for b in backends)]
    fig, ax = plt.subplots(figsize=(1.4 * max(len(stages), 3) + 2, 4.5))
    width = 0.8 / max(len(backends), 1)
    for i, b in enumerate(backends):
        xs = [j + i * width for j, s in enumerate(stages) if by.get((b, s), {}).get("status") == "ok"]
        ys = [by[(b, s)]["median_s"] for s in stages if by.get((b, s), {}).get("status") == "ok"]
        ax.bar(xs, ys, width, label=b)
    ax.set_xticks([j + width * (len(backends) - 1) / 2 for j in range(len(stages))], stages)
    ax.set_yscale("log")
    ax.set_ylabel("median seconds (log)")
    ax.set_title(f"gpuetl bench, {report['size']['label']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(report: dict[str, Any], out: Path, with_chart: bool) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md"]
    paths[0].write_text(json.dumps(report, indent=2, default=str))
    paths[1].write_text(markdown(report))
    if with_chart:
        paths.append(out / "results.png")
        chart(report, paths[-1])
    return paths
