"""One loader for the files that ship beside the code: `kernels/` (CUDA sources) and `configs/` (YAML).

In a source checkout (and an editable install) they sit at the repository root; a built wheel carries
them as `gpuetl/_resources/<name>` (pyproject's force-include). Callers never guess paths themselves.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The directory of shipped resource `name` ("kernels" or "configs")."""
    for candidate in (_PACKAGE / "_resources" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"gpuetl resource directory {name!r} not found next to the package ({_PACKAGE}) "
        "nor in the wheel's _resources; is the install complete?"
    )


def config_path(relative: str | Path) -> Path:
    """Resolve a config path: as given if it exists (relative to cwd), else inside the shipped configs/."""
    path = Path(relative)
    if path.exists():
        return path
    parts = path.parts[1:] if path.parts and path.parts[0] == "configs" else path.parts
    shipped = resource_dir("configs").joinpath(*parts)
    if shipped.exists():
        return shipped
    raise FileNotFoundError(f"config file {str(relative)!r} not found "
                            f"(looked in the working directory and {shipped.parent})")
