"""Type aliases for the arrays and frames stage code passes around: the backend's, whichever it is.

Annotations say what a value is (`Array`, `Frame`) even though the class depends on the backend chosen at run
time: each alias is the union of the CPU class and the GPU class (a type checker without the RAPIDS stubs sees the
GPU half as Any). Shapes are given in docstrings, PyG style (`Shapes:` sections, e.g. `values: (n,)`).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, TypeAlias, Union

if TYPE_CHECKING:
    import cudf  # noqa: TID251  (for annotations only: never imported at run time)
    import cupy  # noqa: TID251
    import numpy as np
    import pandas as pd

Array: TypeAlias = Union["np.ndarray", "cupy.ndarray"]  # forward references: the classes are never imported at run time
Frame: TypeAlias = Union["pd.DataFrame", "cudf.DataFrame"]
Series: TypeAlias = Union["pd.Series", "cudf.Series"]
ArrayModule: TypeAlias = ModuleType  # the numpy or cupy module
