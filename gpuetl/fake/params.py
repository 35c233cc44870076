"""Query parameters as the API reads them: spelling per version, value formats, valid combinations.

The catalogue (`DatasetSpec.params`, `DatasetSpec.patterns`, `DatasetSpec.v2_to_v1_params`) says which parameters an
endpoint takes and in which combinations; this module turns a raw query string into a normalised
`Query` (V2 names, ISO dates, upper-case codes) or the API's 400 answer (API-NOTES §2.0, §2.1).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Literal

from gpuetl.fake import errors
from gpuetl.fake.errors import ApiError
from gpuetl.jquants.spec import DatasetSpec

Version = Literal["v1", "v2"]

DATE_PARAMS = frozenset({"date", "from", "to", "disc_date", "disc_date_from", "disc_date_to", "calc_date"})
RANGES = (("from", "to"), ("disc_date_from", "disc_date_to"))
# Spellings the official CLI sends for V2 (API-NOTES §1.4 conflict): accepted as aliases.
V2_ALIASES = {"holidayDivision": "hol_div", "contractFlag": "contract_flag"}
_CHOICES = {"hol_div": ("0", "1", "2", "3"), "contract_flag": ("0", "1")}
_CODE = re.compile(r"^[0-9A-Za-z]{4,5}$")
_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")


@dataclasses.dataclass(frozen=True)
class Query:
    """One validated request: parameters under their V2 names, values normalised."""

    dataset: DatasetSpec
    version: Version
    params: Mapping[str, str]
    pagination_key: str | None = None

    def date(self, name: str) -> dt.date | None:
        v = self.params.get(name)
        return dt.date.fromisoformat(v) if v else None

    def fingerprint(self) -> str:
        """The query with its pagination key removed, in one canonical text (binds pagination keys)."""
        items = "&".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.version}|{self.dataset.path}|{items}"


def spelled(ds: DatasetSpec, version: Version, name: str) -> str:
    """A V2 parameter name as `version` spells it."""
    return ds.v2_to_v1_params().get(name, name) if version == "v1" else name


def _quoted(names: Iterable[str]) -> str:
    return ",".join(f"'{n}'" for n in names)


def parse(ds: DatasetSpec, version: Version, raw: Mapping[str, str]) -> Query:
    """Raw query string -> Query, or ApiError(400) with the API's message."""
    to_v2 = {spelled(ds, version, p): p for p in ds.params}
    if version == "v2":
        to_v2.update({alias: p for alias, p in V2_ALIASES.items() if p in ds.params})
    params: dict[str, str] = {}
    for name, value in raw.items():
        if value == "":  # the official V1 client sends `code=&date=...`: an empty value is no value
            continue
        if name not in to_v2:
            raise ApiError(400, errors.UNKNOWN_PARAM.format(name=name))
        params[to_v2[name]] = value
    key = params.pop("pagination_key", None)
    given = frozenset(params)
    _check_combination(ds, version, given)
    norm = {name: _normalise(ds, version, name, value) for name, value in params.items()}
    for lo, hi in RANGES:
        if lo in norm and hi in norm and norm[lo] > norm[hi]:
            raise ApiError(400, errors.FROM_AFTER_TO)
    return Query(ds, version, norm, key)


def _check_combination(ds: DatasetSpec, version: Version, given: frozenset[str]) -> None:
    if given in ds.patterns:
        return
    completed = set(given)
    for lo, hi in RANGES:  # a single-sided range (`from` without `to`) reads as open-ended
        if (lo in given) != (hi in given):
            completed |= {lo, hi}
    if frozenset(completed) in ds.patterns:
        return
    required = [p for p in ds.params if frozenset({p}) in ds.patterns]
    if required and not given & set(required):
        names = _quoted(spelled(ds, version, p) for p in required)
        raise ApiError(400, errors.REQUIRES.format(names=names))
    names = _quoted(spelled(ds, version, p) for p in ds.params if p in given)
    raise ApiError(400, errors.COMBINATION.format(names=names))


def _normalise(ds: DatasetSpec, version: Version, name: str, value: str) -> str:
    shown = spelled(ds, version, name)
    if name in DATE_PARAMS:
        return parse_date(value, shown).isoformat()
    if name == "code":
        if not _CODE.match(value):
            raise ApiError(400, errors.CODE_FORMAT)
        return value.upper()
    if name == "s33":  # "0050" or "50"
        if not value.isdigit() or len(value) > 4:
            raise ApiError(400, errors.BAD_VALUE.format(name=shown, values="a 33-sector code such as '0050'"))
        return value.zfill(4)
    if name in _CHOICES and value not in _CHOICES[name]:
        raise ApiError(400, errors.BAD_VALUE.format(name=shown, values=", ".join(_CHOICES[name])))
    return value


def parse_date(value: str, name: str = "date") -> dt.date:
    """YYYYMMDD or YYYY-MM-DD (every date parameter of the API accepts both)."""
    m = _DATE.match(value)
    try:
        if m is None:
            raise ValueError(value)
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ApiError(400, errors.BAD_DATE.format(name=name)) from None
