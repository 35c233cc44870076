"""The CLI end to end, in a subprocess as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from gpuetl.doctor import installed_version


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
