"""Cluster workers that share nothing with the command but the object store.

A command on URLs works on local mirrors (`staging`); its tasks on a Dask cluster cannot see those folders when
the workers run on other machines. `Shared` tells a task where the command's files are: each mirror's committed
tree (a worker pulls its own copy, once per version, into its own scratch folder) and, for an output on a
URL, the store through which one task hands files to another (the build's spill, its written years): uploaded
as the output tree's content-addressed objects, which the next commit collects unless its pointer keeps them.
A worker killed mid-task loses nothing another task needs: what a finished task made is in the store, and
Dask reruns the task that was running.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gpuetl.lake.outputs import partial_dir
from gpuetl.remote.staging import Mirror, fetch_checked, file_sha256, mirror_dir, pull
from gpuetl.remote.tree import FileEntry, RemoteError, Store, Tree

KEEP_VERSIONS = 2  # mirrors kept per tree on a worker: the version in use and the one before
_LOCK = threading.Lock()  # tasks of one worker process (threads) pull and upload one at a time
_READY: dict[tuple[str, str, tuple[str, ...] | None], Path] = {}  # (url, version, only) pulled by this process
_HASHED: dict[str, tuple[int, int, str]] = {}  # path -> (size, mtime_ns, sha256) of files this process wrote


def _key(path: str | Path) -> str:
    return os.path.realpath(path)


@dataclasses.dataclass(frozen=True)
class Shared:
    """How a cluster's tasks reach the command's folders without its filesystem."""

    trees: dict[str, Tree]  # the command's mirror folder -> the tree it holds
    outputs: dict[str, str]  # the command's output mirror -> its URL (files between tasks go through its store)
    run: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def of(cls, trees: dict[str, Tree], outputs: dict[str, str]) -> Shared:
        return cls({_key(k): v for k, v in trees.items()}, {_key(k): v for k, v in outputs.items()})

    def path(self, folder: str | Path, only: tuple[str, ...] | None = None) -> Path:
        """This worker's copy of the command's `folder`: its own mirror of a tree (with `only`, of the tree's
        top-level files and those folders); any other folder as given (a filesystem the workers share)."""
        tree = self.trees.get(_key(folder))
        return Path(folder) if tree is None else worker_tree(tree, only)

    def exchange(self, folder: str | Path) -> str | None:
        """The URL whose store carries the files tasks write for the command's output `folder` (the output's
        mirror or the folder it is written in before the swap); None: tasks write `folder` itself."""
        for out, url in self.outputs.items():
            if _key(folder) in (out, str(partial_dir(out))):
                return url
        return None

    def scratch(self) -> Path:
        """This worker's own folder for this run's files."""
        return worker_root() / "runs" / self.run

    def forget(self, dask_worker: Any = None) -> None:
        """Remove this worker's scratch files of the run (its mirrors of trees stay for the next run); Dask's
        `Client.run` passes the worker."""
        root = worker_root() if dask_worker is None else Path(dask_worker.local_directory) / "gpuetl"
        shutil.rmtree(root / "runs" / self.run, ignore_errors=True)


def worker_root() -> Path:
    """The Dask worker's own local directory (its scratch, shared with no other worker), or a temporary folder
    of this process outside a worker."""
    try:
        from distributed import get_worker

        return Path(get_worker().local_directory) / "gpuetl"
    except (ImportError, ValueError):
        return Path(tempfile.gettempdir()) / f"gpuetl-{os.getpid()}"


def worker_tree(tree: Tree, only: tuple[str, ...] | None = None) -> Path:
    """A folder of this worker equal to `tree`'s version (with `only`: its top-level files and those folders, at
    least): pulled once per version (files of the version before hard-linked in first, so only what changed is
    downloaded)."""
    version = tree.pointer.version if tree.pointer else "empty"
    with _LOCK:
        done = _READY.get((tree.url, version, only))
        if done is not None and done.is_dir():
            return done
        base = mirror_dir(worker_root(), tree.url)
        m = Mirror(base / version[:16])
        if not m.root.exists():
            _seed(base, m)
        m.root.mkdir(parents=True, exist_ok=True)
        pointer = tree.pointer
        if pointer is not None and only is not None:  # what is asked, and what this version already has here
            have = m.state()
            pointer = dataclasses.replace(pointer, files={
                rel: e for rel, e in pointer.files.items()
                if "/" not in rel or rel.split("/", 1)[0] in only or (rel in have and have[rel][2] == e.sha256)})
        pull(Store(tree.url), pointer, m, progress=lambda _: None)
        if pointer is None:
            m.tree.mkdir(parents=True, exist_ok=True)
        _READY[(tree.url, version, only)] = m.tree
        others = sorted((d for d in base.iterdir() if d != m.root and not d.name.startswith(".")),
                        key=lambda d: d.stat().st_mtime)
        for old in others[:max(0, len(others) - (KEEP_VERSIONS - 1))]:
            shutil.rmtree(old, ignore_errors=True)
        return m.tree


def _seed(base: Path, m: Mirror) -> None:
    """Hard-link the newest older version's files into `m` (pull then replaces what differs: a new inode, so
    the older version's files stay as they were)."""
    older = sorted((d for d in base.glob("*") if (d / "state.json").exists()), key=lambda d: d.stat().st_mtime)
    if not older:
        return
    src = Mirror(older[-1])
    tmp = m.root.with_name(f".{m.root.name}.{uuid.uuid4().hex}.seed")
    shutil.copytree(src.tree, tmp / "tree", copy_function=os.link)
    shutil.copy2(src.root / "state.json", tmp / "state.json")
    os.replace(tmp, m.root)


def put(url: str, root: Path, rels: Iterable[str]) -> dict[str, FileEntry]:
    """Upload the files `rels` of `root` as objects of the tree at `url` (content-addressed: a rerun of the task
    uploads the same keys); their entries."""
    store = Store(url)
    out = {}
    for rel in rels:
        path = root / rel
        sha = _sha256(path)
        store.upload(str(path), sha)
        out[rel] = FileEntry(sha, path.stat().st_size)
    return out


def get(url: str, entries: dict[str, FileEntry], root: Path) -> None:
    """Download the objects `entries` into `root` (a file already there with the right size and sha256 is kept),
    each checked against its sha256."""
    store = Store(url)
    with _LOCK:
        for rel, entry in entries.items():
            dest = root / rel
            if dest.exists() and dest.stat().st_size == entry.size and _sha256(dest) == entry.sha256:
                continue  # this worker made it (its own code part) or fetched it for an earlier task
            if not fetch_checked(store, entry, dest):
                raise RemoteError(f"{url}: object {entry.sha256} for {rel} does not match its sha256")
            st = dest.stat()
            _HASHED[str(dest)] = (st.st_size, st.st_mtime_ns, entry.sha256)


def _sha256(path: Path) -> str:
    """The file's sha256, remembered per (size, mtime) for the files this process hashed."""
    st = path.stat()
    known = _HASHED.get(str(path))
    if known is not None and known[:2] == (st.st_size, st.st_mtime_ns):
        return known[2]
    sha = file_sha256(path)
    _HASHED[str(path)] = (st.st_size, st.st_mtime_ns, sha)
    return sha
