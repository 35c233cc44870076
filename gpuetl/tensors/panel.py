"""Dense (dates x codes x columns) panels of a dataset frame, on the backend's device, handed to torch by DLPack.

The frame's rows are scattered into arrays the backend allocates (CuPy from the RMM pool on the GPU, NumPy on
the CPU), and `torch.from_dlpack` wraps those very arrays: the tensor's data pointer is the array's, so no byte
crosses the PCIe bus between the dataset and the training step. Absent (code, date) pairs are NaN in the
values and False in `present`; the date and code axes are small host arrays (the splits and reports need them).

A dataset's panel is read file by file (its year parts), a few columns at a time, straight into the arrays
allocated once (`read_panel`): no frame of every row and column is ever held beside the panel, so the host peak
of a wide panel (~200 inputs of 2,000 codes over 5 years: 1.3 GB) is the panel and one part's few columns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
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


READ_COLUMNS = 32  # columns read from a part at once (446 k rows of a medium year: ~60 MB of frame)


@dataclasses.dataclass(frozen=True)
class Source:
    """Parquet files keyed by (Code, Date) and the columns to take from them. `rows`: whether their rows are the
    panel's rows (`present`); the others (graph features) only fill the cells of rows the panel has."""

    files: list[str]
    columns: list[str]
    rows: bool = True


def panel_axes(backend: Backend, files: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """(dates datetime64[D] ascending, codes sorted) of the rows of `files`, read a file at a time."""
    xp = backend.xp
    days, codes = [], np.array([], dtype=object)
    for f in files:
        keys = backend.read_parquet([f], columns=["Code", "Date"])
        days.append(xp.unique(backend.days(keys["Date"])))
        codes = np.union1d(codes, host_strings(backend, keys["Code"].unique()))
    dates = host_dates(backend, xp.concatenate(days)) if days else np.array([], dtype="datetime64[D]")
    return dates, np.asarray(codes, dtype=object)


def read_panel(backend: Backend, sources: Sequence[Source], columns: Sequence[str], targets: Sequence[str],
               dates: np.ndarray, codes: np.ndarray, device: torch.device | str | None = None) -> PanelTensors:
    """The panel of `columns` and `targets` on the axes (`panel_axes`), read from `sources` part by part: each
    file's (Code, Date) once, then its columns READ_COLUMNS at a time, scattered into the preallocated arrays
    (float32, as `build_panel` makes them). Cells a non-row source gives outside the rows stay NaN, as the left
    join of `Dataset.frame` leaves them."""
    xp = backend.xp
    d, n = len(dates), len(codes)
    arrays = {"values": xp.full((d, n, len(columns)), xp.nan, dtype=xp.float32),
              "present": xp.zeros((d, n), dtype=bool),
              "targets": xp.full((d, n, len(targets)), xp.nan, dtype=xp.float32)}
    where = {name: ("values", j) for j, name in enumerate(columns)}
    where |= {name: ("targets", j) for j, name in enumerate(targets)}
    axis = xp.asarray(dates.astype("datetime64[D]").astype(np.int64))
    for source in sorted(sources, key=lambda s: not s.rows):  # the rows first: `present` is then complete
        for f in source.files:
            code_id, date_id = _cells(backend, f, codes, axis)
            keep = (code_id >= 0) & (date_id >= 0)
            if source.rows and not bool(keep.all()):  # host-ok: one flag per part
                raise ValueError(f"{f}: rows outside the panel's axes")
            if not source.rows:  # only cells of the panel's rows
                keep &= arrays["present"][xp.maximum(date_id, 0), xp.maximum(code_id, 0)]
                code_id, date_id = code_id[keep], date_id[keep]
            cell = date_id * n + code_id  # the row of (date, code) in the (D * N, columns) views
            for lo in range(0, len(source.columns), READ_COLUMNS):
                chunk = list(source.columns[lo: lo + READ_COLUMNS])
                part = backend.read_parquet([f], columns=chunk)
                for kind in ("values", "targets"):  # each row's columns written side by side, not one by one
                    names = [c for c in chunk if where[c][0] == kind]
                    if names:
                        block = xp.stack([backend.to_array(part[c]).astype(xp.float32) for c in names], axis=1)
                        _put(arrays[kind].reshape(d * n, -1), cell, [where[c][1] for c in names],
                             block if source.rows else block[keep])
                del part
            if source.rows:
                arrays["present"][date_id, code_id] = True
    return PanelTensors(dates=dates, codes=codes, columns=tuple(columns),
                        values=to_torch(arrays["values"], device), present=to_torch(arrays["present"], device),
                        target_names=tuple(targets), targets=to_torch(arrays["targets"], device), arrays=arrays)


def _put(flat: Any, rows: Any, columns: list[int], block: Any) -> None:
    """flat[rows, columns] = block (rows x columns), as one slice of columns when they are consecutive."""
    if columns == list(range(columns[0], columns[0] + len(columns))):
        flat[rows, columns[0]: columns[0] + len(columns)] = block
    else:
        flat[rows[:, None], columns] = block


def _cells(backend: Backend, file: str, codes: np.ndarray, axis: Any) -> tuple[Any, Any]:
    """(code index, date index) of each row of `file` on the panel's axes; -1 where its code or date is not one."""
    xp = backend.xp
    keys = backend.read_parquet([file], columns=["Code", "Date"])
    local, uniques = keys["Code"].factorize()
    names = host_strings(backend, uniques)  # host-ok: the part's code labels (at most N strings)
    pos = np.clip(np.searchsorted(codes, names), 0, max(len(codes) - 1, 0))
    known = (codes[pos] == names) if len(codes) else np.zeros(len(names), dtype=bool)
    code_id = xp.asarray(np.where(known, pos, -1).astype(np.int64))[xp.asarray(local)]
    day = backend.days(keys["Date"])
    date_id = xp.clip(xp.searchsorted(axis, day), 0, max(len(axis) - 1, 0))
    hit = (axis[date_id] == day) if len(axis) else xp.zeros(len(day), dtype=bool)
    return code_id, xp.where(hit, date_id, -1)
