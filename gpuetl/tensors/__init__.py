"""A built dataset as device tensors: `open_dataset`, dense panels through DLPack, daily graphs, the day sampler."""

from gpuetl.tensors.dataset import Dataset, open_dataset
from gpuetl.tensors.graphs import DailyGraphs, DatasetError
from gpuetl.tensors.panel import PanelTensors
from gpuetl.tensors.sampler import DayBatch, DaySampler

__all__ = ["DailyGraphs", "Dataset", "DatasetError", "DayBatch", "DaySampler", "PanelTensors", "open_dataset"]
