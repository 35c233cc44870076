"""One tree at a URL: its pointer, its writer lock and its content-addressed objects.

`Store.read_pointer` / `Store.commit` read and replace `_gpuetl_tree.json` (the commit point, a conditional
write: `If-None-Match: *` for the first version, `If-Match: <etag>` for the next, so a writer that read an older
version fails instead of losing the other's work). `Store.lock` holds `_gpuetl_lock.json`, created only when
absent. Objects (`_objects/<sha256>`) are immutable: an upload that dies leaves an unreferenced object at most,
which the next commit collects. Conditional writes are S3's (AWS since 2024, MinIO, moto); other fsspec
stores can be read, not written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

from gpuetl.remote.urls import filesystem, s3_session, split

POINTER = "_gpuetl_tree.json"
LOCK = "_gpuetl_lock.json"
OBJECTS = "_objects"
FORMAT = 1


class RemoteError(RuntimeError):
    """A URL gpuetl cannot read or write as asked; the message names the URL and the fix."""


@dataclasses.dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclasses.dataclass(frozen=True)
class Pointer:
    """A committed version: what kind of output it is and which object holds each file (relative paths)."""

    kind: str
    version: str
    files: dict[str, FileEntry]
    etag: str | None = None  # the store's tag of the pointer object as read: the condition of the next commit

    def to_json(self) -> bytes:
        return json.dumps({"format": FORMAT, "kind": self.kind, "version": self.version,
                           "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                           "files": {k: dataclasses.asdict(v) for k, v in sorted(self.files.items())}},
                          indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, etag: str | None, where: str) -> Pointer:
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise RemoteError(f"{where} has tree format {raw.get('format')!r}; this gpuetl reads {FORMAT}")
            files = {k: FileEntry(str(v["sha256"]), int(v["size"])) for k, v in raw["files"].items()}
            return cls(str(raw["kind"]), str(raw["version"]), files, etag)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise RemoteError(f"{where} is not a gpuetl tree pointer ({err}); was it written by gpuetl?") from None


@dataclasses.dataclass(frozen=True)
class Tree:
    """A tree's committed version as a command read it (pointer None: a new output, no files yet)."""

    url: str
    pointer: Pointer | None


class Store:
    """The tree at `url`: bytes through pyarrow's filesystem layer, the pointer and lock through S3's
    conditional writes (boto3, the AWS SDK that reads the same settings)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.scheme, self.path = split(url)
        self.fs, _ = filesystem(url)
        self._client: Any = None

    # -- bytes --------------------------------------------------------------------------------------------------
    def key(self, rel: str) -> str:
        return f"{self.path}/{rel}"

    def object_key(self, sha: str) -> str:
        return self.key(f"{OBJECTS}/{sha}")

    def listing(self, rel: str = "") -> list[Any]:
        """FileInfo of every object under `rel` (recursive); empty when there is none."""
        import pyarrow.fs as pafs

        sel = pafs.FileSelector(self.key(rel) if rel else self.path, allow_not_found=True, recursive=True)
        return [i for i in self._call(self.fs.get_file_info, sel) if i.type == pafs.FileType.File]

    def objects(self) -> set[str]:
        return {os.path.basename(i.path) for i in self.listing(OBJECTS)}

    def download(self, sha: str, dest: str) -> None:
        """The object's bytes into the local file `dest`: one streamed GET (copy_files asks for the size first,
        a second request per file, which is most of the cost of a lake of small files)."""
        def copy() -> None:
            with self.fs.open_input_stream(self.object_key(sha), compression=None) as src, open(dest, "wb") as out:
                while block := src.read(1 << 22):
                    out.write(block)

        self._call(copy)

    def upload(self, src: str, sha: str) -> None:
        import pyarrow.fs as pafs

        self._call(pafs.copy_files, src, self.object_key(sha), source_filesystem=pafs.LocalFileSystem(),
                   destination_filesystem=self.fs)

    def delete(self, keys: list[str]) -> None:
        for k in keys:
            with contextlib.suppress(FileNotFoundError):
                self._call(self.fs.delete_file, k)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OSError as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise RemoteError(f"{self.url}: {err} (credentials and endpoint: AWS_ACCESS_KEY_ID, "
                              "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_DEFAULT_REGION or ~/.aws)") from None

    # -- conditional writes -------------------------------------------------------------------------------------
    def _s3(self) -> Any:
        if self.scheme not in ("s3", "s3a"):
            raise RemoteError(f"{self.url}: gpuetl writes only to S3-compatible stores (s3://), which have the "
                              f"conditional writes its commits and locks need; {self.scheme}:// can be read")
        if self._client is None:
            self._client = s3_session().client("s3")
        return self._client

    def _bucket_key(self, rel: str) -> tuple[str, str]:
        bucket, _, prefix = self.path.partition("/")
        return bucket, f"{prefix}/{rel}" if prefix else rel

    def _put_if(self, rel: str, body: bytes, etag: str | None) -> str | None:
        """Write `rel` only if absent (etag None) or still at `etag`: the new object's ETag, None when the
        condition failed."""
        from botocore.exceptions import ClientError

        bucket, key = self._bucket_key(rel)
        cond = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        try:
            put = self._s3().put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", **cond)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return None
            raise RemoteError(f"{self.url}: writing {rel} failed: {err}") from None
        return str(put["ETag"])

    def _get(self, rel: str) -> tuple[bytes, str] | None:
        if self.scheme not in ("s3", "s3a"):
            try:
                with self.fs.open_input_stream(self.key(rel)) as fh:
                    return fh.read(), None  # type: ignore[return-value]
            except FileNotFoundError:
                return None
        from botocore.exceptions import ClientError

        bucket, key = self._bucket_key(rel)
        try:
            got = self._s3().get_object(Bucket=bucket, Key=key)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                return None
            raise RemoteError(f"{self.url}: reading {rel} failed: {err}") from None
        return got["Body"].read(), got["ETag"]

    def read_pointer(self) -> Pointer | None:
        got = self._get(POINTER)
        return None if got is None else Pointer.from_json(got[0], got[1], f"{self.url}/{POINTER}")

    def commit(self, new: Pointer, previous: Pointer | None) -> Pointer:
        """Publish `new` in place of `previous` (None: the first version); refused if someone else committed.
        Returns `new` with its ETag (the condition of the commit after it)."""
        etag = self._put_if(POINTER, new.to_json(), previous.etag if previous else None)
        if etag is None:
            raise RemoteError(f"{self.url} changed while this command ran (another writer committed a new "
                              "version): nothing was published; run the command again")
        return dataclasses.replace(new, etag=etag)

    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Hold the writer lock for the block; a second writer fails at once, naming the holder."""
        me = {"command": command, "host": socket.gethostname(), "pid": os.getpid(),
              "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        if self._put_if(LOCK, json.dumps(me).encode(), None) is None:
            got = self._get(LOCK)
            holder = got[0].decode(errors="replace") if got else "(released meanwhile)"
            raise RemoteError(f"{self.url} is being written by another gpuetl process: {holder}; if that process "
                              f"is gone, delete {self.url}/{LOCK} and run again")
        try:
            yield
        finally:
            bucket, key = self._bucket_key(LOCK)
            with contextlib.suppress(Exception):
                self._s3().delete_object(Bucket=bucket, Key=key)
