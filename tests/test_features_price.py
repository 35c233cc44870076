"""Price features against independent references: TA-Lib (SMA, EMA), pandas (returns, rolling std),
hand-built cases (crosses, close location), and the leakage rule for split adjustment."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import talib

from gpuetl import ops
from gpuetl.backend import Backend, exact_when_flat
from gpuetl.dataset.registry import REGISTRY
from gpuetl.features.adjust import add_adjusted
from gpuetl.features.panel import Panel
from gpuetl.features.price import ema_talib
from tests._testing import assert_backend_equal, host
from tests.support.panels import make_panel, per_code, random_walk_frame


@pytest.mark.parametrize("tick", [None, 10.0])
@pytest.mark.parametrize("n", [5, 20, 60])
def test_sma_and_ema_agree_with_talib(backend: Backend, n: int, tick: float | None) -> None:
    df = random_walk_frame(tick=tick)
    panel = make_panel(backend, df)
    sma = host(backend, panel.rolling(panel["close"], n, "mean"))
    ema = host(backend, ema_talib(panel, panel["close"], n))
    close = host(backend, panel["close"])
    for rows in per_code(df):
        ref_sma = talib.SMA(close[rows], timeperiod=n)
        ref_ema = talib.EMA(close[rows], timeperiod=n)
        assert_backend_equal(sma[rows], ref_sma, tol="reference")
        assert_backend_equal(ema[rows], ref_ema, tol="reference")


def test_sma_gap_feature_matches_talib(backend: Backend) -> None:
    df = random_walk_frame(seed=3)
    panel = make_panel(backend, df)
    out = ops.run(REGISTRY["sma"], panel, {"windows": (20,), "slope_days": 5, "crosses": ((5, 20),)})
    close = host(backend, panel["close"])
    gap = host(backend, out["sma20_gap"])
    for rows in per_code(df):
        assert_backend_equal(gap[rows], close[rows] / talib.SMA(close[rows], 20) - 1, tol="reference_crossing")


def test_returns_and_realized_vol_match_pandas(backend: Backend) -> None:
    df = random_walk_frame(seed=1, gaps=0.05)
    panel = make_panel(backend, df)
    rets = ops.run(REGISTRY["returns"], panel, {"horizons": (1, 5, 20)})
    vol = ops.run(REGISTRY["realized_vol"], panel, {"windows": (5, 20)})
    g = df.groupby("code", sort=True)["C"]
    for k in (1, 5, 20):
        want = g.pct_change(k, fill_method=None).to_numpy()
        assert_backend_equal(host(backend, rets[f"ret_{k}d"]), want, tol="rounding")
    logret = np.log(df["C"] / g.shift(1))
    for n in (5, 20):
        want = logret.groupby(df["code"]).rolling(n).std().reset_index(level=0, drop=True).sort_index() * np.sqrt(252)
        assert_backend_equal(host(backend, vol[f"rvol_{n}d"]), want.to_numpy(), tol="reference")


def test_no_feature_crosses_a_code_boundary(backend: Backend) -> None:
    df = random_walk_frame(lengths=(30, 30))
    panel = make_panel(backend, df)
    ret = host(backend, ops.run(REGISTRY["returns"], panel, {"horizons": (1,)})["ret_1d"])
    assert np.isnan(ret[0]) and np.isnan(ret[30])
    assert np.isfinite(ret[1:30]).all() and np.isfinite(ret[31:]).all()


def test_crosses_and_close_location_hand_built(backend: Backend) -> None:
    xp = backend.xp
    close = np.array([10, 10, 10, 12, 14, 9, 8, 8.0])
    cols = {"O": close, "H": close + 1, "L": close - 1, "C": close, "Vo": np.ones(8), "Va": close,
            "AdjFactor": np.ones(8)}
    panel = Panel(backend, xp.zeros(8, dtype=np.int64), xp.arange(8), {k: xp.asarray(v) for k, v in cols.items()})
    add_adjusted(panel)
    out = ops.run(REGISTRY["sma"], panel, {"windows": (3,), "slope_days": 1, "crosses": ((1, 3),)})
    # SMA1 = close; SMA3 valid from row 2: 10, 10.667, 12, 11.667, 10.333, 8.333
    # sign(close - sma3): 0, +1, +1, -1, -1, -1 -> cross: nan(first), +1, 0, -1, 0, 0
    assert_backend_equal(host(backend, out["sma1_3_cross"]), [np.nan, np.nan, np.nan, 1, 0, -1, 0, 0], tol="exact")
    loc = host(backend, ops.run(REGISTRY["range_location"], panel, {})["close_location"])
    assert_backend_equal(loc, 0.5, tol="rounding")


def test_adjusted_prices_are_continuous_across_splits(backend: Backend) -> None:
    df = random_walk_frame(seed=2, lengths=(300,), splits=True)
    plain = random_walk_frame(seed=2, lengths=(300,), splits=False)
    panel = make_panel(backend, df)
    assert_backend_equal(host(backend, panel["close"]), plain["C"].to_numpy(), tol="rounding")
    assert_backend_equal(host(backend, panel["volume"]), plain["Vo"].to_numpy() * host(backend, panel["cum_factor"]),
                         tol="rounding")


def test_a_later_split_changes_nothing_before_it_not_even_a_bit(backend: Backend) -> None:
    """Leakage rule: perturb every raw value after day t (prices, volumes, factors); all at or before t is identical."""
    df = random_walk_frame(seed=4, lengths=(200, 120), splits=True)
    t = df["date"].iloc[90]
    rng = np.random.default_rng(9)
    later = df["date"] > t
    perturbed = df.copy()
    for col in ("O", "H", "L", "C", "Vo", "Va"):
        perturbed.loc[later, col] *= rng.uniform(0.5, 2.0, later.sum())
    perturbed.loc[later, "AdjFactor"] = rng.choice([1.0, 0.5, 0.25, 3.0], later.sum())
    params = {"returns": {"horizons": (1, 5)}, "sma": {"windows": (5, 20), "slope_days": 5, "crosses": ((5, 20),)},
              "ema": {"windows": (5, 20), "slope_days": 5, "crosses": ((5, 20),)},
              "realized_vol": {"windows": (5,)}, "overnight_intraday": {}, "range_location": {}}
    a, b = make_panel(backend, df), make_panel(backend, perturbed)
    keep = (~later).to_numpy()
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(host(backend, a[col])[keep], host(backend, b[col])[keep])
    for name, p in params.items():
        fa, fb = ops.run(REGISTRY[name], a, p), ops.run(REGISTRY[name], b, p)
        for col in fa:
            np.testing.assert_array_equal(host(backend, fa[col])[keep], host(backend, fb[col])[keep], err_msg=col)


def test_registry_rules(backend: Backend) -> None:
    """One op contract for every stage: unique names, misses that list the stage's ops, declared inputs and
    outputs enforced, declared axes and normalisations checked."""
    with pytest.raises(ValueError, match="listed twice"):
        ops.Registry([*REGISTRY, ops.feature("returns", group="x", inputs=(), outputs=lambda p: ())(lambda panel: {})])
    with pytest.raises(KeyError, match=r"unknown feature 'rsi2'; registered: .*returns"):
        REGISTRY.get("rsi2", "feature")
    with pytest.raises(KeyError, match=r"unknown enrich 'returns'; registered: .*statements"):
        REGISTRY.get("returns", "enrich")
    with pytest.raises(ValueError, match="unknown axis"):
        ops.feature("x", group="x", inputs=(), outputs=lambda p: (), axis="week")(lambda panel: {})  # type: ignore[arg-type]
    assert REGISTRY["sma"].lookback({"windows": (5, 200), "slope_days": 5, "crosses": ()}) == 205
    assert (REGISTRY["cs_rank"].axis, REGISTRY["market"].axis, REGISTRY["rsi"].axis) == ("day", "market", "code")
    assert set(REGISTRY.of("enrich")) >= {"statements", "listing"} \
        and REGISTRY["listing"].inputs == ("master", "calendar")
    liar = ops.feature("liar", group="x", inputs=("close",), outputs=lambda p: ("a",))(
        lambda panel: {"b": panel["close"]})
    panel = make_panel(backend, random_walk_frame(lengths=(5,)))
    with pytest.raises(RuntimeError, match=r"produced \('b',\), declared \('a',\)"):
        ops.run(liar, panel, {}, panel.columns)
    with pytest.raises(KeyError, match=r"needs columns \['close'\]"):
        ops.run(liar, panel, {}, ["open"])


def flat_stretches(backend: Backend, panel: Panel) -> object:
    """Noise with, in every code, a run of 12 equal values that no power-of-two fraction represents."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal(int(panel.n))
    offsets = host(backend, panel.offsets)
    for s, e in itertools.pairwise(offsets):
        x[s + 3 : min(s + 15, e)] = 1234.1 / 3.0
    x[offsets[0] + 20] = np.nan
    return backend.xp.asarray(x)


@pytest.mark.parametrize("stat", ["mean", "var", "std"])
def test_rolling_over_equal_values_is_exact(backend: Backend, stat: str) -> None:
    panel = make_panel(backend, random_walk_frame())
    x = flat_stretches(backend, panel)
    got = host(backend, panel.rolling(x, 5, stat))
    want = pd.Series(host(backend, x)).groupby(host(backend, panel.group)).rolling(5).agg(stat)
    want = want.reset_index(level=0, drop=True).sort_index().to_numpy()
    assert_backend_equal(got, want, tol="window_sums")  # libcudf sums each window
    flat = host(backend, panel.rolling(x, 5, "max")) == host(backend, panel.rolling(x, 5, "min"))
    assert flat.sum() > 20
    assert_backend_equal(got[flat], want[flat], tol="exact")
    assert np.all(got[flat] == (1234.1 / 3.0 if stat == "mean" else 0.0))


@pytest.mark.parametrize("stat", ["mean", "var", "std"])
def test_exact_when_flat_repairs_a_rounded_window_result(backend: Backend, stat: str) -> None:
    # what libcudf can return for a window of equal values: the mean a rounding step off, a tiny variance
    panel = make_panel(backend, random_walk_frame())
    x = flat_stretches(backend, panel)
    b, xp = backend, backend.xp
    raw = panel.rolling(x, 5, stat)
    hi, lo = panel.rolling(x, 5, "max"), panel.rolling(x, 5, "min")
    flat = (hi == lo) & ~xp.isnan(raw)
    exact = xp.where(flat, hi if stat == "mean" else 0.0, raw)
    rounded = xp.where(flat, xp.nextafter(exact, xp.inf) if stat == "mean" else 1e-20, raw)
    assert int(flat.sum()) > 20
    assert_backend_equal(host(b, exact_when_flat(xp, rounded, hi, lo, stat)), host(b, exact), tol="exact")


def test_extract_moves_the_selected_rows_of_some_columns_out(backend: Backend) -> None:
    panel = make_panel(backend, random_walk_frame())
    xp = backend.xp
    rows = xp.flatnonzero(panel.position % 3 == 0)
    close, volume = host(backend, panel["close"]), host(backend, panel["volume"])
    copied = panel.subset(rows)
    moved = panel.extract(rows, ["close", "volume"])
    assert "close" not in panel.columns and "volume" not in panel.columns and "C" in panel.columns
    assert sorted(moved.columns) == ["close", "volume"]
    np.testing.assert_array_equal(host(backend, moved["close"]), close[host(backend, rows)])
    np.testing.assert_array_equal(host(backend, moved["volume"]), volume[host(backend, rows)])
    np.testing.assert_array_equal(host(backend, moved.offsets), host(backend, copied.offsets))
    np.testing.assert_array_equal(host(backend, moved.dates), host(backend, copied.dates))


def test_finalized_columns_are_float32_and_unreadable_by_later_ops(backend: Backend) -> None:
    panel = make_panel(backend, random_walk_frame())
    ret = ops.run(REGISTRY["returns"], panel, {"horizons": (1,)})["ret_1d"]
    panel.columns["ret_1d"] = ret
    panel.finalize(["ret_1d"])
    assert panel.columns["ret_1d"].dtype == backend.xp.float32
    assert_backend_equal(host(backend, panel.columns["ret_1d"]), host(backend, ret).astype(np.float32), tol="exact",
                         check_dtype=True)
    with pytest.raises(KeyError, match="after its last declared reader"):
        ops.run(REGISTRY["cs_rank"], panel, {"columns": ("ret_1d",)})
    moved = panel.extract(backend.xp.arange(10), ["ret_1d"])  # float32 stays float32 when moved
    assert moved.columns["ret_1d"].dtype == backend.xp.float32
