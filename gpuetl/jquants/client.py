"""The async J-Quants client: one aiohttp session, paced, retried, paginated, V2 or V1.

Every data call goes through `_get`: take a concurrency slot, wait for a paced permit, send, classify the
answer. 429, 5xx, timeouts, dropped connections and broken bodies are retried with full-jitter backoff;
a streak of 429s cools the whole client down; plan gates and window errors are raised at once (retrying
cannot fix them). `pages` follows `pagination_key` to the end, `range_records` halves a from/to range
that the server refuses as too large (413). Records come back raw (wire names and encodings);
`gpuetl.jquants.normalize` turns them into the lake's typed Arrow table.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import random
import sys
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Literal

import aiohttp

from gpuetl.config import JQuantsSettings
from gpuetl.jquants import errors as E
from gpuetl.jquants.auth import ApiKeyAuth, Auth, TokenAuth
from gpuetl.jquants.env import Credentials
from gpuetl.jquants.ratelimit import Clock, Limiter, RealClock
from gpuetl.jquants.retry import Backoff, RateLimitStreak
from gpuetl.jquants.spec import REQUESTS_PER_MINUTE, DatasetSpec, Plan
from gpuetl.version import __version__

log = logging.getLogger(__name__)

USER_AGENT = f"gpuetl/{__version__} (aiohttp/{aiohttp.__version__}; python/{sys.version_info[0]}.{sys.version_info[1]})"
Version = Literal["v2", "v1"]
Record = dict[str, Any]


@dataclasses.dataclass
class RequestStats:
    """Counters for one dataset (or "auth"): what the summary table and the tests read."""

    requests: int = 0  # HTTP attempts, retries included
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    transient: int = 0  # 5xx, timeouts, dropped connections, broken bodies
    pages: int = 0
    records: int = 0


@dataclasses.dataclass(frozen=True)
class Page:
    records: list[Record]
    pagination_key: str | None


class Client:
    """Use as `async with Client(...) as c:`; one instance per process run, shared by all tasks."""

    def __init__(
        self,
        api_url: str,
        credentials: Credentials,
        *,
        api_version: Version = "v2",
        plan: Plan = "standard",
        requests_per_minute: float | None = None,
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 8,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 120.0,
        cooldown_s: float = 300.0,
        cooldown_after: int = 3,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.api_version: Version = api_version
        self.base_url = f"{self.api_url}/{api_version}"
        self.plan: Plan = plan
        self.clock = clock or RealClock()
        self.limiter = Limiter(requests_per_minute or REQUESTS_PER_MINUTE[plan], self.clock)
        self.concurrency = concurrency
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 30.0))
        self.backoff = Backoff(backoff_base_s, backoff_max_s, max_retries, rng or random.Random())
        self.cooldown_s = cooldown_s
        self.streak = RateLimitStreak(cooldown_after)
        self.cooldowns = 0
        self.stats: dict[str, RequestStats] = {}
        self._sem = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None
        self.auth: Auth = self._make_auth(credentials)

    @classmethod
    def from_settings(
        cls,
        settings: JQuantsSettings,
        credentials: Credentials,
        *,
        api_url: str | None = None,
        plan: Plan | None = None,
        api_version: Version | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> Client:
        return cls(
            api_url or settings.api_url, credentials, api_version=api_version or settings.api_version,
            plan=plan or settings.plan, requests_per_minute=settings.requests_per_minute,
            concurrency=settings.concurrency, timeout_s=settings.timeout_s, max_retries=settings.max_retries,
            backoff_base_s=settings.backoff_base_s, backoff_max_s=settings.backoff_max_s,
            cooldown_s=settings.cooldown_s, clock=clock, rng=rng)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Client:
        self.session  # noqa: B018 - open it now, inside the running loop
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout,
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip", "Accept": "application/json"},
                connector=aiohttp.TCPConnector(limit=self.concurrency + 2),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ public calls

    async def pages(self, ds: DatasetSpec, params: Mapping[str, str] | None = None) -> AsyncIterator[list[Record]]:
        """Every page of one query: the same query again with each `pagination_key` until none comes."""
        query = dict(params or {})
        seen: set[str] = set()
        while True:
            page = await self.get(ds, query)
            yield page.records
            key = page.pagination_key
            if not key:
                return
            if key in seen:
                raise E.JQuantsError(f"{ds.name}: the server repeated pagination_key {key!r}; stopping")
            seen.add(key)
            query["pagination_key"] = key

    async def records(self, ds: DatasetSpec, params: Mapping[str, str] | None = None) -> list[Record]:
        """All records of one query, pagination followed."""
        out: list[Record] = []
        async for recs in self.pages(ds, params):
            out.extend(recs)
        return out

    async def day_records(self, ds: DatasetSpec, day: dt.date, params: Mapping[str, str] | None = None) -> list[Record]:
        """All records of one business day (`ds.date_param`); a 413 here cannot be narrowed further."""
        if ds.date_param is None:
            raise ValueError(f"{ds.name} has no single-day query parameter")
        try:
            return await self.records(ds, {**(params or {}), ds.date_param: day.isoformat()})
        except E.TooLargeError as err:
            raise E.TooLargeError(
                f"{ds.name}: the server refuses {ds.date_param}={day} as too large (413) and a one-day query "
                "has no range left to split; narrow it by code or fetch that day separately",
                status=413, server_message=err.server_message, url=err.url) from err

    async def range_records(
        self, ds: DatasetSpec, start: dt.date, end: dt.date, params: Mapping[str, str] | None = None
    ) -> list[Record]:
        """All records of `from=start&to=end`, halving the range recursively on 413."""
        try:
            return await self.records(ds, {**(params or {}), "from": start.isoformat(), "to": end.isoformat()})
        except E.TooLargeError as err:
            if start >= end:
                raise E.TooLargeError(
                    f"{ds.name}: even from=to={start} is too large for the server (413); nothing left to split",
                    status=413, server_message=err.server_message, url=err.url) from err
            mid = start + (end - start) // 2
            log.info("%s: 413 for %s..%s; splitting at %s", ds.name, start, end, mid)
            return (await self.range_records(ds, start, mid, params)
                    + await self.range_records(ds, mid + dt.timedelta(days=1), end, params))

    async def get(self, ds: DatasetSpec, params: Mapping[str, str]) -> Page:
        """One page of one query, with pacing, retries and typed errors."""
        path = self._path(ds)
        query = self._params(ds, params)
        status, body = await self._call("GET", path, query, None, ds.name, ds)
        if status == 210:  # "no content" (prices_am outside its hours): an empty answer
            return Page([], None)
        key = "data" if self.api_version == "v2" else ds.v1_key
        if not isinstance(body, dict) or not isinstance(body.get(key), list):
            keys = sorted(body) if isinstance(body, dict) else type(body).__name__
            raise E.JQuantsError(f"{ds.name}: unexpected response shape (no list under {key!r}; got {keys})",
                                 status=status, url=path)
        records: list[Record] = body[key]
        stats = self._stats(ds.name)
        stats.pages += 1
        stats.records += len(records)
        pk = body.get("pagination_key")
        return Page(records, str(pk) if pk else None)

    # ------------------------------------------------------------------ transport

    def _make_auth(self, credentials: Credentials) -> Auth:
        if self.api_version == "v2":
            if not credentials.api_key:
                raise E.MissingCredentialsError("the V2 API needs an API key (JQUANTS_API_KEY)")
            return ApiKeyAuth(credentials.api_key)
        if not (credentials.mail and credentials.password):
            raise E.MissingCredentialsError(
                "the V1 API needs JQUANTS_API_MAIL_ADDRESS and JQUANTS_API_PASSWORD")
        return TokenAuth(credentials.mail, credentials.password, self._post_auth, self.clock)

    def _path(self, ds: DatasetSpec) -> str:
        if self.api_version == "v2":
            return ds.path
        if ds.v1_path is None:
            raise E.BadRequestError(f"{ds.name} ({ds.path}) has no V1 endpoint; use --api-version v2")
        return ds.v1_path

    def _params(self, ds: DatasetSpec, params: Mapping[str, str]) -> dict[str, str]:
        if self.api_version == "v2":
            return dict(params)
        rename = ds.v2_to_v1_params()
        return {rename.get(k, k): v for k, v in params.items()}

    def _stats(self, name: str) -> RequestStats:
        return self.stats.setdefault(name, RequestStats())

    async def _post_auth(
        self, path: str, params: Mapping[str, str] | None, body: Mapping[str, Any] | None
    ) -> tuple[int, Any]:
        return await self._call("POST", path, dict(params or {}), body, "auth", None, authenticated=False,
                                final_statuses=frozenset({400, 401, 403}))

    async def _call(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        json_body: Mapping[str, Any] | None,
        stats_name: str,
        ds: DatasetSpec | None,
        *,
        authenticated: bool = True,
        final_statuses: frozenset[int] = frozenset(),
    ) -> tuple[int, Any]:
        """Send until a usable answer: (status, decoded body) for 2xx and `final_statuses`, else raise."""
        url = self.base_url + path
        stats = self._stats(stats_name)
        attempt = 0
        renewed = False
        while True:
            # headers first: a V1 token renewal makes its own paced calls and must not hold a slot here
            headers = await self.auth.headers() if authenticated else {}
            async with self._sem:
                await self.limiter.acquire()
                stats.requests += 1
                try:
                    status, body = await self._send(method, url, params, json_body, headers)
                except E.TransportError as err:
                    error: E.JQuantsError = err
                else:
                    if 200 <= status < 300 or status in final_statuses:
                        self.streak.ok()
                        return status, body
                    if status == 401 and authenticated and self.auth.refreshable and not renewed:
                        self.auth.invalidate(headers)
                        renewed = True
                        continue
                    message = str(body.get("message", "")) if isinstance(body, dict) else str(body or "")[:200]
                    error = E.from_response(status, message, url=url, dataset=ds, plan=self.plan)
                    if status == 429:
                        stats.rate_limited += 1
                        if self.streak.hit():
                            self._cool_down()
            if isinstance(error, E.TransportError | E.ServerError):
                stats.transient += 1
            if not error.retryable:
                raise error
            if attempt >= self.backoff.max_retries:
                raise type(error)(f"{error} — gave up after {attempt} retries", status=error.status,
                                  server_message=error.server_message, url=error.url)
            delay = self.backoff.delay(attempt)
            attempt += 1
            stats.retries += 1
            log.debug("%s %s: %s; retry %d in %.2fs", method, path, error, attempt, delay)
            await self.clock.sleep(delay)

    def _cool_down(self) -> None:
        self.cooldowns += 1
        log.warning("J-Quants keeps answering 429: pausing all requests for %.0fs (cool-down %d)",
                    self.cooldown_s, self.cooldowns)
        self.limiter.pause(self.cooldown_s)

    async def _send(
        self, method: str, url: str, params: dict[str, str], json_body: Mapping[str, Any] | None,
        headers: dict[str, str],
    ) -> tuple[int, Any]:
        """One HTTP exchange; every way of getting no usable body becomes a TransportError."""
        try:
            async with self.session.request(method, url, params=params, json=json_body, headers=headers) as resp:
                status = resp.status
                raw = await resp.read()
        except (TimeoutError, aiohttp.ClientError) as err:
            raise E.TransportError(f"{method} {url}: {type(err).__name__}: {err}", url=url) from err
        if not raw:
            if 200 <= status < 300:
                raise E.TransportError(f"{method} {url}: empty body with status {status}", status=status, url=url)
            return status, None
        try:
            return status, json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            if 200 <= status < 300:
                raise E.TransportError(f"{method} {url}: broken JSON body ({len(raw)} bytes): {err}",
                                       status=status, url=url) from err
            return status, raw[:500].decode("utf-8", "replace")
