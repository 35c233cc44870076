"""What the fake server can be told: credentials, plan, paging, limits, faults, token lifetimes.

`DemoSettings` (configs/gpuetl.yaml `demo:`) covers what a user tunes; the rest (token lifetimes, block
policy, the 413 cap, extra keys, the server's "today") exists so tests can drive edge cases, and
defaults to what the real API does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from gpuetl.config import DemoSettings
from gpuetl.jquants import spec
from gpuetl.jquants.spec import Plan


@dataclasses.dataclass(frozen=True)
class Faults:
    """Seeded fault injection on data requests (each drawn independently per request)."""

    error_rate: float = 0.0  # answered 500/502/503 with the API's message
    slow_rate: float = 0.0  # delayed by slow_s before answering
    slow_s: float = 0.0
    drop_rate: float = 0.0  # headers and half the body written, then the connection closed
    seed: int = 0

    @property
    def any(self) -> bool:
        return self.error_rate > 0 or self.slow_rate > 0 or self.drop_rate > 0


@dataclasses.dataclass(frozen=True)
class FakeOptions:
    api_key: str = "demo"  # V2 `x-api-key`
    plan: Plan = "premium"
    page_size: int = 1000  # rows per page on paginated endpoints
    # V1 token flow
    mail: str = "demo@example.com"
    password: str = "demo"
    refresh_ttl_s: float = 7 * 24 * 3600.0  # refresh token: 1 week
    id_ttl_s: float = 24 * 3600.0  # ID token: 24 h
    # rate limiting: None = the plan's published requests/minute (spec.REQUESTS_PER_MINUTE)
    requests_per_minute: int | None = None
    block_after: int = 20  # more 429s than this within 60 s -> the caller is blocked
    block_s: float = 300.0  # how long a block lasts (the API blocks ~5 minutes)
    faults: Faults = Faults()
    max_rows: int | None = None  # a query matching more rows -> 413 "Response data is too large..."
    extra_keys: bool = True  # send the keys the real API adds beyond the schema (ExRT, MktCap in daily bars)
    today: dt.date | None = None  # None: the business day after the market's last date
    secret: bytes | None = None  # HMAC key for pagination keys; None: random per server

    def __post_init__(self) -> None:
        if self.plan not in spec.PLANS:
            raise ValueError(f"plan {self.plan!r} is not one of {', '.join(spec.PLANS)}")
        if self.page_size < 1 or (self.requests_per_minute is not None and self.requests_per_minute < 1):
            raise ValueError("page_size and requests_per_minute must be >= 1")
        if self.max_rows is not None and self.max_rows < 0:
            raise ValueError("max_rows must be >= 0")
        f = self.faults
        if not all(0.0 <= r <= 1.0 for r in (f.error_rate, f.slow_rate, f.drop_rate)) or f.slow_s < 0:
            raise ValueError(f"fault rates lie in [0, 1] and slow_s >= 0: {f}")

    @classmethod
    def from_demo(cls, demo: DemoSettings, **overrides: Any) -> FakeOptions:
        """Options from the `demo:` settings; keyword overrides win."""
        f = demo.faults
        base = cls(
            api_key=demo.api_key, plan=demo.plan, page_size=demo.page_size,
            requests_per_minute=demo.requests_per_minute,
            faults=Faults(f.error_rate, f.slow_rate, f.slow_s, f.drop_rate, seed=demo.seed),
        )
        return dataclasses.replace(base, **overrides)


def parse_faults(text: str) -> dict[str, float]:
    """`error=0.1,slow=0.05,slow_s=2,drop=0.02` -> the given fields of `Faults` (the CLI's --faults)."""
    names = {"error": "error_rate", "slow": "slow_rate", "slow_s": "slow_s", "drop": "drop_rate"}
    values: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or key.strip() not in names:
            raise ValueError(f"fault {item!r}: expected one of {', '.join(k + '=' for k in names)}")
        try:
            values[names[key.strip()]] = float(raw)
        except ValueError:
            raise ValueError(f"fault {item!r}: {raw!r} is not a number") from None
    for name, v in values.items():
        if v < 0 or (name != "slow_s" and v > 1):
            raise ValueError(f"fault {name}={v}: rates lie in [0, 1], slow_s >= 0")
    return values
