"""Segmented exponentially weighted mean / variance: the CPU twin (Numba), and the shared parameter rules.

cuDF has no `groupby(...).ewm(...)`; stage code sorts rows by (group, time), hands the values and the
segment offsets to `backend.kernels.segmented_ewm`, and gets pandas' `DataFrameGroupBy.ewm` semantics
back: `com`/`span`/`halflife`/`alpha`, `adjust`, `ignore_na`, `min_periods`, NaN handling and the
constant-series guard, step for step as pandas' own Cython loop (pandas/_libs/window/aggregations.pyx),
so results agree to the last bits. The CUDA version (ewm_cuda.py, kernels/ewm.cu) runs the same recurrence.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numba
import numpy as np

Stat = Literal["mean", "var", "std"]


def center_of_mass(com: float | None = None, span: float | None = None, halflife: float | None = None,
                   alpha: float | None = None) -> float:
    """Exactly one decay parameter -> center of mass, with pandas' formulas and domain checks."""
    given = [v is not None for v in (com, span, halflife, alpha)]
    if sum(given) != 1:
        raise ValueError("pass exactly one of com, span, halflife, alpha")
    if com is not None:
        if com < 0:
            raise ValueError("com must satisfy: com >= 0")
        return float(com)
    if span is not None:
        if span < 1:
            raise ValueError("span must satisfy: span >= 1")
        return float((span - 1) / 2)
    if halflife is not None:
        if halflife <= 0:
            raise ValueError("halflife must satisfy: halflife > 0")
        decay = 1 - np.exp(np.log(0.5) / halflife)
        return float(1 / decay - 1)
    assert alpha is not None
    if alpha <= 0 or alpha > 1:
        raise ValueError("alpha must satisfy: 0 < alpha <= 1")
    return float((1 - alpha) / alpha)


def check_inputs(values: Any, offsets: Any, stat: str, min_periods: int) -> int:
    """Validate shapes and options shared by both implementations; returns pandas' effective min_periods."""
    if values.ndim != 1 or offsets.ndim != 1:
        raise ValueError("values and offsets must be 1-D")
    if len(offsets) == 0 or int(offsets[0]) != 0 or int(offsets[-1]) != len(values):
        raise ValueError(f"offsets must run from 0 to len(values)={len(values)}")
    if stat not in ("mean", "var", "std"):
        raise ValueError(f"stat must be mean, var or std, not {stat!r}")
    return max(int(min_periods), 1)


def ewm_cpu(values: np.ndarray, offsets: np.ndarray, *, com: float, adjust: bool = True, ignore_na: bool = False,
            min_periods: int = 0, stat: Stat = "mean", bias: bool = False) -> np.ndarray:
    """EWM `stat` of `values` within each segment [offsets[i], offsets[i+1]); float64 out, NaN where undefined."""
    minp = check_inputs(values, offsets, stat, min_periods)
    vals = np.ascontiguousarray(values, dtype=np.float64)
    offs = np.ascontiguousarray(offsets, dtype=np.int64)
    out = np.empty(len(vals), dtype=np.float64)
    if stat == "mean":
        _ewm_mean(vals, offs, float(com), bool(adjust), bool(ignore_na), minp, out)
    else:
        _ewm_var(vals, offs, float(com), bool(adjust), bool(ignore_na), minp, bool(bias), out)
        if stat == "std":
            np.sqrt(out, out=out)
    return out


@numba.njit(cache=True, nogil=True)
def _ewm_mean(vals: np.ndarray, offs: np.ndarray, com: float, adjust: bool, ignore_na: bool, minp: int,
              out: np.ndarray) -> None:  # pragma: no cover - compiled
    alpha = 1.0 / (1.0 + com)
    old_wt_factor = 1.0 - alpha
    new_wt = 1.0 if adjust else alpha
    for j in range(len(offs) - 1):
        s, e = offs[j], offs[j + 1]
        if e <= s:
            continue
        weighted = vals[s]
        nobs = 1 if weighted == weighted else 0
        out[s] = weighted if nobs >= minp else math.nan
        old_wt = 1.0
        for i in range(s + 1, e):
            cur = vals[i]
            is_obs = cur == cur
            nobs += 1 if is_obs else 0
            if weighted == weighted:
                if is_obs or not ignore_na:
                    old_wt *= old_wt_factor
                    if is_obs:
                        if weighted != cur:  # pandas' guard against drift on constant series
                            weighted = old_wt * weighted + new_wt * cur
                            weighted /= old_wt + new_wt
                        if adjust:
                            old_wt += new_wt
                        else:
                            old_wt = 1.0
            elif is_obs:
                weighted = cur
            out[i] = weighted if nobs >= minp else math.nan


@numba.njit(cache=True, nogil=True)
def _ewm_var(vals: np.ndarray, offs: np.ndarray, com: float, adjust: bool, ignore_na: bool, minp: int,
             bias: bool, out: np.ndarray) -> None:  # pragma: no cover - compiled
    alpha = 1.0 / (1.0 + com)
    old_wt_factor = 1.0 - alpha
    new_wt = 1.0 if adjust else alpha
    for j in range(len(offs) - 1):
        s, e = offs[j], offs[j + 1]
        if e <= s:
            continue
        mean = vals[s]
        nobs = 1 if mean == mean else 0
        out[s] = (0.0 if bias else math.nan) if nobs >= minp else math.nan
        cov = 0.0
        sum_wt = 1.0
        sum_wt2 = 1.0
        old_wt = 1.0
        for i in range(s + 1, e):
            cur = vals[i]
            is_obs = cur == cur
            nobs += 1 if is_obs else 0
            if mean == mean:
                if is_obs or not ignore_na:
                    sum_wt *= old_wt_factor
                    sum_wt2 *= old_wt_factor * old_wt_factor
                    old_wt *= old_wt_factor
                    if is_obs:
                        old_mean = mean
                        if mean != cur:
                            mean = (old_wt * old_mean + new_wt * cur) / (old_wt + new_wt)
                        cov = (old_wt * (cov + (old_mean - mean) * (old_mean - mean))
                               + new_wt * ((cur - mean) * (cur - mean))) / (old_wt + new_wt)
                        sum_wt += new_wt
                        sum_wt2 += new_wt * new_wt
                        old_wt += new_wt
                        if not adjust:
                            sum_wt /= old_wt
                            sum_wt2 /= old_wt * old_wt
                            old_wt = 1.0
            elif is_obs:
                mean = cur
            if nobs >= minp:
                if not bias:
                    numerator = sum_wt * sum_wt
                    denominator = numerator - sum_wt2
                    out[i] = (numerator / denominator) * cov if denominator > 0 else math.nan
                else:
                    out[i] = cov
            else:
                out[i] = math.nan
