"""Type aliases for the arrays and frames stage code passes around: the backend's, whichever it is.

Annotations say what a value is (`Array`, `Frame`) even though the class depends on the backend chosen at run
time; shapes are given in docstrings, PyG style (`Shapes:` sections, e.g. `values: (n,)`, `offsets: (s + 1,)`).
"""

from __future__ import annotations

from typing import Any, TypeAlias

Array: TypeAlias = Any  # numpy.ndarray (CPU backend) or cupy.ndarray (GPU backend)
Frame: TypeAlias = Any  # pandas.DataFrame (CPU) or cudf.DataFrame (GPU)
Series: TypeAlias = Any  # pandas.Series (CPU) or cudf.Series (GPU)
ArrayModule: TypeAlias = Any  # the numpy or cupy module
