"""Authentication in one place: the V2 API key, or the V1 refresh-token -> ID-token flow.

V2 sends `x-api-key` on every request; the key does not expire. V1 logs in with mail/password
(POST /token/auth_user -> refreshToken, valid a week), trades the refresh token for an ID token
(POST /token/auth_refresh?refreshtoken=..., valid a day) and sends `Authorization: Bearer <idToken>`.
The API never says when a token expires (API-NOTES §4, issue #20), so expiry is tracked here with the
official client's margins (6 days, 23 hours): tokens are renewed before they lapse, an ID token is
renewed once when a data call answers 401, and a 400 from auth_refresh (expired refresh token) logs in
again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from gpuetl.jquants.errors import AuthError, from_response
from gpuetl.jquants.ratelimit import Clock

log = logging.getLogger(__name__)

REFRESH_TOKEN_TTL_S = 6 * 24 * 3600.0
ID_TOKEN_TTL_S = 23 * 3600.0

# POST path, query, JSON body -> (status, decoded body); the client's paced, retried transport.
Post = Callable[[str, Mapping[str, str] | None, Mapping[str, Any] | None], Awaitable[tuple[int, Any]]]


class Auth(Protocol):
    refreshable: bool  # whether a 401 is worth one renewal before giving up

    async def headers(self) -> dict[str, str]: ...

    def invalidate(self, used: Mapping[str, str]) -> None: ...


class ApiKeyAuth:
    """V2: a static `x-api-key` header."""

    refreshable = False

    def __init__(self, api_key: str) -> None:
        self._headers = {"x-api-key": api_key}

    async def headers(self) -> dict[str, str]:
        return self._headers

    def invalidate(self, used: Mapping[str, str]) -> None:
        """A V2 key cannot be renewed by the client; a 401/403 is final."""


class TokenAuth:
    """V1: mail/password -> refresh token -> ID token, renewed before expiry and on demand."""

    refreshable = True

    def __init__(self, mail: str, password: str, post: Post, clock: Clock) -> None:
        self._mail = mail
        self._password = password
        self._post = post
        self._clock = clock
        self._lock = asyncio.Lock()
        self._refresh: tuple[str, float] | None = None  # (token, expires at, clock seconds)
        self._id: tuple[str, float] | None = None
        self.logins = 0
        self.refreshes = 0

    async def headers(self) -> dict[str, str]:
        async with self._lock:  # one renewal for all waiting tasks
            if not self._valid(self._id):
                await self._renew_id_token()
            assert self._id is not None
            return {"Authorization": f"Bearer {self._id[0]}"}

    def invalidate(self, used: Mapping[str, str]) -> None:
        """Drop the ID token that `used` carried (not a newer one another task already fetched)."""
        if self._id is not None and used.get("Authorization") == f"Bearer {self._id[0]}":
            self._id = None

    def _valid(self, token: tuple[str, float] | None) -> bool:
        return token is not None and self._clock.monotonic() < token[1]

    async def _renew_id_token(self) -> None:
        for _ in range(2):
            if not self._valid(self._refresh):
                await self._login()
            assert self._refresh is not None
            status, body = await self._post("/token/auth_refresh", {"refreshtoken": self._refresh[0]}, None)
            self.refreshes += 1
            if status == 200 and isinstance(body, dict) and body.get("idToken"):
                self._id = (str(body["idToken"]), self._clock.monotonic() + ID_TOKEN_TTL_S)
                return
            if status == 400:  # the refresh token expired or was revoked: log in again
                log.info("J-Quants refresh token refused (400); logging in again")
                self._refresh = None
                continue
            raise _auth_error(status, body, "/token/auth_refresh")
        raise AuthError("J-Quants V1: a fresh refresh token was refused by /token/auth_refresh")

    async def _login(self) -> None:
        status, body = await self._post(
            "/token/auth_user", None, {"mailaddress": self._mail, "password": self._password})
        self.logins += 1
        if status == 200 and isinstance(body, dict) and body.get("refreshToken"):
            self._refresh = (str(body["refreshToken"]), self._clock.monotonic() + REFRESH_TOKEN_TTL_S)
            return
        raise _auth_error(status, body, "/token/auth_user")


def _auth_error(status: int, body: Any, path: str) -> Exception:
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    if status in (400, 401, 403):
        return AuthError(
            f"J-Quants V1 login failed at {path} ({status}): {message or 'no message'}; check "
            "JQUANTS_API_MAIL_ADDRESS and JQUANTS_API_PASSWORD", status=status, server_message=message, url=path)
    return from_response(status, message, url=path)
