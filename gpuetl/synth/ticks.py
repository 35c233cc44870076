"""TSE tick sizes and daily price limits (値幅制限), as vectorised lookups.

Both tables are public because tests (and later feature code that flags limit hits) must hold the
synthetic bars to the same rules the generator used.
"""

from __future__ import annotations

import numpy as np

# Tick size by price: (upper bound inclusive, tick). Standard table, and the finer TOPIX100 table.
_TICK_BOUNDS = np.array([3e3, 5e3, 3e4, 5e4, 3e5, 5e5, 3e6, 5e6, 3e7, 5e7, np.inf])
_TICK_SIZES = np.array([1, 5, 10, 50, 100, 500, 1e3, 5e3, 1e4, 5e4, 1e5], dtype=np.float64)
_TICK100_BOUNDS = np.array([1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, np.inf])
_TICK100_SIZES = np.array([0.1, 0.5, 1, 5, 10, 50, 100, 500, 1e3, 5e3, 1e4])

# Daily limit width by base price: (base price strictly below, width).
_LIMIT_BOUNDS = np.array([100, 200, 500, 700, 1e3, 1.5e3, 2e3, 3e3, 5e3, 7e3, 1e4, 1.5e4, 2e4, 3e4, 5e4, 7e4,
                          1e5, 1.5e5, 2e5, 3e5, 5e5, 7e5, 1e6, 1.5e6, 2e6, 3e6, 5e6, 7e6, 1e7, 1.5e7, 2e7,
                          3e7, 5e7, np.inf])
_LIMIT_WIDTHS = np.array([30, 50, 80, 100, 150, 300, 400, 500, 700, 1e3, 1.5e3, 3e3, 4e3, 5e3, 7e3, 1e4, 1.5e4,
                          3e4, 4e4, 5e4, 7e4, 1e5, 1.5e5, 3e5, 4e5, 5e5, 7e5, 1e6, 1.5e6, 3e6, 4e6, 5e6, 7e6,
                          1e7], dtype=np.float64)


def tick_size(price: np.ndarray, fine: np.ndarray | bool = False) -> np.ndarray:
    """Tick size at `price`; `fine` selects the TOPIX100 table (0.1-yen ticks below 1,000 yen)."""
    p = np.asarray(price, dtype=np.float64)
    out = _TICK_SIZES[np.minimum(np.searchsorted(_TICK_BOUNDS, p, side="left"), _TICK_SIZES.size - 1)]
    fine = np.broadcast_to(np.asarray(fine, dtype=bool), p.shape)
    if fine.any():  # the TOPIX100 table, looked up only where it applies
        sub = p[fine]
        out[fine] = _TICK100_SIZES[np.minimum(np.searchsorted(_TICK100_BOUNDS, sub, side="left"),
                                              _TICK100_SIZES.size - 1)]
    return out


def round_to_tick(price: np.ndarray, fine: np.ndarray | bool = False) -> np.ndarray:
    """Nearest valid price (never below the smallest tick); exact decimals so JSON shows 123.4, not 123.40000001."""
    p = np.asarray(price, dtype=np.float64)
    tick = tick_size(p, fine)
    out = np.round(np.round(p / tick) * tick, 1)
    return np.maximum(out, tick)


def limit_width(base: np.ndarray) -> np.ndarray:
    """The daily price-limit width for a base price (the previous close, split-adjusted)."""
    b = np.asarray(base, dtype=np.float64)
    return _LIMIT_WIDTHS[np.minimum(np.searchsorted(_LIMIT_BOUNDS, b, side="right"), _LIMIT_WIDTHS.size - 1)]


def limit_prices(base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(limit-down, limit-up) prices for a base price; limit-down never below 1 yen."""
    b = np.asarray(base, dtype=np.float64)
    w = limit_width(b)
    return np.maximum(np.round(b - w, 1), 1.0), np.round(b + w, 1)
