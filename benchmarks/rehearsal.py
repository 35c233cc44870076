"""Multi-node rehearsal: a Dask scheduler and 3 worker processes that share nothing but an S3 server build the
demo dataset and its graphs, one worker is killed (SIGKILL) mid-build, and the result must equal the
single-process build bit for bit.

    python -m benchmarks.rehearsal --out benchmarks/results/cpu-<date>-rehearsal.md   (make rehearsal)

Without --endpoint it starts moto's S3 server on a loopback port (with --endpoint: MinIO or any S3 store, the
credentials from the environment). Each worker runs in its own folder (cwd, HOME, TMPDIR and Dask's local
directory) with no path of the command's: the lake, the spill between tasks and the written years reach them
only through s3://. The command itself (the client) runs `gpuetl synth`, `build` and `graph` as a user would.
Prints the figures (wall time per step, peak RSS per process and in total) and writes them as Markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

WORKERS = 3
POLL_S = 0.05  # how often the killer looks at the scheduler


@dataclasses.dataclass
class Cluster:
    address: str
    env: dict[str, str]
    workers: dict[str, subprocess.Popen[bytes]]
    scheduler: subprocess.Popen[bytes]
    folders: dict[str, Path]


@dataclasses.dataclass
class Step:
    name: str
    seconds: float
    peak_rss: int  # bytes, the command's process


@contextlib.contextmanager
def s3_server(endpoint: str | None) -> Iterator[str]:
    """`endpoint`, or moto's S3 server on a loopback port for the block."""
    if endpoint:
        yield endpoint
        return
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_env(endpoint: str) -> dict[str, str]:
    """The AWS settings every process gets (as a user sets them for MinIO); credentials from the environment,
    moto's dummy ones otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_DEFAULT_REGION=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
               AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
               AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"), PYTHONUNBUFFERED="1")
    return env


@contextlib.contextmanager
def cluster(root: Path, env: dict[str, str], workers: int = WORKERS, memory_limit: str = "4GB") -> Iterator[Cluster]:
    """A scheduler and `workers` worker processes (no nanny: a killed worker stays dead), each in its own folder."""
    from distributed import Client

    procs: list[subprocess.Popen[bytes]] = []
    try:
        sched_dir = root / "scheduler"
        sched_dir.mkdir(parents=True)
        file = sched_dir / "scheduler.json"
        scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                      "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
                                     cwd=sched_dir, env=env, stdout=subprocess.DEVNULL, stderr=_log(sched_dir))
        procs.append(scheduler)
        address = _scheduler_address(file, scheduler)
        folders, started = {}, {}
        for i in range(workers):
            name = f"w{i}"
            own = root / name
            own.mkdir()
            wenv = {**env, "HOME": str(own), "TMPDIR": str(own)}
            started[name] = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--name", name, "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--memory-limit", memory_limit, "--local-directory", str(own)],
                cwd=own, env=wenv, stdout=subprocess.DEVNULL, stderr=_log(own))
            procs.append(started[name])
            folders[name] = own
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=120)
        yield Cluster(address, env, started, scheduler, folders)
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _log(folder: Path) -> Any:
    return open(folder / "log.txt", "wb")


def _scheduler_address(file: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the scheduler exited ({proc.returncode}): see {file.parent / 'log.txt'}")
        with contextlib.suppress(FileNotFoundError, ValueError):
            return str(json.loads(file.read_text())["address"])
        time.sleep(POLL_S)
    raise RuntimeError(f"no scheduler address in {file} after {timeout} s")


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes; 0 where /proc has none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def gpuetl(name: str, argv: list[str], env: dict[str, str], cwd: Path) -> Step:
    """`python -m gpuetl ARGV` as a user runs it; its wall time and peak RSS (from wait4)."""
    start = time.perf_counter()
    with open(cwd / f"{name}.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gpuetl", *argv], cwd=cwd, env=env, stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    secs = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"gpuetl {' '.join(argv)} exited {proc.returncode}:\n{(cwd / f'{name}.log').read_text()}")
    return Step(name, secs, usage.ru_maxrss * 1024)


def _progress(dask_scheduler: Any) -> tuple[int, dict[str, int]]:
    """On the scheduler: code tasks finished, and tasks processing per worker name."""
    done = sum(1 for k, ts in dask_scheduler.tasks.items() if str(k).startswith("codes-") and ts.state == "memory")
    return done, {str(ws.name): len(ws.processing) for ws in dask_scheduler.workers.values()}


class Killer(threading.Thread):
    """Kills (SIGKILL) the busiest worker once a code task is done and the build goes on."""

    def __init__(self, c: Cluster, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.c, self.stop = c, stop
        self.killed: str | None = None
        self.peak = 0
        self.when = ""

    def run(self) -> None:
        from distributed import Client

        with Client(self.c.address, timeout="30s") as client:
            while not self.stop.is_set():
                done, busy = client.run_on_scheduler(_progress)
                working = {n: k for n, k in busy.items() if k > 0 and n in self.c.workers}
                if done >= 1 and working:
                    name = max(working, key=lambda n: working[n])
                    proc = self.c.workers[name]
                    self.peak = peak_rss(proc.pid)
                    proc.kill()
                    proc.wait()
                    self.killed, self.when = name, f"{done} code task(s) done, {sum(busy.values())} running"
                    return
                time.sleep(POLL_S)


def frames(url: str, cache: Path) -> dict[str, Any]:
    """Each folder's Parquet files of the dataset tree at `url` as one pandas frame, rows in key order (graph
    parts have random names)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gpuetl.tensors import open_dataset

    root = open_dataset(url, "cpu", cache=cache).path
    folders: dict[str, list[Path]] = {}
    for f in sorted(root.rglob("*.parquet")):
        folders.setdefault(str(f.parent.relative_to(root)), []).append(f)
    out = {}
    for k, files in folders.items():
        df = pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()
        keys = [c for c in ("day", "src", "dst", "Date", "Code") if c in df.columns]
        out[k] = df.sort_values(keys, kind="stable").reset_index(drop=True) if keys else df
    return out


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Folders whose frames differ in any value, dtype or row (NaN equal to NaN): empty when equal."""
    import pandas as pd

    if sorted(a) != sorted(b):
        return [f"folders differ: {sorted(a)} vs {sorted(b)}"]
    out = []
    for k in sorted(a):
        try:
            pd.testing.assert_frame_equal(a[k], b[k], check_exact=True)
        except AssertionError as err:
            out.append(f"{k}: {str(err).splitlines()[0]}")
    return out


def rehearse(root: Path, endpoint: str | None = None, sets: tuple[str, ...] = (), build_sets: tuple[str, ...] = (),
             graph_sets: tuple[str, ...] = (), memory_limit: str = "4GB",
             datasets: str | None = None) -> dict[str, Any]:
    """The whole rehearsal in `root` (a fresh folder); its figures and checks as a dict."""
    import boto3

    root.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    with s3_server(endpoint) as ep:
        env = s3_env(ep)
        bucket = f"gpuetl-rehearsal-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=ep, region_name=env["AWS_DEFAULT_REGION"],
                     aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=bucket)
        s3 = f"s3://{bucket}"
        me = root / "client"
        me.mkdir()
        common = ["--backend", "cpu", "--no-progress", "--set", f"paths.data={me}/data",
                  "--set", f"paths.cache={me}/cache", "--set", f"paths.datasets={me}/data/datasets",
                  *(a for s in sets for a in ("--set", s))]
        bsets = [a for s in build_sets for a in ("--config-set", s)]
        gsets = [a for s in graph_sets for a in ("--config-set", s)]
        only = ["--datasets", datasets] if datasets else []
        steps = [gpuetl("synth", ["synth", *common, *only, "--out", f"{s3}/lake"], env, me)]
        steps.append(gpuetl("build (1 process)", ["build", *common, *bsets, "--lake", f"{s3}/lake",
                                                  "--out", f"{s3}/reference"], env, me))
        steps.append(gpuetl("graph (1 process)", ["graph", *common, *gsets, "--lake", f"{s3}/lake",
                                                  "--dataset", f"{s3}/reference"], env, me))
        with cluster(root / "cluster", env, memory_limit=memory_limit) as c:
            stop = threading.Event()
            killer = Killer(c, stop)
            killer.start()
            try:
                steps.append(gpuetl("build (3 workers, one killed)",
                                    ["build", *common, *bsets, "--lake", f"{s3}/lake", "--out", f"{s3}/cluster",
                                     "--cluster", c.address], env, me))
            finally:
                stop.set()
                killer.join()
            steps.append(gpuetl("graph (workers left)", ["graph", *common, *gsets, "--lake", f"{s3}/lake",
                                                         "--dataset", f"{s3}/cluster", "--cluster", c.address],
                                env, me))
            peaks = {n: (killer.peak if n == killer.killed else peak_rss(p.pid)) for n, p in c.workers.items()}
            peaks["scheduler"] = peak_rss(c.scheduler.pid)
            mirrors = {n: sorted(str(p.relative_to(f)) for p in f.glob("**/gpuetl/remote/*/*") if p.is_dir())
                       for n, f in c.folders.items()}
            leftovers = {n: [str(p) for p in f.glob("**/gpuetl/runs/*/*")] for n, f in c.folders.items()
                         if n != killer.killed}
        with _aws(env):  # this process reads both trees
            check = root / "check"
            diffs = differences(frames(f"{s3}/reference", check / "a"), frames(f"{s3}/cluster", check / "b"))
    return {"steps": steps, "killed": killer.killed, "killed_when": killer.when, "peaks": peaks,
            "client_peak": max(s.peak_rss for s in steps), "differences": diffs, "mirrors": mirrors,
            "leftovers": leftovers, "endpoint": "moto (loopback)" if endpoint is None else endpoint,
            "load": (load_before, os.getloadavg()[0])}


@contextlib.contextmanager
def _aws(env: dict[str, str]) -> Iterator[None]:
    """This process's environment with `env`'s AWS settings for the block, as it was after."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    for k in saved:
        del os.environ[k]
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith("AWS_")]:
            del os.environ[k]
        os.environ.update(saved)


def report(r: dict[str, Any], argv: list[str]) -> str:
    gib = 2**30
    lines = [f"# Multi-node rehearsal, {dt.date.today()}", "",
             f"`python -m benchmarks.rehearsal {' '.join(argv)}` on {platform.node()} ({os.cpu_count()} cores, "
             f"{platform.processor() or platform.machine()}), CPU backend, S3: {r['endpoint']}; 1-minute load average "
             f"{r['load'][0]:.1f} before, {r['load'][1]:.1f} after.", "",
             "A scheduler and 3 worker processes (no nanny, 1 thread each), each in its own folder, sharing nothing "
             "with the command but the S3 server. The killed worker got SIGKILL after "
             f"{r['killed_when'] or '(never killed)'}.", "",
             "| step | wall s | command peak RSS |", "|---|---:|---:|"]
    lines += [f"| {s.name} | {s.seconds:.1f} | {s.peak_rss / gib:.2f} GiB |" for s in r["steps"]]
    lines += ["", "| process | peak RSS |", "|---|---:|"]
    lines += [f"| {n}{' (killed)' if n == r['killed'] else ''} | {v / gib:.2f} GiB |" for n, v in r["peaks"].items()]
    total = sum(r["peaks"].values()) + r["client_peak"]
    lines += [f"| client (largest step) | {r['client_peak'] / gib:.2f} GiB |",
              f"| sum of the peaks | {total / gib:.2f} GiB |", "",
              f"Equal to the single-process build and graphs, table for table: "
              f"{'yes' if not r['differences'] else 'NO: ' + '; '.join(r['differences'])}.", "",
              "Tree mirrors each worker pulled into its own folder: "
              + "; ".join(f"{n}: {len(m)}" for n, m in r["mirrors"].items()) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, help="working folder (default: a new one under /tmp)")
    p.add_argument("--endpoint", help="an S3 endpoint (MinIO ...): default moto's server on a loopback port")
    p.add_argument("--set", dest="sets", action="append", default=[], help="gpuetl setting, e.g. demo.codes=100")
    p.add_argument("--datasets", help="the lake's datasets (synth --datasets; default: all)")
    p.add_argument("--memory-limit", default="4GB", help="per worker (default: %(default)s)")
    p.add_argument("--out", type=Path, help="write the report here (Markdown)")
    args = p.parse_args(argv)
    root = args.root or Path("/tmp") / f"gpuetl-rehearsal-{uuid.uuid4().hex[:8]}"
    r = rehearse(root, args.endpoint, tuple(args.sets), memory_limit=args.memory_limit,
                 datasets=args.datasets)
    text = report(r, sys.argv[1:] if argv is None else argv)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if not r["differences"] and r["killed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
