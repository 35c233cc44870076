"""What every enrichment group works from: the panel, its frame, the trading calendar and the lake reader.

Raw datasets are read through the backend (cuDF straight to the device on the GPU) with the dataset
build's own reader, so enrichment sees exactly the rows the build would. String keys (codes, sectors,
sections) become integer keys by one factorisation over both sides, so they are equal across the panel
and a raw dataset exactly when the strings are.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gpuetl.backend import Backend
from gpuetl.dates import BusinessCalendar, day_numbers, to_days
from gpuetl.enrich.asof import asof_join
from gpuetl.features.panel import Panel
from gpuetl.lake.manifest import Manifest
from gpuetl.lake.reader import read_raw


class EnrichError(RuntimeError):
    """An enrichment group cannot run on this lake; the message says what to fetch."""


def has_data(manifest: Manifest, dataset: str) -> bool:
    return bool(manifest.files(dataset))


def joint_ids(backend: Backend, head: Any, tail: Any) -> tuple[Any, Any]:
    """Integer ids of two string Series from one factorisation: equal ids exactly for equal strings.
    Missing values get -1 on the head side and -2 on the tail side, so they never match."""
    xp = backend.xp
    both = backend.xdf.concat([head.reset_index(drop=True), tail.reset_index(drop=True)], ignore_index=True)
    ids, _ = both.factorize()
    ids = xp.asarray(ids).astype(xp.int64)
    n = len(head)
    h, t = ids[:n], ids[n:]
    return h, xp.where(t < 0, -2, t)


@dataclasses.dataclass
class Context:
    backend: Backend
    manifest: Manifest  # the lake, loaded once by the build
    panel: Panel
    frame: Any  # the build's (Code, Date)-sorted frame, aligned with the panel rows
    calendar: BusinessCalendar
    _code_ids: Any = None  # each panel row's index into _code_uniques
    _code_uniques: Any = None

    @classmethod
    def create(cls, backend: Backend, manifest: Manifest, panel: Panel, frame: Any) -> Context:
        """The context of one build; every group needs the lake's trading calendar (the build has put it on
        the panel; otherwise it is read here and put there)."""
        if panel.calendar is None:
            cal = read_raw(backend, manifest, "calendar", ["Date", "HolDiv"], EnrichError)
            panel.calendar = BusinessCalendar.from_frame(backend, cal)
        ctx = cls(backend, manifest, panel, frame, panel.calendar)
        ids, uniques = frame["Code"].factorize()
        ctx._code_ids = backend.xp.asarray(ids).astype(backend.xp.int64)
        ctx._code_uniques = uniques.to_series().reset_index(drop=True)
        return ctx

    def on_cpu(self, cpu: Backend) -> Context:
        """This context on the CPU backend `cpu` (host copies of the panel and the frame), for an op that runs
        only there (gpuetl.ops.run)."""
        frame = self.frame.to_pandas() if hasattr(self.frame, "to_pandas") else self.frame  # host-ok: CPU fallback
        return Context.create(cpu, self.manifest, self.panel.on_cpu(cpu), frame)

    @property
    def xp(self) -> Any:
        return self.backend.xp

    def read(self, dataset: str, columns: list[str], own_codes: bool = False) -> Any:
        """`columns` of raw `dataset`; with `own_codes`, only the rows of the panel's codes (pushed down to the
        reader). For the groups whose values for a code come from that code's rows alone: a code part of the
        build then reads its own codes' rows, not the whole market's for every part (the master alone is
        millions of rows at 4,000 codes x 10 years)."""
        filters = None
        if own_codes:
            codes = self.backend.to_host(self._code_uniques)  # host-ok: the part's code names, a read filter
            filters = [("Code", "in", [str(c) for c in codes])]
        return read_raw(self.backend, self.manifest, dataset, columns, EnrichError, filters)

    def days(self, series: Any, missing: int) -> Any:
        """A date column -> int64 days, `missing` where null."""
        return to_days(self.xp, day_numbers(self.backend, series), missing)

    def code_keys(self, codes: Any) -> tuple[Any, Any]:
        """(key of each panel row, key of each row of `codes`), from one factorisation of the codes."""
        head, tail = joint_ids(self.backend, self._code_uniques, codes)
        return head[self._code_ids], tail

    def string_keys(self, panel_values: Any, values: Any) -> tuple[Any, Any]:
        """Keys of a per-row string column of the panel's frame and of a raw dataset's column."""
        return joint_ids(self.backend, panel_values, values)

    def cum_factor_at(self, panel_key: Any, key: Any, day: Any) -> Any:
        """The panel's cumulative split factor of each (code, day): at the code's last row on or before day;
        1.0 (no split seen yet) before its first row; NaN for a code the panel does not hold."""
        xp = self.xp
        panel = self.panel
        idx = asof_join(self.backend, key, day, panel_key, panel.dates)
        known = xp.isin(key, panel_key)
        cum = panel["cum_factor"]
        at = cum[xp.clip(idx, 0, max(panel.n - 1, 0))] if panel.n else xp.full(len(idx), xp.nan)
        return xp.where(idx >= 0, at, xp.where(known, 1.0, xp.nan))
