"""Pacing: evenly spaced permits, pauses that hold every task, and the limit as the server measures it."""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gpuetl.jquants import spec
from gpuetl.jquants.client import Client
from gpuetl.jquants.env import Credentials
from gpuetl.jquants.fake.request_log import max_in_window
from gpuetl.jquants.ratelimit import HEADROOM, Limiter, ManualClock, ScaledClock
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


async def test_the_server_never_sees_more_than_the_plan_limit_per_minute() -> None:
    """120 req/min on a clock 60x faster than the wall: ~1.7 virtual minutes of requests in ~1.7 s."""
    clock = ScaledClock(60.0)
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
            await asyncio.gather(*(client.day_records(spec.get("bars_daily"), d) for d in days))
    finally:
        await server.close()
    assert len(arrivals) == 200
    assert max_in_window(arrivals) <= 120
    rate = (len(arrivals) - 1) / (max(arrivals) - min(arrivals)) * 60
    assert 110 <= rate <= 120  # close to the plan's limit, never above
