"""URLs -> (pyarrow filesystem, path): s3:// through pyarrow's S3FileSystem, any other fsspec protocol through
fsspec wrapped in pyarrow's `PyFileSystem`; a plain path is not a URL (the local code handles it)."""

from __future__ import annotations

import re
from typing import Any

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")


def scheme(path: str | Any) -> str | None:
    """The URL scheme of `path` ("s3"), or None for a local path (a `Path`, or a str without `scheme://`)."""
    m = _SCHEME.match(path) if isinstance(path, str) else None
    return m.group(1).lower() if m and m.group(1).lower() != "file" else None


def is_url(path: str | Any) -> bool:
    """True for an object-store URL (s3://bucket/prefix, gs://..., memory://...); file:// and paths are local."""
    return scheme(path) is not None


def split(url: str) -> tuple[str, str]:
    """s3://bucket/a/b/ -> ("s3", "bucket/a/b"): the scheme and the path without slashes at its ends."""
    s = scheme(url)
    if s is None:
        raise ValueError(f"{url!r} is not a URL")
    path = url.split("://", 1)[1].strip("/")
    if not path:
        raise ValueError(f"{url!r} names no bucket or folder")
    return s, path


def filesystem(url: str) -> tuple[Any, str]:
    """(pyarrow FileSystem, path inside it) for `url`. S3 settings come from the environment and ~/.aws as the
    AWS SDK reads them (AWS_ENDPOINT_URL for MinIO and other S3-compatible stores)."""
    import pyarrow.fs as pafs

    s, path = split(url)
    if s in ("s3", "s3a"):
        return s3_filesystem(), path
    import fsspec  # any other protocol fsspec knows (gs, az, memory, ...), with its own settings

    return pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem(s))), path


def s3_session() -> Any:
    """The AWS SDK's view of the settings (environment, ~/.aws/config and credentials, the profile)."""
    import boto3  # the s3 extra

    return boto3.session.Session()


def s3_filesystem() -> Any:
    """pyarrow's S3FileSystem with the endpoint, region and credentials boto3 resolves, so the bytes (pyarrow) and
    the conditional writes (boto3) go to the same store as the same user."""
    import pyarrow.fs as pafs

    session = s3_session()
    client = session.client("s3")
    kwargs: dict[str, Any] = {"region": client.meta.region_name or "us-east-1"}
    endpoint = client.meta.endpoint_url
    if endpoint and not endpoint.split("://", 1)[-1].split("/", 1)[0].endswith(".amazonaws.com"):
        kwargs["endpoint_override"] = endpoint  # MinIO, moto, any S3-compatible store
        kwargs["scheme"] = endpoint.split("://", 1)[0]
    creds = session.get_credentials()
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        kwargs.update(access_key=frozen.access_key, secret_key=frozen.secret_key, session_token=frozen.token)
    return pafs.S3FileSystem(**kwargs)
