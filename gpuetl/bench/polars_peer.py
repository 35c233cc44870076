"""The Polars peer: the benchmark's stages as an idiomatic Polars user writes them (lazy frames, `over`,
`rolling_*`, `ewm_mean`, `join_asof`), multi-threaded by Polars itself.

Same numbers as gpuetl (checked at every size unless --no-check): TA-Lib's EMA is seeded with the first full
window's mean (a `when` chain before `ewm_mean`), and an EWM carries its last value over missing rows, as
pandas' does. The graphs build their returns matrix in Polars and run the shared per-day NumPy loop
(gpuetl.bench.daily_graph): Polars has no matrix algebra. Analytics are not a Polars thing (networkx, as the
pandas peer).

The same code is the `polars-gpu` peer with `engine="gpu"`: every `collect` runs on Polars' GPU engine
(cudf-polars) as a Polars user switches it on, falling back to the CPU engine for a query it cannot run (the
graphs' eager `pivot` and NumPy loop stay on the CPU). A fallback is not hidden: Polars says why when verbose,
so the GPU collects run verbose and `fallbacks` keeps the reasons for the bench to note beside the stage.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
import polars as pl

from gpuetl.bench import daily_graph
from gpuetl.bench.inputs import Inputs
from gpuetl.bench.spec import BAR_COLUMNS, CLIP, FEATURES, GRAPH_OVERRIDES
from gpuetl.graphs.config import load_graph_config

ADJUSTED = ("open", "high", "low", "close", "volume")
FALLBACK = "Query execution with GPU not possible"  # how cudf-polars's warning of a CPU fallback begins


def _code(e: pl.Expr) -> pl.Expr:
    return e.over("Code")


def _ema(n: int) -> pl.Expr:
    """TA-Lib's EMA of the close per code: starts from the first full window's mean, then alpha 2/(n+1)."""
    c = pl.col("close")
    seed = _code(c.rolling_mean(n))
    seen = _code(seed.is_not_null().cum_sum())
    fed = pl.when(seed.is_not_null() & (seen == 1)).then(seed).when(seen > 0).then(c).otherwise(None)
    return _code(fed.ewm_mean(alpha=2.0 / (n + 1), adjust=False).forward_fill())


class PolarsStages:
    def __init__(self, inputs: Inputs, engine: Literal["auto", "gpu"] = "auto") -> None:
        self.files = inputs.bar_files
        self.statements = pl.from_pandas(inputs.statements).with_columns(pl.col("Eff").cast(pl.Date))
        self.graph_config = load_graph_config(overrides=GRAPH_OVERRIDES)
        self.engine: Any = pl.GPUEngine(raise_on_fail=False) if engine == "gpu" else engine
        self.fallbacks: list[str] = []  # why a GPU collect ran on the CPU engine (one line each)

    def _collect(self, query: pl.LazyFrame) -> pl.DataFrame:
        if not isinstance(self.engine, pl.GPUEngine):
            return query.collect(engine=self.engine)
        with warnings.catch_warnings(record=True) as caught, pl.Config(verbose=True):
            warnings.simplefilter("always")
            out = query.collect(engine=self.engine)
        for w in caught:
            text = str(w.message)
            if text.startswith(FALLBACK):  # the first line is the same for every reason: keep the reasons
                self.fallbacks.append(" ".join(line.strip("- ") for line in text.splitlines()[1:]
                                               if line.strip() and not line.startswith("The errors")) or text)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return out

    def read(self, state: dict[str, Any]) -> pl.DataFrame:
        return self._collect(pl.scan_parquet(self.files).select(BAR_COLUMNS))

    def adjust(self, state: dict[str, Any]) -> pl.DataFrame:
        cum = pl.col("cum")
        query = (state["read"].lazy().sort("Code", "Date")
                 .with_columns(cum=_code(pl.col("AdjFactor").fill_null(1.0).cum_prod()))
                 .with_columns(open=pl.col("O") / cum, high=pl.col("H") / cum, low=pl.col("L") / cum,
                               close=pl.col("C") / cum, volume=pl.col("Vo") * cum))
        return self._collect(query)

    def features(self, state: dict[str, Any]) -> pl.DataFrame:
        c, vol = pl.col("close"), pl.col("volume")
        ma = {f"sma{n}": _code(c.rolling_mean(n)) for n in (5, 20, 60)} | {f"ema{n}": _ema(n) for n in (12, 26)}
        base = (state["adjust"].lazy()
                .with_columns(**ma, vol_mean=_code(vol.rolling_mean(20)), logret=(c / _code(c.shift(1))).log(),
                              peak=_code(c.cum_max()),
                              **{f"hi{n}": _code(pl.col("high").rolling_max(n)) for n in (20, 60)},
                              **{f"lo{n}": _code(pl.col("low").rolling_min(n)) for n in (20, 60)}))
        out = {f"ret_{k}d": c / _code(c.shift(k)) - 1.0 for k in (1, 5, 20, 60)}
        for name in ma:
            out[f"{name}_gap"] = c / pl.col(name) - 1.0
            out[f"{name}_slope"] = pl.col(name) / _code(pl.col(name).shift(5)) - 1.0
        out |= {f"rvol_{n}d": _code(pl.col("logret").rolling_std(n)) * math.sqrt(252) for n in (20, 60)}
        mean = pl.col("vol_mean")
        out["volume_ratio_20d"] = (pl.when(c.is_null() | mean.is_null()).then(None)
                                   .when(mean > 0).then(vol / mean).otherwise(None))
        out |= {f"dist_high_{n}d": c / pl.col(f"hi{n}") - 1.0 for n in (20, 60)}
        out |= {f"dist_low_{n}d": c / pl.col(f"lo{n}") - 1.0 for n in (20, 60)}
        out["drawdown"] = c / pl.col("peak") - 1.0
        query = base.select("Code", "Date", *(out[f].alias(f) for f in FEATURES))
        return self._collect(query.with_columns(pl.col(FEATURES).fill_nan(None)))

    def asof(self, state: dict[str, Any]) -> pl.DataFrame:
        c = pl.col("C")
        query = (state["adjust"].lazy().select("Code", "Date", "C")
                 .join_asof(self.statements.lazy(), left_on="Date", right_on="Eff", by="Code", strategy="backward",
                            check_sortedness=False)
                 .select("Code", "Date", st_eps_yield=pl.col("EPS") / c, st_bps_yield=pl.col("BPS") / c,
                         st_fwd_eps_yield=pl.col("FEPS") / c,
                         st_days_since=(pl.col("Date") - pl.col("Eff")).dt.total_days().cast(pl.Float64)))
        return self._collect(query)

    def normalize(self, state: dict[str, Any]) -> pl.DataFrame:
        cols = []
        for f in FEATURES:
            x = pl.col(f)
            mean, std = x.mean().over("Date"), x.std().over("Date")
            cols += [(x.rank("average").over("Date") / x.count().over("Date")).alias(f"{f}_rank"),
                     pl.when(std > 0).then((x - mean) / std).otherwise(None).clip(-CLIP, CLIP).alias(f"{f}_z")]
        return self._collect(state["features"].lazy().select("Code", "Date", *cols))

    def graphs(self, state: dict[str, Any]) -> dict[str, np.ndarray]:
        wide = (self._collect(state["adjust"].lazy().select("Date", "Code", "close"))
                .pivot(on="Code", index="Date", values="close", sort_columns=True).sort("Date"))
        codes = wide.columns[1:]
        returns = []
        for h in (1, 5):
            prev = pl.col(codes).shift(h)
            r = wide.select(pl.when(prev > 0).then(pl.col(codes) / prev - 1.0).otherwise(None).name.keep())
            returns.append(r.with_columns(pl.all().fill_nan(None)).to_numpy().astype(np.float64))  # host-ok: Polars
        return daily_graph.all_days(returns[0], returns[1], self.graph_config)

    def canonical(self, stage: str, output: Any) -> dict[str, np.ndarray]:
        if stage == "graphs":
            return output
        frame = output.sort("Code", "Date") if stage == "read" else output
        names = {"read": ["O", "H", "L", "C", "Vo", "Va", "AdjFactor"], "adjust": list(ADJUSTED)}.get(
            stage, [c for c in frame.columns if c not in ("Code", "Date")])
        return {n: frame[n].cast(pl.Float64).to_numpy().astype(np.float64) for n in names}  # host-ok: Polars
