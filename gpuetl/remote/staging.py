"""Commands on URLs: a local mirror of each tree (under `paths.cache`), pulled before and published after.

`remote_input(url)` yields a local folder equal to the tree's committed version (files already there and
unchanged are kept, others downloaded and checked against their sha256). `remote_output(url)` holds the tree's
writer lock, pulls the current version (a dataset's nested `graphs/` and the output marker come with it, so
the local rules of `gpuetl.lake.outputs` decide as they do for a folder), yields the mirror for the command to
write with those rules, and publishes the result as the next version when the block ends without an error.
A mirror is the cache's own folder: it is rewritten to match the tree, and never a user's input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gpuetl.lake.outputs import claimed
from gpuetl.remote.tree import FileEntry, Pointer, RemoteError, Store, Tree
from gpuetl.remote.urls import is_url, split

STATE = "state.json"
THREADS = 8  # transfers in flight: object stores reward concurrency (latency-bound requests)

__all__ = ["RemoteError", "check_not_inside", "is_url", "remote_input", "remote_output"]


def _say(message: str) -> None:
    print(f"gpuetl remote: {message}", file=sys.stderr)


def check_not_inside(out: str, inputs: Sequence[str | os.PathLike[str] | None]) -> None:
    """Inputs are never outputs, on object storage too: `out` equal to, inside or above an input URL is refused."""
    if not is_url(out):
        return
    o = "/".join(split(out))
    for named in inputs:
        if named is None or not is_url(str(named)):
            continue
        i = "/".join(split(str(named)))
        if o == i or o.startswith(i + "/") or i.startswith(o + "/"):
            raise RemoteError(f"{out} is, holds or lies inside an input ({named}): inputs are never outputs; "
                              "choose another prefix")


@dataclasses.dataclass(frozen=True)
class Mirror:
    root: Path  # the cache entry of one URL

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    def state(self) -> dict[str, list[int | str]]:
        try:
            return dict(json.loads((self.root / STATE).read_text())["files"])
        except (FileNotFoundError, ValueError, KeyError):
            return {}

    def save(self, files: dict[str, list[int | str]], version: str | None) -> None:
        tmp = self.root / f".{STATE}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps({"version": version, "files": files}))
        os.replace(tmp, self.root / STATE)


def mirror_dir(cache: str | Path, url: str) -> Path:
    """The cache entry of `url`: readable name + a hash (two URLs never share an entry)."""
    scheme, path = split(url)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{scheme}_{path}")[-80:]
    return Path(cache) / "remote" / f"{slug}-{hashlib.sha256(f'{scheme}://{path}'.encode()).hexdigest()[:12]}"


@contextlib.contextmanager
def _mirror(cache: str | Path, url: str) -> Iterator[Mirror]:
    m = Mirror(mirror_dir(cache, url))
    m.root.mkdir(parents=True, exist_ok=True)
    with claimed(m.tree, url):  # one process per mirror (the command's own claim of the folder nests in it)
        yield m


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _local_files(tree: Path) -> list[str]:
    """Relative paths of the files a tree publishes: not lock files, not unfinished `.<name>.tmp` folders."""
    out = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if not (d.startswith(".") and d.endswith(".tmp"))]
        out += [os.path.relpath(os.path.join(dirpath, f), tree) for f in filenames if not f.endswith(".lock")]
    return sorted(out)


def _hashes(m: Mirror, rels: list[str]) -> dict[str, list[int | str]]:
    """[size, mtime_ns, sha256] per file; the sha is recomputed only when size or mtime moved."""
    known = m.state()
    out: dict[str, list[int | str]] = {}
    for rel in rels:
        st = (m.tree / rel).stat()
        old = known.get(rel)
        same = old is not None and old[0] == st.st_size and old[1] == st.st_mtime_ns
        out[rel] = [st.st_size, st.st_mtime_ns, str(old[2]) if same and old else file_sha256(m.tree / rel)]
    return out


def fetch_checked(store: Store, entry: FileEntry, dest: Path) -> bool:
    """Object `entry` into `dest` through a temporary file beside it: `dest` is replaced only when the bytes have
    the entry's size and sha256 (False, `dest` as it was, when they do not)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.part"
    try:
        store.download(entry.sha256, str(tmp))
        if tmp.stat().st_size != entry.size or file_sha256(tmp) != entry.sha256:
            return False
        os.replace(tmp, dest)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def pull(store: Store, pointer: Pointer | None, m: Mirror, progress: Callable[[str], None] = _say) -> None:
    """Make the mirror equal to `pointer` (empty when None): download what differs, drop what it lacks."""
    if pointer is None:
        shutil.rmtree(m.tree, ignore_errors=True)
        m.save({}, None)
        return
    m.tree.mkdir(parents=True, exist_ok=True)
    local = _hashes(m, _local_files(m.tree))
    for rel in set(local) - set(pointer.files):
        (m.tree / rel).unlink()
    for dirpath, _, _ in sorted(os.walk(m.tree), reverse=True):  # folders left empty
        if dirpath != str(m.tree) and not os.listdir(dirpath):
            os.rmdir(dirpath)
    todo = [(rel, e) for rel, e in pointer.files.items() if rel not in local or local[rel][2] != e.sha256]

    def fetch(item: tuple[str, FileEntry]) -> None:
        rel, entry = item
        if not fetch_checked(store, entry, m.tree / rel):
            raise RemoteError(f"{store.url}: object {entry.sha256} for {rel} does not match its pointer "
                              "(size or sha256): the store is damaged")

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(fetch, todo))
    size = sum(e.size for _, e in todo)
    progress(f"{store.url} version {pointer.version[:12]}: {len(pointer.files):,} files, "
             f"{len(todo):,} downloaded ({size / 2**20:,.1f} MiB)")
    # every file now holds its pointer's bytes (kept ones matched, downloads were checked): no second hashing
    m.save({rel: [(st := (m.tree / rel).stat()).st_size, st.st_mtime_ns, e.sha256]
            for rel, e in sorted(pointer.files.items())}, pointer.version)


def push(store: Store, m: Mirror, kind: str, previous: Pointer | None,
         progress: Callable[[str], None] = _say) -> Pointer:
    """Publish the mirror as the version after `previous`: upload the objects the store lacks, commit the
    pointer (conditional on `previous`), then delete objects neither version refers to."""
    files = _hashes(m, _local_files(m.tree)) if m.tree.exists() else {}
    entries = {rel: FileEntry(str(v[2]), int(v[0])) for rel, v in files.items()}
    have = store.objects()
    todo = {e.sha256: rel for rel, e in entries.items() if e.sha256 not in have}
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda kv: store.upload(str(m.tree / kv[1]), kv[0]), todo.items()))
    new = store.commit(Pointer(kind, uuid.uuid4().hex, entries), previous)
    keep = {e.sha256 for e in entries.values()} | {e.sha256 for e in (previous.files.values() if previous else ())}
    store.delete([store.object_key(sha) for sha in have - keep])  # older versions' (readers of `previous` go on)
    m.save(files, new.version)
    progress(f"{store.url}: published version {new.version[:12]} ({len(entries):,} files, {len(todo):,} uploaded, "
             f"{sum(entries[r].size for r in todo.values()) / 2**20:,.1f} MiB)")
    return new


@contextlib.contextmanager
def remote_input(url: str, cache: str | Path) -> Iterator[tuple[Path, Tree]]:
    """A local folder equal to the tree at `url`, for a command that reads it, and the version it holds."""
    store = Store(url)
    pointer = store.read_pointer()
    if pointer is None:
        raise RemoteError(f"{url} holds no gpuetl tree (no {url.rstrip('/')}/_gpuetl_tree.json): write it with "
                          "gpuetl (fetch --lake, build --out, ...) first")
    with _mirror(cache, url) as m:
        pull(store, pointer, m)
        yield m.tree, Tree(url, pointer)


@contextlib.contextmanager
def remote_output(url: str, cache: str | Path, *, kind: str, command: str) -> Iterator[tuple[Path, Tree]]:
    """The local mirror of the tree at `url`, for a command that writes it (under the tree's writer lock), and the
    version it was pulled at; what the block leaves there is published when it ends without an error."""
    store = Store(url)
    with store.lock(command), _mirror(cache, url) as m:
        pointer = store.read_pointer()
        if pointer is None and [i for i in store.listing() if not i.path.endswith("/_gpuetl_lock.json")]:
            raise RemoteError(f"{url} holds objects that gpuetl did not write (no _gpuetl_tree.json): choose "
                              "an empty prefix")
        if pointer is not None and pointer.kind != kind:
            raise RemoteError(f"{url} holds a gpuetl {pointer.kind}, not a {kind}: choose another prefix")
        pull(store, pointer, m)
        yield m.tree, Tree(url, pointer)
        push(store, m, kind, pointer)
