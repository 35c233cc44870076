"""What the dataset generators read of a synthetic market: `MarketCore`, the part `SyntheticMarket` builds eagerly
(calendar, universe, disclosures, price panel), as a protocol, so that the generators (bars, statements, flows, ...)
never import the market module that imports them."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np
import pandas as pd

from gpuetl.synth.calendar import Timeline
from gpuetl.synth.config import MarketConfig
from gpuetl.synth.prices import BarPanel
from gpuetl.synth.schedule import Schedule
from gpuetl.synth.universe import Universe


@dataclasses.dataclass(frozen=True)
class Fundamentals:
    """fins_summary column arrays, one entry per schedule row (NaN where a document leaves a field blank)."""

    columns: dict[str, np.ndarray]


class MarketCore(Protocol):
    """A synthetic market as its dataset generators see it."""

    config: MarketConfig
    timeline: Timeline
    universe: Universe
    schedule: Schedule
    panel: BarPanel
    truth: dict[str, Any]

    @property
    def days(self) -> np.ndarray:
        """The equity business days in [start, end] (datetime64[D]): the panel's rows."""

    @property
    def fundamentals(self) -> Fundamentals:
        """Per-disclosure financial values, shared by fins_summary, fins_details and dividend."""

    def table(self, name: str) -> pd.DataFrame:
        """Dataset `name`'s canonical frame (built on first use)."""
