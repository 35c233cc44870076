"""Retry policy: exponential backoff with full jitter, and the 429 streak that triggers a cool-down.

Full jitter (sleep a uniform draw in [0, min(cap, base * 2**attempt)]) spreads retries of many tasks so
they do not return in lock-step (the official client retries immediately and makes 429s worse,
API-NOTES §3.5 gotcha 12). The API sends no Retry-After, so a streak of 429s is the only signal that
the plan's limit is being exceeded; after `streak` in a row the whole client cools down.
"""

from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass
class Backoff:
    base_s: float
    max_s: float
    max_retries: int
    rng: random.Random = dataclasses.field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        cap = min(self.max_s, self.base_s * 2.0 ** min(attempt, 62))
        return self.rng.uniform(0.0, cap)


@dataclasses.dataclass
class RateLimitStreak:
    """Counts consecutive 429s across the whole client; `hit()` says when to cool down."""

    streak: int = 3
    count: int = 0

    def hit(self) -> bool:
        self.count += 1
        if self.count >= self.streak:
            self.count = 0
            return True
        return False

    def ok(self) -> None:
        self.count = 0
