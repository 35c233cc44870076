"""Dense (dates x codes x columns) panels of a dataset frame, on the backend's device, handed to torch by DLPack.

The frame's rows are scattered into arrays the backend allocates (CuPy from the RMM pool on the GPU, NumPy on
the CPU), and `torch.from_dlpack` wraps those very arrays: the tensor's data pointer is the array's, so no byte
crosses the PCIe bus between the dataset and the training step. Absent (code, date) pairs are NaN in the
values and False in `present`; the date and code axes are small host arrays (the splits and reports need them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gpuetl.backend import Backend


def torch_device(backend: Backend) -> torch.device:
    """The torch device of the backend's memory: its CUDA device on the GPU, else the CPU."""
    return torch.device("cuda", backend.device.index) if backend.device is not None else torch.device("cpu")


def to_torch(array: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """A backend array (CuPy/NumPy) as a torch tensor over the same memory (DLPack: no copy, same pointer).

    Only a `device` other than the array's own copies (explicitly, e.g. a CPU panel moved to a GPU).
    """
    tensor = torch.utils.dlpack.from_dlpack(array)
    return tensor if device is None or tensor.device == torch.device(device) else tensor.to(device)


@dataclasses.dataclass(frozen=True)
class PanelTensors:
    """A dataset as dense tensors. Shapes: D dates, N codes, F columns, T targets."""

    dates: np.ndarray  # (D,) datetime64[D], host: the date axis, ascending
    codes: np.ndarray  # (N,) str, host: the code axis, sorted (the graphs' node order)
    columns: tuple[str, ...]
    values: torch.Tensor  # (D, N, F) float32, NaN where the dataset has no row (or the value is missing)
    present: torch.Tensor  # (D, N) bool: the dataset has a row for (date, code)
    target_names: tuple[str, ...]
    targets: torch.Tensor  # (D, N, T) float32, NaN where missing
    arrays: dict[str, Any]  # the backend arrays behind values/present/targets (the tensors share their memory)

    @property
    def shape(self) -> tuple[int, int, int]:
        d, n, f = self.values.shape
        return int(d), int(n), int(f)

    def column(self, name: str) -> torch.Tensor:
        """(D, N) view of one column."""
        return self.values[:, :, self.columns.index(name)]

    def target(self, name: str) -> torch.Tensor:
        """(D, N) view of one target."""
        return self.targets[:, :, self.target_names.index(name)]


def host_strings(backend: Backend, index: Any) -> np.ndarray:
    """A frame-library Index/Series of strings as a host array (on the GPU: N code strings, the axis labels)."""
    return np.asarray(backend.to_host(index), dtype=object)  # host-ok: the code axis labels (N strings)


def host_dates(backend: Backend, days: Any) -> np.ndarray:
    """Sorted unique int64 day numbers (an array of the backend) -> a host datetime64[D] axis (D values)."""
    unique = backend.xp.unique(days)
    return np.asarray(backend.to_host(unique)).astype("datetime64[D]")  # host-ok: the date axis labels


def build_panel(backend: Backend, frame: Any, columns: Sequence[str], targets: Sequence[str] = (),
                device: torch.device | str | None = None) -> PanelTensors:
    """Scatter `frame` (Code, Date, columns..., targets...) into dense arrays of the backend, then to torch."""
    xp = backend.xp
    frame = frame.sort_values(["Code", "Date"]).reset_index(drop=True)
    code_id, codes = frame["Code"].factorize(sort=True)
    code_id = xp.asarray(code_id).astype(xp.int64)
    days = backend.days(frame["Date"])
    dates = xp.unique(days)
    date_id = xp.searchsorted(dates, days)
    d, n = len(dates), len(codes)

    def scatter(names: Sequence[str]) -> Any:
        out = xp.full((d, n, len(names)), xp.nan, dtype=xp.float32)
        for j, name in enumerate(names):
            out[date_id, code_id, j] = backend.to_array(frame[name]).astype(xp.float32)
        return out

    present = xp.zeros((d, n), dtype=bool)
    present[date_id, code_id] = True
    arrays = {"values": scatter(columns), "present": present, "targets": scatter(targets)}
    return PanelTensors(dates=host_dates(backend, dates), codes=host_strings(backend, codes), columns=tuple(columns),
                        values=to_torch(arrays["values"], device), present=to_torch(present, device),
                        target_names=tuple(targets), targets=to_torch(arrays["targets"], device), arrays=arrays)
