"""Run the fake API on a real socket: `FakeServer` for tests and pipelines, `serve` for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from gpuetl.config import DemoSettings
from gpuetl.fake.app import STATE, FakeState, Sleep, build_app
from gpuetl.fake.limits import Clock
from gpuetl.fake.market import Market
from gpuetl.fake.options import FakeOptions
from gpuetl.fake.request_log import RequestLog


class FakeServer:
    """The fake J-Quants API on host:port (port 0: a free one).

        async with FakeServer(market, FakeOptions(plan="light")) as server:
            client = Client(base_url=server.url, api_key=server.options.api_key)  # server.url + "/v2"
            ...
            assert server.log.max_in_window(60) <= 60
    """

    def __init__(self, market: Market, options: FakeOptions | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self.app = build_app(market, options, clock=clock, sleep=sleep)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def state(self) -> FakeState:
        return self.app[STATE]

    @property
    def options(self) -> FakeOptions:
        return self.state.options

    @property
    def url(self) -> str:
        """Base URL without the version: clients append /v2 or /v1."""
        if self._runner is None:
            raise RuntimeError("FakeServer is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def log(self) -> RequestLog:
        return self.state.log

    @property
    def stats(self) -> dict[str, Any]:
        return {**self.log.stats(), "blocks": self.state.limiter.blocks, "plan": self.options.plan,
                "today": self.state.today.isoformat()}

    async def start(self) -> Self:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


def serve(settings: DemoSettings, market: Market, options: FakeOptions | None = None, *, as_json: bool = False) -> None:
    """Serve until Ctrl-C or SIGTERM (blocking): prints the URL, the key and a curl to try (stdout; one JSON
    line with `as_json`), and what it served when it stops (stderr)."""
    asyncio.run(_serve(settings, market, options or FakeOptions.from_demo(settings), as_json))


async def _serve(settings: DemoSettings, market: Market, options: FakeOptions, as_json: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows / not main thread
            loop.add_signal_handler(sig, stop.set)
    async with FakeServer(market, options, host=settings.host, port=settings.port) as server:
        state = server.state
        day = state.index.last_date()
        if state.window.end is not None and day > state.window.end:
            day = state.index.previous_business_day(state.window.end)
        if as_json:
            print(json.dumps({"url": server.url, "v2": f"{server.url}/v2", "v1": f"{server.url}/v1",
                              "api_key": options.api_key, "mail": options.mail, "password": options.password,
                              "plan": options.plan, "today": state.today.isoformat(), "last": day.isoformat()}),
                  flush=True)
        else:
            print(f"fake J-Quants API ({options.plan} plan, today {state.today}) at {server.url}/v2 "
                  f"(V1 at {server.url}/v1)")
            print(f"API key: {options.api_key}    V1 login: {options.mail} / {options.password}")
            print(f"try: curl -H 'x-api-key: {options.api_key}' '{server.url}/v2/equities/bars/daily?date={day}'")
            print("Ctrl-C to stop", flush=True)
        await stop.wait()
        print(f"gpuetl demo-server: stopping; served {server.log.stats()['data_requests']} data requests",
              file=sys.stderr, flush=True)
