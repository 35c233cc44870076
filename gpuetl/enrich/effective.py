"""When a published value becomes usable: the effective-time rules of the leakage contract.

A value at (Code, t) may use only what was public by t's close. Each raw dataset is mapped to the first
business day whose close comes after its publication ("effective day"); as-of joins then attach to a
panel row only rows effective on or before its date. Days are int64 days since 1970-01-01 (CuPy has no
datetime64); business days come from the lake's trading calendar (HolDiv "1" or "2": TSE open).

The rules, as implemented:
- **Statements, dividend notices** (a date and a time of disclosure): effective on the disclosure day
  if that day is a business day and the time is strictly before that day's close, else on the next
  business day. The close is 15:00 for days before 2024-11-05 and 15:30 from 2024-11-05 (the TSE
  extended the afternoon session that day; 2024-11-02..04 were not business days), and 11:00 on TSE
  half-day sessions (HolDiv "2", the old first/last sessions of a year). A disclosure *at* the close
  (15:00:00, or 15:30:00 from 2024-11-05) counts as after it: the closing auction is matched at that
  instant, so the news cannot be in that day's close. A missing or unreadable time counts as after
  the close.
- **Weekly investor types** (PubDate, published ~18:00) and **margin alerts** (PubDate, time not given):
  effective from the first business day after the publication date (a publication dated on a
  holiday also becomes effective on the next business day), until the next publication replaces it.
- **Weekly margin interest** (only the application date `Date`, usually a Friday, is given): published
  on the 2nd business day after it at ~16:30, after the close, so effective from the 3rd business
  day after `Date`.
- **Sector short-selling ratios** (per trading `Date`, published after that day's close): effective
  from the next business day.
- **Earnings-calendar snapshots** (stamped with the day they were fetched): effective from the next
  business day after that stamp (the page updates ~19:00; a fetch may have seen that day's update).
- **Master** rows (the next business day's attributes, published the evening before): effective on
  their own `Date`.
Where the calendar has no business day after a date, the row never becomes effective (`NEVER`).
"""

from __future__ import annotations

from typing import Any

from gpuetl.backend import Backend

_LATE = 99 * 3600  # an unreadable time: after any close


def time_seconds(backend: Backend, series: Any) -> Any:
    """"HH:MM" or "HH:MM:SS" strings -> float64 seconds after midnight; missing or malformed -> after any close."""
    xp = backend.xp
    text = series.fillna("").astype("str")
    text = text.where(text.str.len() != 5, text + ":00")  # "HH:MM" -> "HH:MM:00"
    well_formed = (text.str.len() == 8) & (text.str.slice(2, 3) == ":") & (text.str.slice(5, 6) == ":")
    fields = []
    for a in (0, 3, 6):
        part = text.str.slice(a, a + 2)
        digits = part.str.isdigit()
        well_formed &= digits
        fields.append(backend.to_array(part.where(digits, "0").astype("float64")))
    ok = backend.to_array(well_formed.astype("float64")) == 1.0
    h, m, s = fields
    return xp.where(ok, h * 3600.0 + m * 60.0 + s, float(_LATE))
