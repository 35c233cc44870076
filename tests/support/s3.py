"""A real S3 server for the tests: moto's server mode on a loopback port, one per session, a bucket per test.

The AWS settings go to the environment as a user sets them (AWS_ENDPOINT_URL for an S3-compatible store), so
gpuetl resolves them the way it does against MinIO or AWS."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    pytest.importorskip("moto.server", reason="moto[server] (the dev extra) runs the S3 test server")
    from benchmarks.rehearsal import s3_server  # the same loopback server `make rehearsal` starts

    with s3_server(None) as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty bucket on the test server; its name (the test's own: nothing is shared between tests)."""
    for key, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    import boto3

    name = f"gpuetl-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name
