"""`demo-server` flags over the `demo:` settings, and `serve` as a process: prints how to call it, stops on SIGTERM."""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from gpuetl.commands import demo_server as fake_cli
from gpuetl.commands.common import common_options
from gpuetl.config import load_settings


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    fake_cli.add_parser(sub, common_options())
    return parser.parse_args(["demo-server", *argv])


def test_flags_override_demo_settings() -> None:
    base = load_settings().demo
    args = parse("--port", "8123", "--plan", "free", "--api-key", "k", "--codes", "30", "--page-size", "50",
                 "--start", "2024-01-04", "--faults", "error=0.1,drop=0.02", "--set", "demo.seed=9")
    assert args.run is fake_cli.run
    demo = fake_cli.demo_settings(args, base)
    assert (demo.port, demo.plan, demo.api_key, demo.codes, demo.page_size, demo.start) == (
        8123, "free", "k", 30, 50, "2024-01-04")
    assert demo.end == base.end and demo.host == base.host
    assert (demo.faults.error_rate, demo.faults.drop_rate, demo.faults.slow_rate) == (0.1, 0.02, base.faults.slow_rate)
    assert fake_cli.demo_settings(parse(), base) == base


def test_bad_flags_are_refused() -> None:
    with pytest.raises(SystemExit):
        parse("--plan", "gold")
    with pytest.raises(ValueError, match="error="):
        fake_cli.demo_settings(parse("--faults", "errors=0.1"), load_settings().demo)


SERVE = """
from gpuetl.config import load_settings
from gpuetl.fake.server import serve
from gpuetl.fake.tiny import tiny_market
serve(load_settings().demo, tiny_market())
"""


def test_serve_prints_the_url_and_key_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SERVE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith("Ctrl-C"):
            line = proc.stdout.readline()
            assert line, f"server exited: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line.strip())
        text = "\n".join(lines)
        assert "API key: demo" in text
        m = re.search(r"curl -H 'x-api-key: demo' '(http://127\.0\.0\.1:\d+/v2/\S+)'", text)
        assert m, text
        req = urllib.request.Request(m[1], headers={"x-api-key": "demo"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read())["data"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "served 1 data requests" in err and "served" not in out  # the log line goes to stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
