"""V1 authentication: mail/password -> refresh token -> ID token -> `Authorization: Bearer` (API-NOTES §1.2).

Lifetimes are options (1 week / 24 h by default) read against the injected clock, so a test can expire
an ID token by moving the clock rather than waiting.
"""

from __future__ import annotations

import secrets

from gpuetl.fake import errors
from gpuetl.fake.errors import ApiError
from gpuetl.fake.limits import Clock


class TokenStore:
    def __init__(self, mail: str, password: str, *, refresh_ttl_s: float, id_ttl_s: float, clock: Clock) -> None:
        self._mail = mail
        self._password = password
        self.refresh_ttl_s = refresh_ttl_s
        self.id_ttl_s = id_ttl_s
        self.clock = clock
        self._refresh: dict[str, tuple[str, float]] = {}  # token -> (account, expiry)
        self._id: dict[str, tuple[str, float]] = {}

    def login(self, mail: object, password: object) -> str:
        """POST /token/auth_user: a refresh token, or 400 for wrong credentials."""
        if mail != self._mail or password != self._password:
            raise ApiError(400, errors.LOGIN_INCORRECT)
        return self._issue(self._refresh, self._mail, self.refresh_ttl_s, "rt")

    def refresh(self, refresh_token: str | None) -> str:
        """POST /token/auth_refresh: an ID token; an expired/unknown refresh token is a 400 (OBSERVED)."""
        if not refresh_token:
            raise ApiError(400, errors.REFRESH_REQUIRED)
        account = self._valid(self._refresh, refresh_token)
        if account is None:
            raise ApiError(400, errors.TOKEN_INVALID)
        return self._issue(self._id, account, self.id_ttl_s, "id")

    def account(self, authorization: str | None) -> str:
        """The account behind `Authorization: Bearer <idToken>`, or 401."""
        scheme, _, token = (authorization or "").partition(" ")
        account = self._valid(self._id, token.strip()) if scheme.lower() == "bearer" else None
        if account is None:
            raise ApiError(401, errors.TOKEN_INVALID)
        return account

    def _issue(self, store: dict[str, tuple[str, float]], account: str, ttl: float, kind: str) -> str:
        token = f"{kind}.{secrets.token_urlsafe(24)}"
        store[token] = (account, self.clock() + ttl)
        return token

    def _valid(self, store: dict[str, tuple[str, float]], token: str) -> str | None:
        entry = store.get(token)
        if entry is None or self.clock() >= entry[1]:
            store.pop(token, None)
            return None
        return entry[0]
