"""Every request the server saw, so tests assert on what reached the server rather than what a client
believes it sent: "no more than L data requests in any 60 s window", "zero data requests on a re-run"."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class LoggedRequest:
    t: float  # the server's clock (monotonic unless a test injected one)
    method: str
    path: str  # as requested, e.g. /v2/equities/bars/daily
    query: Mapping[str, str]
    status: int
    dataset: str | None = None  # catalogue name for data endpoints, None otherwise (tokens, unknown paths)
    rows: int = 0  # rows in the body
    fault: str | None = None  # injected fault ("error", "slow", "drop", combined with "+")
    account: str | None = None

    @property
    def is_data(self) -> bool:
        return self.dataset is not None


class RequestLog:
    def __init__(self) -> None:
        self.records: list[LoggedRequest] = []

    def add(self, record: LoggedRequest) -> None:
        self.records.append(record)

    def clear(self) -> None:
        self.records.clear()

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[LoggedRequest]:
        return iter(self.records)

    def data_requests(self, dataset: str | None = None, statuses: Collection[int] | None = None) -> list[LoggedRequest]:
        return [r for r in self.records if r.is_data and (dataset is None or r.dataset == dataset)
                and (statuses is None or r.status in statuses)]

    def max_in_window(self, window_s: float = 60.0, *, data_only: bool = True,
                      statuses: Collection[int] | None = None) -> int:
        """The most requests that fall in any half-open window [t, t + window_s)."""
        times = [r.t for r in self.records
                 if (r.is_data or not data_only) and (statuses is None or r.status in statuses)]
        return max_in_window(times, window_s)

    def stats(self) -> dict[str, Any]:
        data = [r for r in self.records if r.is_data]
        return {
            "requests": len(self.records),
            "data_requests": len(data),
            "rows": sum(r.rows for r in data),
            "by_status": dict(collections.Counter(r.status for r in self.records)),
            "by_dataset": dict(collections.Counter(r.dataset for r in data)),
            "faults": dict(collections.Counter(r.fault for r in self.records if r.fault)),
        }


def max_in_window(times: Iterable[float], window_s: float = 60.0) -> int:
    """The most of `times` that fall in any half-open window [t, t + window_s) (a rate limit's measure)."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
