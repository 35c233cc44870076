"""The fake J-Quants HTTP API: V2 under /v2 (x-api-key), V1 under /v1 (token flow), one synthetic market.

A data request passes, in order: path -> auth -> rate limit -> injected faults -> plan -> parameters ->
plan window -> row selection -> 413 cap -> page -> encode. Each step answers as the real API does
(API-NOTES §1-§3); every request, whatever its answer, lands in the request log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from gpuetl.fake import errors, params
from gpuetl.fake.errors import ApiError
from gpuetl.fake.limits import Clock, Fault, FaultInjector, RateLimiter
from gpuetl.fake.market import Market, MarketIndex
from gpuetl.fake.options import FakeOptions
from gpuetl.fake.pagination import PageKeys
from gpuetl.fake.plans import Window
from gpuetl.fake.request_log import LoggedRequest, RequestLog
from gpuetl.fake.tokens import TokenStore
from gpuetl.jquants import spec

Sleep = Callable[[float], Awaitable[None]]


class FakeState:
    """Everything the handlers share: the market index, the plan window, limits, tokens, the log."""

    def __init__(self, market: Market, options: FakeOptions, clock: Clock, sleep: Sleep) -> None:
        self.options = options
        self.clock = clock
        self.sleep = sleep
        self.index = MarketIndex(market)
        self.today = options.today or self.index.default_today()
        self.window = Window.for_plan(options.plan, self.today)
        per_minute = options.requests_per_minute or spec.REQUESTS_PER_MINUTE[options.plan]
        self.limiter = RateLimiter(per_minute, block_after=options.block_after, block_s=options.block_s,
                                   clock=clock)
        self.faults = FaultInjector(options.faults)
        self.tokens = TokenStore(options.mail, options.password, refresh_ttl_s=options.refresh_ttl_s,
                                 id_ttl_s=options.id_ttl_s, clock=clock)
        self.page_keys = PageKeys(options.secret)
        self.log = RequestLog()
        self._built: set[str] = set()
        self._build_lock = asyncio.Lock()

    async def ready(self, name: str) -> None:
        """Build a dataset's table and wire columns once, off the event loop (a big market takes seconds)."""
        if name in self._built:
            return
        async with self._build_lock:  # one build at a time: market builders need not be thread-safe
            if name not in self._built:
                await asyncio.to_thread(self._build, name)
                self._built.add(name)

    def _build(self, name: str) -> None:
        table = self.index.table(name)
        if table is not None:
            table.wire  # noqa: B018 (a cached property: building it is the point)


@dataclasses.dataclass
class _Note:
    """What a handler learned about its request, for the log."""

    dataset: str | None = None
    rows: int = 0
    fault: str | None = None
    account: str | None = None


STATE = web.AppKey("gpuetl_fake_state", FakeState)
NOTE = web.RequestKey("gpuetl_fake_note", _Note)


def _dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _json(request: web.Request, body: Mapping[str, Any], status: int = 200) -> web.Response:
    resp = web.Response(text=_dumps(body), status=status, content_type="application/json")
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():  # the API always gzips on request
        resp.enable_compression(web.ContentCoding.gzip)
    return resp


@web.middleware
async def _record(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    state = request.app[STATE]
    note = request[NOTE] = _Note()
    t = state.clock()

    def log(status: int) -> None:
        state.log.add(LoggedRequest(t, request.method, request.path, dict(request.query), status,
                                    note.dataset, note.rows, note.fault, note.account))

    try:
        resp = await handler(request)
    except ApiError as err:
        resp = _json(request, {"message": err.message}, status=err.status)
    except web.HTTPException as exc:
        log(exc.status)
        raise
    log(resp.status)
    return resp


# ----------------------------------------------------------------------------------------------- handlers


async def _v2(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    ds = spec.by_path("/" + request.match_info["tail"].rstrip("/"), "v2")
    if ds is None or request.method != "GET":
        raise ApiError(403, errors.ENDPOINT_UNKNOWN)
    key = request.headers.get("x-api-key")
    if not key:
        raise ApiError(403, errors.API_KEY_REQUIRED)
    if key != state.options.api_key:
        raise ApiError(403, errors.API_KEY_INVALID)
    return await _data(request, state, ds, "v2", f"key:{key}")


async def _v1(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    ds = spec.by_path("/" + request.match_info["tail"].rstrip("/"), "v1")
    if ds is None or request.method != "GET":
        raise ApiError(403, errors.V1_ENDPOINT_UNKNOWN)
    account = state.tokens.account(request.headers.get("Authorization"))
    return await _data(request, state, ds, "v1", f"user:{account}")


async def _auth_user(request: web.Request) -> web.StreamResponse:
    """POST /v1/token/auth_user with a JSON body (with or without a JSON Content-Type, as the samples)."""
    try:
        body = json.loads(await request.text() or "{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, errors.LOGIN_INCORRECT)
    token = request.app[STATE].tokens.login(body.get("mailaddress"), body.get("password"))
    return _json(request, {"refreshToken": token})


async def _auth_refresh(request: web.Request) -> web.StreamResponse:
    token = request.app[STATE].tokens.refresh(request.query.get("refreshtoken"))
    return _json(request, {"idToken": token})


async def _data(request: web.Request, state: FakeState, ds: spec.DatasetSpec, version: params.Version,
                account: str) -> web.StreamResponse:
    note = request[NOTE]
    note.dataset, note.account = ds.name, account
    opts = state.options
    state.limiter.admit(account)
    fault = state.faults.draw() if opts.faults.any else Fault()
    note.fault = fault.name
    if fault.slow_s:
        await state.sleep(fault.slow_s)
    if fault.error:
        raise ApiError(fault.error, errors.SERVER_ERRORS[fault.error])
    if not ds.available_on(opts.plan):
        raise ApiError(403, errors.NOT_IN_PLAN)
    q = params.parse(ds, version, request.query)
    state.window.check(q)
    await state.ready(ds.name)
    table, sel = state.index.select(q, state.window, state.today)
    rows = sel.rows
    if opts.max_rows is not None and len(rows) > opts.max_rows:
        raise ApiError(413, errors.TOO_LARGE)
    fingerprint = q.fingerprint()
    offset = state.page_keys.offset(q.pagination_key, fingerprint) if q.pagination_key else 0
    end = offset + opts.page_size if ds.paginated else len(rows)
    page = rows[offset:end].tolist()
    records = table.wire.records(page, version, opts.plan, extra_keys=opts.extra_keys,
                                 overrides=sel.overrides) if table is not None else []
    body: dict[str, Any] = {ds.v1_key if version == "v1" and ds.v1_key else "data": records}
    if end < len(rows):
        body["pagination_key"] = state.page_keys.issue(fingerprint, end)
    note.rows = len(records)
    if fault.drop:
        return await _drop(request, body)
    return _json(request, body)


async def _drop(request: web.Request, body: Mapping[str, Any]) -> web.StreamResponse:
    """Send the headers and half the body, then close the connection: a payload error at the client."""
    raw = _dumps(body).encode()
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json; charset=utf-8"})
    resp.content_length = len(raw)
    await resp.prepare(request)
    await resp.write(raw[: len(raw) // 2])
    if request.transport is not None:
        request.transport.close()
    return resp


def build_app(market: Market, options: FakeOptions | None = None, *, clock: Clock = time.monotonic,
              sleep: Sleep = asyncio.sleep) -> web.Application:
    """The aiohttp application; `clock` and `sleep` are injectable so tests drive time."""
    app = web.Application(middlewares=[_record])
    app[STATE] = FakeState(market, options or FakeOptions(), clock, sleep)
    app.router.add_post("/v1/token/auth_user", _auth_user)
    app.router.add_post("/v1/token/auth_refresh", _auth_refresh)
    app.router.add_route("*", "/v1/{tail:.*}", _v1)
    app.router.add_route("*", "/v2/{tail:.*}", _v2)
    return app
