"""Pacing: evenly spaced permits, pauses that hold every task, and the limit as the server measures it."""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import random
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gpuetl.fake.request_log import max_in_window
from gpuetl.jquants import spec
from gpuetl.jquants.client import Client
from gpuetl.jquants.env import Credentials
from gpuetl.jquants.ratelimit import HEADROOM, Limiter, ManualClock
from gpuetl.jquants.retry import Backoff, RateLimitStreak


async def test_permits_are_evenly_spaced_not_bursty() -> None:
    clock = ManualClock()
    limiter = Limiter(5, clock)  # Free plan: one permit every 12 s (plus headroom)
    slots = await asyncio.gather(*(limiter.acquire() for _ in range(10)))
    gaps = [b - a for a, b in zip(sorted(slots), sorted(slots)[1:], strict=False)]
    assert gaps == pytest.approx([12.0 * HEADROOM] * 9)
    assert max_in_window(list(slots)) <= 5


async def test_pause_holds_reserved_and_future_permits() -> None:
    clock = ManualClock()
    limiter = Limiter(60, clock)
    assert await limiter.acquire() == 0.0
    limiter.pause(300.0)
    slots = await asyncio.gather(*(limiter.acquire() for _ in range(3)))
    assert min(slots) >= 300.0


def test_backoff_is_full_jitter_capped() -> None:
    b = Backoff(base_s=1.0, max_s=10.0, max_retries=8, rng=random.Random(1))
    draws = [[b.delay(a) for _ in range(200)] for a in range(8)]
    for attempt, ds in enumerate(draws):
        cap = min(10.0, 2.0**attempt)
        assert all(0.0 <= d <= cap for d in ds) and max(ds) > cap * 0.8  # spread over [0, cap]


def test_429_streak_triggers_after_three_in_a_row() -> None:
    s = RateLimitStreak(3)
    assert [s.hit(), s.hit()] == [False, False]
    s.ok()
    assert [s.hit(), s.hit(), s.hit()] == [False, False, True]


class SteppedClock:
    """Virtual time for a client talking to a real (loopback) server: `sleep` parks the task until the driver
    moves time to its wake-up, and the driver does so only while every active task sleeps, so no request is
    in flight when time moves. A request's arrival time is then exactly its permit's slot, whatever the load."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), self._seq, fut))
        self._seq += 1
        await fut

    async def drive(self, tasks: list[asyncio.Task[Any]], active: int) -> None:
        """Run `tasks` (at most `active` outside a queue at once) to the end, moving time when all of those sleep."""
        while not all(t.done() for t in tasks):
            if self._sleepers and len(self._sleepers) >= min(active, sum(not t.done() for t in tasks)):
                self.now = self._sleepers[0][0]
                while self._sleepers and self._sleepers[0][0] <= self.now:
                    heapq.heappop(self._sleepers)[2].set_result(None)
            await asyncio.sleep(0)  # let the woken tasks and the HTTP exchanges run (no wall time is measured)
        await asyncio.gather(*tasks)


async def test_the_server_never_sees_more_than_the_plan_limit_per_minute() -> None:
    """120 req/min, 200 requests from 8 tasks, arrivals stamped on the same virtual clock at the server."""
    clock = SteppedClock()
    arrivals: list[float] = []

    async def bars(request: web.Request) -> web.Response:
        arrivals.append(clock.monotonic())
        return web.json_response({"data": [{"Code": "72030"}]})

    app = web.Application()
    app.router.add_get("/v2/equities/bars/daily", bars)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        client = Client(str(server.make_url("")).rstrip("/"), Credentials(api_key="k"), plan="standard",
                        concurrency=8, clock=clock)
        days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(200)]
        async with client:
            tasks = [asyncio.create_task(client.day_records(spec.get("bars_daily"), d)) for d in days]
            await clock.drive(tasks, active=8)
    finally:
        await server.close()
    assert len(arrivals) == 200
    assert max_in_window(arrivals) <= 120
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert gaps == pytest.approx([60 / 120 * HEADROOM] * 199)  # evenly spaced at the limit (less the headroom)
