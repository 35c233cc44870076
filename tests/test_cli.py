"""The CLI end to end, in a subprocess as a user runs it."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gpuetl.commands import build_parser, main
from gpuetl.doctor import installed_version
from gpuetl.lake.manifest import FILENAME as MANIFEST


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gpuetl", *args], capture_output=True, text=True, timeout=120)


def test_doctor_on_cpu_reports_backend_and_versions() -> None:
    proc = run("doctor", "--backend", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["backend"] == "cpu"
    assert info["reason"] == "backend: cpu was requested"
    assert info["versions"]["pandas"] == installed_version("pandas")
    assert info["versions"]["torch"] == installed_version("torch")
    assert info["settings"].endswith("configs/gpuetl.yaml")


def test_doctor_table_output() -> None:
    proc = run("doctor", "--backend", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "backend" in proc.stdout and "cpu" in proc.stdout and "torch_geometric" in proc.stdout


def test_unknown_setting_fails_with_its_path() -> None:
    proc = run("doctor", "--set", "gpu.rmm_poool=1GB")
    assert proc.returncode == 2
    assert "unknown key(s) gpu.rmm_poool; valid keys at gpu: device, rmm_pool" in proc.stderr


def test_gpu_requested_without_gpu_is_an_error_not_a_cpu_run() -> None:
    from gpuetl.backend import probe_gpu

    probe = probe_gpu()
    proc = run("doctor", "--backend", "gpu", "--json")
    if probe.usable:
        assert proc.returncode == 0 and json.loads(proc.stdout)["backend"] == "gpu"
    else:
        assert proc.returncode == 3
        assert "gpu was requested but the GPU cannot be used" in proc.stderr
        assert proc.stdout == ""


def test_process_entry_keeps_exit_codes_and_output() -> None:
    ok = run("--version")
    assert ok.returncode == 0 and ok.stdout.startswith("gpuetl ")
    bad = run("no-such-command")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_build_errors_are_one_line_with_nothing_written(tmp_path) -> None:
    out = tmp_path / "ds"
    no_lake = run("build", "--backend", "cpu", "--lake", str(tmp_path / "nolake"), "--out", str(out))
    assert no_lake.returncode == 1
    assert no_lake.stderr.startswith("gpuetl build: the lake at") and "fetch it first" in no_lake.stderr
    assert "Traceback" not in no_lake.stderr and not out.exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("features: {bogus: 1}\n")
    for config in (str(bad), str(tmp_path / "missing.yaml")):
        proc = run("build", "--backend", "cpu", "--config", config, "--out", str(out))
        assert proc.returncode == 2 and proc.stderr.startswith("gpuetl build: config error:"), proc.stderr
        assert "Traceback" not in proc.stderr and not out.exists()


# ------------------------------------------------------------------------------------------ in process


def commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser by its full name ("lake verify")."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}".strip()
                inner = commands(sub, full)
                out.update(inner or {full: sub})
    return out


def test_every_command_has_a_description_exit_codes_and_help_for_each_option() -> None:
    found = commands(build_parser())
    assert set(found) >= {"doctor", "fetch", "lake verify", "demo-server", "synth", "build", "graph"}
    for name, p in found.items():
        assert p.description and "\n" not in p.description.strip(), name
        assert "exit codes:" in (p.epilog or "") and "2  usage or config error" in (p.epilog or ""), name
        for action in p._actions:
            assert action.help, f"{name} {action.option_strings}"
    summaries = {"doctor", "fetch", "lake verify", "demo-server", "synth", "build", "graph"}
    assert all(any("--json" in a.option_strings for a in found[n]._actions) for n in summaries)


def one_line(capsys: pytest.CaptureFixture[str], argv: list[str], code: int, *expect: str) -> None:
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"gpuetl {argv[0]}"), err
    assert "Traceback" not in err and all(e in err for e in expect), err


def test_bad_inputs_are_one_line_with_the_documented_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # nothing here is a lake or a dataset
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    default = (Path(__file__).resolve().parents[1] / "configs" / "dataset" / "default.yaml").read_text()
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text(default.replace("start: null", "start: 2020-02-30"))
    cpu = ["--backend", "cpu"]
    one_line(capsys, ["build", *cpu, "--config-set", "start=2020-13-01"], 2, "start: '2020-13-01' is not a date")
    one_line(capsys, ["build", *cpu, "--config", str(bad_yaml)], 2, "start: '2020-02-30' is not a date (YYYY-MM-DD)")
    one_line(capsys, ["fetch", "--demo", "--set", "demo.start=2023-02-30"], 2, "demo.start: '2023-02-30'")
    one_line(capsys, ["fetch", "--start", "2024-13-01", "--end", "2024-12-31"], 2, "start '2024-13-01' is not a date")
    one_line(capsys, ["fetch", "--demo", "--start", "2020-01-06", "--end", "2020-01-31"], 2,
             "is not inside the demo market (2022-01-04 .. 2024-12-30)", "--set demo.start=")
    one_line(capsys, ["fetch", "--demo", "--lake", str(afile)], 2, f"--lake {afile} is a file")
    one_line(capsys, ["build", *cpu, "--lake", str(afile)], 2, f"--lake {afile} is a file")
    one_line(capsys, ["graph", *cpu, "--dataset", str(tmp_path), "--lake", str(afile)], 2, "is a file")
    one_line(capsys, ["lake", "verify", "--lake", str(afile)], 2, "is a file")
    one_line(capsys, ["lake", "verify", "--lake", str(tmp_path)], 1, "no lake at", "gpuetl fetch --demo")
    one_line(capsys, ["graph", *cpu], 1, "no dataset at data/datasets/default", "gpuetl build")
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / MANIFEST).write_text('{"format": 1, "datasets": {}}')  # an empty lake: verify reads its --datasets
    for command in (["fetch", "--demo"], ["synth"], ["lake", "verify", "--lake", str(lake)]):
        one_line(capsys, [*command, "--datasets", "bars_daily,prices"], 2,
                 "unknown dataset(s) prices; valid: calendar, master, bars_daily")

    def boom(args: argparse.Namespace, settings: Any) -> int:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr("gpuetl.commands._doctor", boom)
    one_line(capsys, ["doctor"], 1, "RuntimeError: something nobody expected (rerun with -v for the traceback)")
    assert main(["doctor", "-v"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_make_help_lists_every_target_with_its_variables_expanded() -> None:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(["make", "-s", "help", "VENV=/opt/venv"], cwd=root, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    phony = re.search(r"^\.PHONY:(.*)$", (root / "Makefile").read_text(), re.M)
    assert phony is not None
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ")}
    assert listed == set(phony.group(1).split())
    assert "$(" not in proc.stdout and "/opt/venv" in proc.stdout
