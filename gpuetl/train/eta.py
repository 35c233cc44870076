"""How long a run has left: each fit (one member on one fold) weighs its training stock-days, the seconds spent so
far divide the weight done, and the rest is that rate times the weight left. Folds grow (the training window
expands), so a weight per fit, not a count of fits, keeps the estimate honest; early stopping makes it an upper
estimate until the fits stop early as often as the ones measured."""

from __future__ import annotations

import time
from collections.abc import Sequence


class Eta:
    def __init__(self, weights: Sequence[float]) -> None:
        self.total = float(sum(weights))
        self.done = 0.0
        self.start = time.perf_counter()

    def advance(self, weight: float) -> None:
        self.done += weight

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float | None:
        """Seconds left by the rate so far (None before anything is done)."""
        if self.done <= 0:
            return None
        return self.elapsed / self.done * max(self.total - self.done, 0.0)

    def line(self) -> str:
        """'12% of the run in 1 min 5 s, about 8 min left'."""
        left = self.left()
        share = self.done / self.total if self.total else 1.0
        tail = "" if left is None else f", about {duration(left)} left"
        return f"{share:.0%} of the run in {duration(self.elapsed)}{tail}"


def duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '2 h 05 min'."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
