"""The benchmark suites stay runnable: every suite in smoke mode on the CPU, results as JSON + Markdown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_run_writes_json_and_markdown(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--backend", "cpu", "--smoke",
                           "--suites", "ewm,asof", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    combined = [p for p in tmp_path.glob("*.json") if p.stem.count("-") == 1]
    rows = json.loads(combined[0].read_text())
    want = [("ewm", "500x750", "cpu"), ("asof", "500x750", "cpu")]
    assert [(r["suite"], r["size"], r["backend"]) for r in rows] == want
    assert all(r["median_s"] > 0 for r in rows)
    assert "| ewm | 500x750 | cpu |" in next(tmp_path.glob("*.md")).read_text()
