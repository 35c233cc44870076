"""Plan history windows: which dates a subscription may ask for (API-NOTES §3.2).

Every plan reaches back `spec.HISTORY_YEARS` years from "today"; the Free plan also lags
`spec.FREE_PLAN_DELAY_WEEKS` weeks. An explicit date outside the window is a 400 that names the window;
queries without one (code only, or no parameters) are clipped to it silently.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from gpuetl.fake import errors
from gpuetl.fake.errors import ApiError
from gpuetl.fake.params import DATE_PARAMS, Query
from gpuetl.jquants import spec


def _years_before(d: dt.date, years: int) -> dt.date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February
        return d.replace(year=d.year - years, day=28)


@dataclasses.dataclass(frozen=True)
class Window:
    start: dt.date
    end: dt.date | None  # None: open-ended (only the Free plan has a fixed end)

    @classmethod
    def for_plan(cls, plan: spec.Plan, today: dt.date) -> Window:
        if plan == "free":
            end = today - dt.timedelta(weeks=spec.FREE_PLAN_DELAY_WEEKS)
            return cls(_years_before(end, spec.HISTORY_YEARS[plan]), end)
        return cls(_years_before(today, spec.HISTORY_YEARS[plan]), None)

    def __contains__(self, d: dt.date) -> bool:
        return d >= self.start and (self.end is None or d <= self.end)

    def message(self) -> str:
        end = self.end.isoformat() if self.end else ""
        return errors.WINDOW.format(start=self.start.isoformat(), end=end)

    def check(self, q: Query) -> None:
        """400 when any date the query names lies outside the window."""
        for name in DATE_PARAMS & set(q.params):
            d = q.date(name)
            if d is not None and d not in self:
                raise ApiError(400, self.message())
