"""The API's rate limit and the faults a client must survive.

Rate limit (API-NOTES §3.3): the plan's requests per minute in a sliding 60 s window per caller; beyond
it, 429 `{"message": "Too Many Requests"}` without Retry-After. A caller that keeps going (more than
`block_after` 429s within 60 s) is blocked: every request is a 429 for `block_s`. Time comes from an
injected clock so tests drive it instead of sleeping.

Faults: seeded draws per data request (error / slow / drop), so a failing run can be replayed.
"""

from __future__ import annotations

import collections
import dataclasses
import random
from collections.abc import Callable

from gpuetl.fake import errors
from gpuetl.fake.errors import ApiError
from gpuetl.fake.options import Faults

Clock = Callable[[], float]
WINDOW_S = 60.0


class RateLimiter:
    def __init__(self, per_minute: int, *, block_after: int, block_s: float, clock: Clock) -> None:
        self.per_minute = per_minute
        self.block_after = block_after
        self.block_s = block_s
        self.clock = clock
        self._admitted: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._refused: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._blocked_until: dict[str, float] = {}
        self.blocks = 0  # how many times a caller was blocked

    def blocked(self, who: str) -> bool:
        return self.clock() < self._blocked_until.get(who, float("-inf"))

    def admit(self, who: str) -> None:
        """Count one request by `who`, or raise the 429 the API answers."""
        now = self.clock()
        if self.blocked(who):
            raise ApiError(429, errors.TOO_MANY)
        admitted = _trim(self._admitted[who], now)
        if len(admitted) < self.per_minute:
            admitted.append(now)
            return
        refused = _trim(self._refused[who], now)
        refused.append(now)
        if len(refused) > self.block_after:
            self._blocked_until[who] = now + self.block_s
            self.blocks += 1
            refused.clear()
        raise ApiError(429, errors.TOO_MANY)


def _trim(q: collections.deque[float], now: float) -> collections.deque[float]:
    while q and now - q[0] >= WINDOW_S:
        q.popleft()
    return q


@dataclasses.dataclass(frozen=True)
class Fault:
    error: int | None = None  # 500 / 502 / 503
    slow_s: float = 0.0
    drop: bool = False

    @property
    def name(self) -> str | None:
        parts = [p for p, on in (("error", self.error), ("slow", self.slow_s), ("drop", self.drop)) if on]
        return "+".join(parts) or None


class FaultInjector:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)

    def draw(self) -> Fault:
        """Three independent draws per request (always all three, so the sequence replays exactly)."""
        f = self.faults
        error, slow, drop, pick = (self._rng.random() for _ in range(4))
        return Fault(
            error=(500, 502, 503)[int(pick * 3)] if error < f.error_rate else None,
            slow_s=f.slow_s if slow < f.slow_rate else 0.0,
            drop=drop < f.drop_rate,
        )
