"""Shared pieces of the fake-server and client tests: the tiny market, its business days, a manual clock."""

from __future__ import annotations

import functools

from gpuetl.fake.tiny import TinyMarket, tiny_market


@functools.cache
def market() -> TinyMarket:
    """The hand-made market covering every dataset and its awkward cases (built once per session)."""
    return tiny_market()


def day(i: int) -> str:
    """The tiny market's i-th business day as YYYY-MM-DD."""
    return market().business_days[i].isoformat()


class Clock:
    """A clock tests move by hand (`clock.now += 61`), for limits and token lifetimes without sleeping."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
