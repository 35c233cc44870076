"""What the model sees: input groups from the metadata, and each relation's weighted mean of the neighbours'
last-day inputs (against pandas), which the graph-free ablation never gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_geometric")

from gpuetl.tensors import DatasetError, open_dataset  # noqa: E402
from gpuetl.train.config import InputSettings  # noqa: E402
from gpuetl.train.data import select_inputs  # noqa: E402
from gpuetl.train.model import GATRanker, RelationMeans  # noqa: E402
from tests._testing import CPU, assert_backend_equal  # noqa: E402
from tests.support.train import write_tiny_dataset  # noqa: E402


def test_input_groups_pick_features_and_context_from_the_metadata(tmp_path: Path) -> None:
    ds = open_dataset(write_tiny_dataset(tmp_path / "ds"), CPU)
    settings = InputSettings(groups=("returns", "market"), missing_flags=False, graph_features=False,
                             context_prefixes=("mkt_", "cal_"), exclude_prefixes=())
    assert select_inputs(ds, settings) == (["ret_1d_z", "ret_5d_z"], ["mkt_ret_1d"])
    every = select_inputs(ds, InputSettings((), False, False, ("mkt_", "cal_"), ()))
    assert every[1] == ["mkt_ret_1d", "cal_dow"] and len(every[0]) == len(ds.features) - 2
    with pytest.raises(DatasetError, match=r"no feature group.*volume"):
        select_inputs(ds, InputSettings(("returns", "volume"), False, False, (), ()))


def test_relation_means_are_weighted_neighbour_means_per_relation() -> None:
    rng = np.random.default_rng(0)
    m, f, e = 7, 3, 20
    x = rng.standard_normal((m, f))
    src, dst = rng.integers(0, m, e), rng.integers(0, m, e)
    attr = np.zeros((e, 3))  # two relations and the self-loop flag
    attr[:10, 0] = rng.uniform(0.2, 1.0, 10)
    attr[10:, 1] = rng.uniform(0.5, 3.0, 10)
    attr[::4, 0] = rng.uniform(0.2, 1.0, 5)  # some edges in both relations
    loops = np.arange(m)
    src, dst = np.concatenate([src, loops]), np.concatenate([dst, loops])
    attr = np.vstack([attr, np.tile([0.0, 0.0, 1.0], (m, 1))])
    got = RelationMeans(2)(torch.tensor(x), torch.tensor(np.stack([src, dst])), torch.tensor(attr)).numpy()
    edges = pd.DataFrame({"src": src, "dst": dst, "w0": attr[:, 0], "w1": attr[:, 1]})
    for r in range(2):
        w = edges[f"w{r}"]
        weighted = pd.DataFrame(x[edges["src"]] * w.to_numpy()[:, None]).groupby(edges["dst"].to_numpy()).sum()
        want = weighted.div(w.groupby(edges["dst"].to_numpy()).sum(), axis=0).fillna(0.0)
        want = want.reindex(range(m), fill_value=0.0).to_numpy()
        assert_backend_equal(got[:, r * f:(r + 1) * f], want, tol="sum_order")


def test_without_edges_the_relation_means_are_zero_and_neighbours_change_nothing() -> None:
    torch.manual_seed(0)
    model = GATRanker(3, 0, 8, 1, 4, "gru", 1, 1, 2, edge_dim=3, dropout=0.0, relation_means=True).eval()
    x = torch.randn(5, 4, 3)
    loops = torch.arange(5)
    loop_attr = torch.tensor([[0.0, 0.0, 1.0]]).repeat(5, 1)
    alone = model(x, x.new_zeros((5, 0)), torch.stack([loops, loops]), loop_attr)
    assert not RelationMeans(2)(x[:, -1], torch.stack([loops, loops]), loop_attr).any()
    edge = torch.tensor([[1], [0]])
    with_edge = model(x, x.new_zeros((5, 0)), torch.cat([edge, torch.stack([loops, loops])], 1),
                      torch.cat([torch.tensor([[0.0, 2.0, 0.0]]), loop_attr]))
    assert not torch.allclose(with_edge[0], alone[0])
    assert_backend_equal(with_edge[1:], alone[1:], tol="exact")  # the other nodes: as without the edge
