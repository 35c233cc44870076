"""Walk-forward splits by calendar year: expanding training window, validation, test; purge and embargo.

Periods are ranges of the dataset's date axis (business days). A row at day t has a label whose last close
is day t + reach (reach = 1 + k for the next-day family close t+1 -> t+1+k, k for close t -> t+k, with k the
longest horizon trained). Before each period (validation, then test) the previous one ends so that

    its last label closes >= `embargo` business days before the period starts:  last + reach + embargo < first

which purges every row whose target window reaches the period (last + reach < first) and keeps an embargo
on top. The plan is written to splits.json and checked (`check_splits`) before any training.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from gpuetl.train.config import SplitSettings

_NEXT = re.compile(r"^target_next_")


class SplitError(ValueError):
    """Splits that overlap, leak a label into a later period, or break the embargo."""


@dataclasses.dataclass(frozen=True)
class Period:
    first: int  # date index, inclusive
    last: int  # date index, inclusive

    @property
    def days(self) -> range:
        return range(self.first, self.last + 1)

    def __len__(self) -> int:
        return max(self.last - self.first + 1, 0)


@dataclasses.dataclass(frozen=True)
class Fold:
    index: int
    test_year: int
    train: Period
    valid: Period
    test: Period


@dataclasses.dataclass(frozen=True)
class Splits:
    """The walk-forward folds of a dataset (one per test year) and the years left out, as saved in splits.json."""

    reach: int  # business days from a row's date to its label's last close
    embargo: int
    folds: tuple[Fold, ...]
    skipped: tuple[str, ...]  # test years left out, with the reason

    def to_json(self, dates: np.ndarray) -> dict[str, Any]:
        def period(p: Period) -> dict[str, Any]:
            return {"first": p.first, "last": p.last, "days": len(p), "from": str(dates[p.first]),
                    "to": str(dates[p.last])}

        return {"reach": self.reach, "embargo": self.embargo, "skipped": list(self.skipped),
                "folds": [{"fold": f.index, "test_year": f.test_year, "train": period(f.train),
                           "valid": period(f.valid), "test": period(f.test)} for f in self.folds]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Splits:
        def period(d: dict[str, Any]) -> Period:
            return Period(int(d["first"]), int(d["last"]))

        folds = tuple(Fold(int(f["fold"]), int(f["test_year"]), period(f["train"]), period(f["valid"]),
                           period(f["test"])) for f in data["folds"])
        return cls(int(data["reach"]), int(data["embargo"]), folds, tuple(data["skipped"]))

    def save(self, path: Path, dates: np.ndarray) -> None:
        path.write_text(json.dumps(self.to_json(dates), indent=2))


def label_reach(label: str, horizons: tuple[int, ...]) -> int:
    """Business days from a row to the last close its longest-horizon label uses."""
    return max(horizons) + (1 if _NEXT.match(label) else 0)


def make_splits(dates: np.ndarray, cfg: SplitSettings, reach: int) -> Splits:
    """Folds for the last `cfg.test_years` calendar years of `dates` (datetime64[D], ascending)."""
    years = dates.astype("datetime64[Y]").astype(int) + 1970
    gap = reach + cfg.embargo_days
    folds: list[Fold] = []
    skipped: list[str] = []
    for year in sorted(set(years.tolist()))[-cfg.test_years:]:
        idx = np.flatnonzero(years == year)
        test = Period(int(idx[0]), int(idx[-1]))
        valid = Period(test.first - gap - cfg.valid_days, test.first - gap - 1)
        train = Period(0, valid.first - gap - 1)
        if len(train) < cfg.min_train_days or valid.first < 0:
            skipped.append(f"{year}: {max(len(train), 0)} training days before it (min_train_days "
                           f"{cfg.min_train_days}, after {cfg.valid_days} validation days and two gaps of {gap})")
            continue
        folds.append(Fold(len(folds), year, train, valid, test))
    return Splits(reach, cfg.embargo_days, tuple(folds), tuple(skipped))


def check_splits(plan: Splits, dates: np.ndarray, min_embargo: int) -> None:
    """Raise SplitError unless every fold is ordered, disjoint, purged and embargoed, tests are single years,
    and training windows expand."""
    if plan.embargo < min_embargo:
        raise SplitError(f"embargo {plan.embargo} is shorter than the longest horizon {min_embargo}")
    years = dates.astype("datetime64[Y]").astype(int) + 1970
    for f in plan.folds:
        where = f"fold {f.index} (test {f.test_year})"
        parts = (("train", f.train), ("valid", f.valid), ("test", f.test))
        for name, p in parts:
            if not 0 <= p.first <= p.last < len(dates):
                raise SplitError(f"{where}: {name} {p} is empty or outside the {len(dates)} dates")
        for (a_name, a), (b_name, b) in itertools.pairwise(parts):
            if a.last + plan.reach >= b.first:
                raise SplitError(f"{where}: {a_name} rows' labels reach into {b_name} (last {a.last} + reach "
                                 f"{plan.reach} >= {b.first})")
            if b.first - (a.last + plan.reach) - 1 < plan.embargo:
                raise SplitError(f"{where}: only {b.first - a.last - plan.reach - 1} business days between "
                                 f"{a_name}'s last label and {b_name} (embargo {plan.embargo})")
        if set(years[f.test.first: f.test.last + 1].tolist()) != {f.test_year}:
            raise SplitError(f"{where}: the test period is not the calendar year {f.test_year}")
    for before, after in itertools.pairwise(plan.folds):
        if not (before.train.first == after.train.first and before.train.last < after.train.last
                and before.test.last < after.test.first):
            raise SplitError(f"folds {before.index} and {after.index}: training windows must expand and tests "
                             "follow in order")
