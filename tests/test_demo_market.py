"""The demo market exercises every default feature (issue 10): on the synthetic market the demo fetches
(the demo's dates and seed; fewer codes, for time), written as `fetch --demo` writes it (daily earnings-calendar
snapshots included), the default dataset has no feature that is all missing or constant, no normalised column
that is constant, and `_missing` is 1 exactly where the raw value is NaN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gpuetl.commands import main
from tests.support.lakes import ENRICH_DATASETS, read_dataset


@pytest.fixture(scope="module")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    s = ["--backend", "cpu", "--set", "demo.codes=30"]
    datasets = ",".join(ENRICH_DATASETS)  # what the default dataset reads
    assert main(["synth", *s, "--datasets", datasets, "--out", str(root / "lake"), "--no-progress"]) == 0
    assert main(["build", *s, "--lake", str(root / "lake"), "--out", str(root / "ds"), "--no-progress"]) == 0
    return root / "ds"


def test_every_default_feature_has_varying_values_and_honest_missing_flags(demo_dataset: Path) -> None:
    meta = json.loads((demo_dataset / "metadata.json").read_text())
    assert set(meta["enrich"].values()) == {"on"}  # the demo lake holds every dataset the default reads
    df = read_dataset(demo_dataset)
    features = [c for cols in meta["features_by_group"].values() for c in cols]
    assert len(features) == meta["feature_count"] >= 200
    empty = [c for c in features if df[c].isna().all()]
    constant = [c for c in features if df[c].nunique(dropna=True) == 1]
    flat_z = [c for c in features if df[f"{c}_z"].nunique() == 1]
    assert not empty and not constant and not flat_z, (empty, constant, flat_z)
    for c in features:
        np.testing.assert_array_equal(df[f"{c}_missing"].to_numpy() == 1, df[c].isna().to_numpy(), err_msg=c)
    # the warm-up: the first date written has the long windows filled
    first = df[df["Date"] == df["Date"].min()]
    assert first["dist_high_250d"].notna().mean() > 0.6 and first["sma200_gap"].notna().mean() > 0.6
