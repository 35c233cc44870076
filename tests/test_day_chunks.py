"""How a year is cut into day chunks (gpuetl.dataset.plan.day_chunks): contiguous runs of a year's dates, every
date in exactly one run, none across a year, about equal rows, at most `limit` rows where a date allows it."""

from __future__ import annotations

import numpy as np
import pytest

from gpuetl.dataset.plan import day_chunks
from gpuetl.dates import day_of


def business_days(start: str, end: str) -> np.ndarray:
    d = np.arange(np.datetime64(start), np.datetime64(end) + 1)
    return d[np.is_busday(d)].astype(np.int64)


@pytest.mark.parametrize("limit", [1, 7, 500, 4_000, 50_000, 10**9])
def test_chunks_cover_every_date_once_within_years(limit: int) -> None:
    dates = business_days("2022-12-01", "2025-01-31")
    rows = np.random.default_rng(limit).integers(1, 40, len(dates))
    chunks = day_chunks(dates, rows, limit)
    covered = np.concatenate([dates[(dates >= a) & (dates <= b)] for a, b in chunks])
    np.testing.assert_array_equal(covered, dates)  # in order, each once
    year = dates.astype("datetime64[D]").astype("datetime64[Y]")
    for a, b in chunks:
        assert a <= b and year[dates == a][0] == year[dates == b][0]
    sizes = [int(rows[(dates >= a) & (dates <= b)].sum()) for a, b in chunks]
    for y in np.unique(year):
        mine = [s for (a, _), s in zip(chunks, sizes, strict=True) if year[dates == a][0] == y]
        total = int(rows[year == y].sum())
        assert len(mine) == max(1, -(-total // limit)) or max(rows[year == y]) > limit
        assert max(mine) <= max(limit, 0) + int(rows[year == y].max())  # over only by the date that crossed
        if limit >= 10**9:
            assert len(mine) == 1


def test_a_year_by_hand() -> None:
    dates = np.array([day_of(d) for d in ("2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09", "2025-01-06")])
    rows = np.array([10, 10, 10, 10, 5])
    assert day_chunks(dates, rows, 20) == ((dates[0], dates[1]), (dates[2], dates[3]), (dates[4], dates[4]))
    assert day_chunks(dates, rows, 25) == ((dates[0], dates[1]), (dates[2], dates[3]), (dates[4], dates[4]))
    assert day_chunks(dates, rows, 40) == ((dates[0], dates[3]), (dates[4], dates[4]))
    assert day_chunks(dates, rows, 9) == tuple((d, d) for d in dates)
