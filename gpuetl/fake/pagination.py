"""Opaque pagination keys bound to the query that produced them (API-NOTES §3.1).

A key carries the next row offset and is HMAC-signed together with the query's fingerprint, so a key
replayed with any other query (another date, another endpoint, another version) is a 400, as is a
forged or truncated one. The shape mimics the docs' placeholder `"value1.value2."`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from gpuetl.fake import errors
from gpuetl.fake.errors import ApiError


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageKeys:
    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _sign(self, offset: int, fingerprint: str) -> bytes:
        return hmac.new(self._secret, f"{offset}|{fingerprint}".encode(), hashlib.sha256).digest()[:18]

    def issue(self, fingerprint: str, offset: int) -> str:
        return f"{_b64(str(offset).encode())}.{_b64(self._sign(offset, fingerprint))}."

    def offset(self, key: str, fingerprint: str) -> int:
        """The row offset a key stands for, if it was issued for this very query; else a 400."""
        try:
            head, sig, tail = key.split(".")
            offset = int(_unb64(head).decode())
            ok = tail == "" and offset > 0 and hmac.compare_digest(_unb64(sig), self._sign(offset, fingerprint))
        except (ValueError, UnicodeDecodeError):
            ok = False
        if not ok:
            raise ApiError(400, errors.BAD_PAGINATION_KEY)
        return offset
