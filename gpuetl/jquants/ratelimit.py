"""Pacing: evenly spaced request permits at the plan's rate, and a whole-client cool-down.

J-Quants limits requests per minute per plan (Free 5, Light 60, Standard 120, Premium 500) and answers
429 without a Retry-After; bursting even under the limit trips it (API-NOTES §3.3). So this limiter is
a token bucket of depth one (a GCRA): permits are handed out one `interval = 60 / rpm` apart, each
request reserving the next free slot. A `pause(seconds)` pushes every future slot back, which is how
persistent 429s stop the whole client at once. The clock is injectable so tests never sleep for timing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

# Spacing headroom: the server counts arrivals, which jitter by a few ms around our send times; 2 % keeps
# a full minute of permits strictly inside any 60 s window the server might measure.
HEADROOM = 1.02


class Clock(Protocol):
    """Monotonic seconds and a way to wait; `RealClock` in production, scaled/virtual ones in tests."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Time running `factor` times faster than the wall clock (tests: a minute of pacing in a second).

    Share one instance between a test server and the client, and both see the same accelerated minute.
    """

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self._t0 = time.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)


class ManualClock:
    """Virtual time for tests: `sleep` advances the clock instead of waiting (and yields once)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now = max(self.now, self.now + seconds)  # time only moves forward, to the latest wake-up
        await asyncio.sleep(0)


class Limiter:
    """Evenly spaced permits at `rpm` per minute, shared by every task of one client."""

    def __init__(self, rpm: float, clock: Clock | None = None, headroom: float = HEADROOM) -> None:
        if rpm <= 0:
            raise ValueError(f"requests per minute must be positive, got {rpm}")
        self.rpm = rpm
        self.interval = 60.0 / rpm * headroom
        self.clock = clock or RealClock()
        self._next = float("-inf")  # earliest time the next permit may be used
        self._paused_until = float("-inf")
        self._pauses = 0
        self.permits = 0
        self.first_slot: float | None = None
        self.last_slot: float | None = None

    async def acquire(self) -> float:
        """Wait for the next free slot and return its time; re-queue if a pause began meanwhile."""
        while True:
            now = self.clock.monotonic()
            slot = max(now, self._next, self._paused_until)
            self._next = slot + self.interval
            pauses = self._pauses
            if slot > now:
                await self.clock.sleep(slot - now)
            if self._pauses == pauses:
                self.permits += 1
                self.first_slot = slot if self.first_slot is None else self.first_slot
                self.last_slot = slot
                return slot

    def pause(self, seconds: float) -> None:
        """Hold every permit (already reserved or not) until `seconds` from now."""
        until = self.clock.monotonic() + seconds
        if until > self._paused_until:
            self._paused_until = until
            self._next = max(self._next, until)
            self._pauses += 1

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def pace(self) -> float:
        """Permits per second between the first and the last one handed out (0 with fewer than two)."""
        if self.permits < 2 or self.first_slot is None or self.last_slot is None:
            return 0.0
        span = self.last_slot - self.first_slot
        return (self.permits - 1) / span if span > 0 else 0.0
