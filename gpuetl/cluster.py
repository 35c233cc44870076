"""Where a stage's tasks run: in this process, one after another, or on a Dask cluster (distributed's
LocalCluster on CPUs, dask-cuda's LocalCUDACluster on GPUs, or any scheduler at tcp://host:port).

A stage hands a `Runner` a function of (backend, item) and its items; the runner returns the results in
order. On a cluster each worker process chooses its own backend once (CPU workers on `local`, a GPU and its
own RMM pool per worker on `local-cuda`, the settings' backend on a remote scheduler), Dask schedules,
retries and spills, its progress bar shows the tasks and its dashboard address is printed at the start.
Programs that start a local cluster need the `if __name__ == "__main__":` guard: spawned workers import
the main module again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from rich.progress import Progress

from gpuetl.backend import Backend
from gpuetl.backend import init as init_backend
from gpuetl.config import Settings

T = TypeVar("T")
R = TypeVar("R")
CLUSTERS = ("local", "local-cuda", "tcp://host:port")


class ClusterError(RuntimeError):
    """The cluster cannot be started or reached; the message says what is missing."""


class TaskFiles(Protocol):
    """How tasks reach a command's folders without its filesystem (gpuetl.remote.workers.Shared)."""

    run: str

    def path(self, folder: str | Path, only: tuple[str, ...] | None = None) -> Path: ...

    def exchange(self, folder: str | Path) -> str | None: ...

    def scratch(self) -> Path: ...

    def forget(self, dask_worker: Any = None) -> None: ...


class Runner(Protocol):
    name: str
    files: TaskFiles | None  # how the tasks reach the command's mirrors of URLs (None: by their paths)

    @property
    def workers(self) -> int: ...  # tasks that run at once

    def map(self, fn: Callable[[Backend, T], R], items: Sequence[T], label: str) -> list[R]: ...


@dataclasses.dataclass
class InProcess:
    """Every task in this process, in order, on its backend."""

    backend: Backend
    progress: bool = False
    name: str = "in-process"
    workers: int = 1
    files: TaskFiles | None = None  # this process has the mirrors

    def map(self, fn: Callable[[Backend, T], R], items: Sequence[T], label: str) -> list[R]:
        out: list[R] = []
        with Progress(disable=not self.progress, transient=True) as bar:
            task = bar.add_task(label, total=len(items))
            for item in items:
                out.append(fn(self.backend, item))
                bar.advance(task)
        return out


@dataclasses.dataclass
class OnDask:
    """Every task on a Dask cluster's workers, each with the backend its settings choose."""

    client: Any  # distributed.Client
    settings: Settings  # what each worker's backend is made from
    progress: bool = False
    name: str = "dask"
    files: TaskFiles | None = None  # workers reach the command's URLs through the store, not its mirrors
    kernel_threads: int | None = None  # Numba threads per task: a LocalCluster's workers share this machine's cores

    def forget(self) -> None:
        """Drop every worker's scratch files of this run (a worker lost meanwhile has none left)."""
        if self.files is not None:
            with contextlib.suppress(OSError, TimeoutError):  # a cluster gone meanwhile: its scratch with it
                self.client.run(self.files.forget)

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def map(self, fn: Callable[[Backend, T], R], items: Sequence[T], label: str) -> list[R]:
        from distributed import progress as dask_progress

        futures = self.client.map(functools.partial(_on_worker, self.settings, fn, kernel_threads=self.kernel_threads),
                                  list(items),
                                  key=[f"{label}-{i}" for i in range(len(items))], pure=False)
        if self.progress:  # Dask's text bar writes to stdout, which holds the command's result: stderr
            print(f"{label}: {len(items)} tasks", file=sys.stderr)
            with contextlib.redirect_stdout(sys.stderr):
                dask_progress(futures)
            print(file=sys.stderr)
        return list(self.client.gather(futures))


def _on_worker(settings: Settings, fn: Callable[[Backend, T], R], item: T, kernel_threads: int | None = None) -> R:
    if kernel_threads:  # per thread: this task's parallel kernels use its share of the cores, not all of them
        import numba

        numba.set_num_threads(min(kernel_threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    return fn(init_backend(settings), item)


def task_threads(workers: int | None, threads_per_worker: int, cores: int) -> int:
    """Numba threads for each task of a LocalCluster of `workers` processes (None: one per core) running
    `threads_per_worker` tasks each on `cores` cores: their share, at least one."""
    return max(1, cores // ((workers or cores) * threads_per_worker))


@contextlib.contextmanager
def open_runner(cluster: str | None, settings: Settings, backend: Backend, progress: bool = False,
                files: TaskFiles | None = None) -> Iterator[Runner]:
    """The runner `--cluster` names (None: this process), started and shut down around the work; on a cluster,
    `files` (a command's URLs: `staged`) lets workers that share no filesystem with this process read and write
    them through the store."""
    if cluster is None:
        yield InProcess(backend, progress)
        return
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as err:  # the cluster extra
        raise ClusterError(f"--cluster needs dask.distributed ({err}): pip install 'dask[distributed]'") from None
    c = settings.cluster
    workers_settings = settings
    kernel_threads = None
    # Dask logs every worker and connection at INFO: keep them at the command's level (WARNING unless -v)
    for name in ("distributed", "dask_cuda"):
        logging.getLogger(name).setLevel(max(logging.getLogger().getEffectiveLevel(), logging.WARNING))
    with contextlib.ExitStack() as stack:
        # tasks hold their own arrays and write their results to disk: Dask's spilling of task results has
        # nothing to spill, so workers pause only near their limit (and the nanny restarts one past it)
        stack.enter_context(dask.config.set({"distributed.worker.memory.target": False,
                                             "distributed.worker.memory.spill": False,
                                             "distributed.worker.memory.pause": 0.9}))
        if cluster == "local":
            workers_settings = dataclasses.replace(settings, backend="cpu")
            # Numba starts a thread per core in every worker process: 2 workers on 2 cores ran 4 threads, and the
            # 4,000 x 10-year build took 647 s against 507 s with a thread per task (docs/scaling.md)
            kernel_threads = task_threads(c.workers, c.threads_per_worker, os.cpu_count() or 1)
            made = stack.enter_context(LocalCluster(
                n_workers=c.workers, threads_per_worker=c.threads_per_worker, memory_limit=c.memory_limit,
                local_directory=c.spill_dir, dashboard_address=":8787" if c.dashboard else None, processes=True))
            client = stack.enter_context(Client(made))
        elif cluster == "local-cuda":
            try:
                from dask_cuda import LocalCUDACluster
            except ImportError as err:
                raise ClusterError(f"--cluster local-cuda needs dask-cuda ({err}); install the `gpu` extra") from None
            pool = c.rmm_pool_size or settings.gpu.rmm_pool
            # each worker makes its own RMM pool through the backend (gpu.rmm_pool), on its own GPU (device 0
            # of the devices dask-cuda makes visible to it)
            workers_settings = dataclasses.replace(settings, backend="gpu",
                                                   gpu=dataclasses.replace(settings.gpu, device=0, rmm_pool=pool))
            # one worker per visible GPU (CUDA_VISIBLE_DEVICES): two pools of 70% cannot share a device
            made = stack.enter_context(LocalCUDACluster(
                n_workers=None, threads_per_worker=c.threads_per_worker, memory_limit=c.memory_limit,
                local_directory=c.spill_dir, dashboard_address=":8787" if c.dashboard else None))
            client = stack.enter_context(Client(made))
        elif cluster.startswith("tcp://"):
            try:
                client = stack.enter_context(Client(cluster, timeout="10s"))
            except OSError as err:
                raise ClusterError(f"no Dask scheduler at {cluster} ({err})") from None
        else:
            raise ClusterError(f"--cluster {cluster!r}: expected one of {', '.join(CLUSTERS)}")
        workers = len(client.scheduler_info().get("workers", {}))
        link = client.dashboard_link if c.dashboard or cluster.startswith("tcp://") else "off"
        print(f"dask: {cluster} with {workers} worker(s); dashboard {link}", file=sys.stderr)
        runner = OnDask(client, workers_settings, progress, files=files, kernel_threads=kernel_threads)
        try:
            yield runner
        finally:
            runner.forget()
