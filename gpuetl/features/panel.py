"""A (Code, Date) panel on the backend seam, with the segment-aware operations features are built from.

Rows are sorted by (Code, Date); each code is one contiguous segment. Columns are arrays of the
backend (NumPy or CuPy), float64 with NaN for missing. Per-code operations never cross a segment
boundary: shifts use the group ids, rolling windows go through the frame library's groupby-rolling
(pandas on the CPU, cuDF on the GPU), and EWMs through the segmented EWM kernel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from gpuetl.arrays import Array
from gpuetl.backend import Backend, RollingStat
from gpuetl.dates import BusinessCalendar
from gpuetl.kernels.ewm import center_of_mass
from gpuetl.kernels.segments import segment_ids, segment_offsets


class Panel:
    """Columns of a sorted (Code, Date) panel plus the per-code segment structure.

    Shapes:
        codes, dates, every column: (n,) rows sorted by (code, date); offsets: (codes + 1,);
        unique_dates: (dates,); a per-date series (`date_columns`, `broadcast_dates` input): (dates,)
    """

    def __init__(self, backend: Backend, codes: Array, dates: Array, columns: Mapping[str, Any],
                 date_index: Array = None) -> None:
        xp = backend.xp
        self.backend = backend
        self.xp = xp
        self.codes = codes  # sorted code ids (integers), one per row
        self.dates = xp.asarray(dates, dtype=xp.int64)  # days since 1970-01-01 (CuPy has no datetime64)
        self.n = len(codes)
        self.offsets = segment_offsets(xp, codes)
        self.group = segment_ids(xp, self.offsets)
        self.position = xp.arange(self.n) - self.offsets[:-1][self.group]  # row number within its code
        # the cross-section: sorted distinct dates and each row's index into them; `date_index` (sorted, holding
        # every row's date) gives a panel of some codes the dates of all of them, so per-date series (TOPIX,
        # calendars) are the same whichever codes a panel holds
        if date_index is None:
            self.unique_dates, self.date_id = _distinct_days(xp, self.dates)
        else:
            self.unique_dates = xp.asarray(date_index, dtype=xp.int64)
            self.date_id = xp.searchsorted(self.unique_dates, self.dates)
        self.columns: dict[str, Any] = {k: _column(xp, v) for k, v in columns.items()}
        self.final: set[str] = set()  # stored as float32: no later op reads them (see `finalize`)
        self.date_columns: dict[str, Any] = {}  # per-date series (e.g. TOPIX), aligned with unique_dates
        self.calendar: BusinessCalendar | None = None  # the lake's trading calendar, when it has one

    def on_cpu(self, cpu: Backend) -> Panel:
        """A host copy of this panel on the CPU backend `cpu`, for an op that runs only there (gpuetl.ops.run)."""
        host = self.backend.to_host  # host-ok: an op's CPU fallback, counted and named by the backend
        out = Panel(cpu, host(self.codes), host(self.dates), {k: host(v) for k, v in self.columns.items()},
                    host(self.unique_dates))
        out.date_columns = {k: host(v) for k, v in self.date_columns.items()}
        out.final = set(self.final)
        if (cal := self.calendar) is not None:
            out.calendar = dataclasses.replace(cal, xp=cpu.xp, days=host(cal.days), half_day=host(cal.half_day),
                                               first=host(cal.first), last=host(cal.last))
        return out

    def add_date_series(self, name: str, dates: Array, values: Array) -> None:
        """Attach a date-indexed series: kept per date, and spread to the rows as column `name`."""
        self.date_columns[name] = self.align_dates(dates, values)
        self.columns[name] = self.broadcast_dates(self.date_columns[name])

    def subset(self, rows: Array) -> Panel:
        """A new panel of the selected rows (a boolean mask or sorted indices), keeping their order."""
        idx = self._indices(rows)
        return self._with_rows(idx, {k: v[idx] for k, v in self.columns.items()})

    def extract(self, rows: Array, columns: list[str]) -> Panel:
        """The selected rows of `columns` as a new panel, moved out of this one.

        Each column leaves this panel as soon as its rows are copied, so a build holds one extra column at
        a time rather than two panels (at 4,000 codes x 10 years the finished features are ~8 GB).
        """
        idx = self._indices(rows)
        return self._with_rows(idx, {name: self.columns.pop(name)[idx] for name in columns})

    def _indices(self, rows: Array) -> Any:
        return self.xp.flatnonzero(rows) if rows.dtype == bool else rows

    def _with_rows(self, idx: Any, columns: dict[str, Any]) -> Panel:
        sub = Panel(self.backend, self.codes[idx], self.dates[idx], columns)
        for name, values in self.date_columns.items():
            sub.date_columns[name] = sub.align_dates(self.unique_dates, values)
        sub.calendar = self.calendar
        return sub

    def __getitem__(self, name: str) -> Any:
        if name in self.final:
            raise KeyError(f"panel column {name!r} was stored as float32 after its last declared reader: an op that "
                           f"reads it must name it in its inputs or its params' `columns`")
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(f"panel has no column {name!r}; columns: {', '.join(self.columns)}") from None

    def finalize(self, names: Iterable[str]) -> None:
        """Store finished columns as float32, as the dataset does, once no later op will read them.

        A finished feature then takes half the memory (the panel of 210 features is most of a build's peak);
        reading it through `panel[name]` afterwards raises, so an undeclared dependency cannot see float32.
        """
        for name in names:
            self.columns[name] = self.columns[name].astype(self.xp.float32)
            self.final.add(name)

    def nan(self) -> Array:
        return self.xp.full(self.n, self.xp.nan)

    # --------------------------------------------------------------------- per-code operations

    def shift(self, x: Array, k: int = 1) -> Array:
        """x[t - k] within the same code (k > 0 looks back, k < 0 forward), NaN across code boundaries."""
        return self.backend.segmented_shift(x, k, self.offsets, self.group)

    def pct_change(self, x: Array, k: int = 1) -> Array:
        return x / self.shift(x, k) - 1.0

    def rolling(self, x: Array, window: int, stat: RollingStat, min_periods: int | None = None) -> Array:
        """Trailing `window`-row statistic per code; pandas' groupby().rolling() semantics on both backends."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        return self.backend.rolling(x, window, stat, min_periods or window, groups=self.group, offsets=self.offsets)

    def ewm(self, x: Array, *, com: float | None = None, span: float | None = None, halflife: float | None = None,
            alpha: float | None = None, adjust: bool = True, ignore_na: bool = False, min_periods: int = 0,
            stat: Literal["mean", "var", "std"] = "mean") -> Array:
        return self.backend.kernels.segmented_ewm(
            x, self.offsets, com=center_of_mass(com, span, halflife, alpha), adjust=adjust, ignore_na=ignore_na,
            min_periods=min_periods, stat=stat)

    # --------------------------------------------------------------------- per-date operations

    def by_date(self, x: Array) -> Any:
        """The frame library's groupby over this panel's dates (for ranks and transforms per day)."""
        b = self.backend
        return b.series(x).groupby(b.series(self.date_id), sort=True)

    def broadcast_dates(self, values_by_date: Array) -> Array:
        """A per-date array (indexed like `unique_dates`) spread to the panel's rows."""
        return values_by_date[self.date_id]

    def align_dates(self, dates: Array, values: Array) -> Array:
        """Values of a date-indexed series (e.g. TOPIX) at `unique_dates`; NaN where the series has no row."""
        xp = self.xp
        out = xp.full(len(self.unique_dates), xp.nan)
        dates = xp.asarray(dates, dtype=xp.int64)
        pos = xp.searchsorted(self.unique_dates, dates)
        ok = pos < len(self.unique_dates)
        ok[ok] = self.unique_dates[pos[ok]] == dates[ok]
        out[pos[ok]] = xp.asarray(values, dtype=xp.float64)[ok]
        return out

    def cumprod(self, x: Array) -> Array:
        """Running product within each code (via logs would lose bits; a segmented scan keeps them)."""
        return self._segmented_scan(x, "prod")

    def cummax(self, x: Array) -> Array:
        return self._segmented_scan(x, "max")

    def _segmented_scan(self, x: Array, op: Literal["prod", "max"]) -> Array:
        return self.backend.segmented_scan(x, op, self.offsets, self.group)


def _distinct_days(xp: Any, days: Array) -> tuple[Any, Any]:
    """(sorted distinct days, each row's index into them): `unique(return_inverse=True)` without its sort of
    every row, by marking the days present in the (short) span from the first day to the last."""
    if len(days) == 0:
        return xp.unique(days, return_inverse=True)
    first = int(days.min())  # host-ok: two scalars size the span
    span = int(days.max()) - first + 1  # host-ok: as above
    if span > 4 * len(days) + 100_000:  # sparse days (a test's far-apart dates): the sort is cheaper
        return xp.unique(days, return_inverse=True)
    present = xp.zeros(span, dtype=bool)
    present[days - first] = True
    slot = xp.cumsum(present) - 1
    return xp.flatnonzero(present).astype(xp.int64) + first, slot[days - first]


def _column(xp: Any, values: Array) -> Any:
    """float64 for computing; a float32 column (finished, see `Panel.finalize`) stays float32."""
    values = xp.asarray(values)
    return values if values.dtype == xp.float32 else values.astype(xp.float64, copy=False)
