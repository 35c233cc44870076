"""ARCHITECTURE.md, enforced: the layers and what each may import, no cycles between units, module-level imports
of gpuetl modules (commands aside), importlib only where modules are resolved by name, no pandas in the stage
packages, no unmarked device-to-host transfers in the library; and every module imports on its own."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gpuetl"
# modules that import an optional library at their top (polars: the bench extra; torch: the train extra), so the
# bench loads them only when a stage asks for them
LAZY_OK = {"gpuetl.bench.polars_peer", "gpuetl.tensors", "gpuetl.tensors.panel", "gpuetl.train.config",
           "gpuetl.train.data", "gpuetl.train.loop", "gpuetl.train.splits"}
IMPORTLIB_OK = {"backend", "kernels"}  # may resolve modules by name (importlib.import_module)
NO_PANDAS = {"features", "enrich", "dataset", "graphs"}
LIBRARY_LAYERS = {0, 1, 2}
HOST_CALLS = re.compile(r"\.get\(\)|\.to_pandas\(|\.values_host|asnumpy\(|\.to_numpy\(\)|\.to_host\b")


def layers() -> dict[str, int]:
    """unit -> layer, from the table in ARCHITECTURE.md."""
    out = {}
    for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines():
        m = re.match(r"\| (\d) \w+ \| (.+?) \|", line)
        if m:
            out |= dict.fromkeys(re.findall(r"`([\w_]+)`", m.group(2)), int(m.group(1)))
    return out


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def unit(module: str) -> str:
    """The layer unit of a module: its subpackage or top-level module (`gpuetl` itself for the facade and what it
    defines, such as `__version__`)."""
    parts = module.split(".")
    if len(parts) == 1 or not ((PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").exists()):
        return "gpuetl"
    return parts[1]


def imports(path: Path) -> Iterator[tuple[str, ast.stmt, bool]]:
    """(imported gpuetl module, the statement, whether it runs at call time) for every import in a file."""
    tree = ast.parse(path.read_text())
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
              for n in ast.walk(f) if n is not f}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gpuetl":
            names = [f"{node.module}.{a.name}" if node.module == "gpuetl" else node.module for a in node.names]
            for name in names:
                yield name, node, id(node) in nested
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "gpuetl":
                    yield a.name, node, id(node) in nested


def imports_by_name(path: Path) -> bool:
    """Whether a file resolves modules by name at run time (importlib.import_module, __import__), which would
    hide an import from these checks; probing with importlib.util.find_spec or importlib.metadata is fine."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ("import_module", "__import__"):
                return True
    return False


def third_party(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_every_unit_has_a_layer() -> None:
    known = layers()
    units = {unit(m) for m, _ in modules()} - {"gpuetl"}
    assert units <= set(known), f"units missing from ARCHITECTURE.md: {sorted(units - set(known))}"
    assert set(known) <= units, f"ARCHITECTURE.md names units that do not exist: {sorted(set(known) - units)}"


def test_imports_go_down_the_layers_and_only_at_module_level() -> None:
    known = layers()
    wrong = []
    for module, path in modules():
        src = unit(module)
        for target, node, lazy in imports(path):
            dst = unit(target)
            if src == "gpuetl":  # the facade: gpuetl.open_dataset -> tensors, on first use
                continue
            if dst != "gpuetl" and known[dst] > known[src]:
                wrong.append(f"{module}:{node.lineno} imports {target} (layer {known[dst]} above {known[src]})")
            if lazy and src != "commands" and target not in LAZY_OK:
                wrong.append(f"{module}:{node.lineno} imports {target} inside a function")
    assert not wrong, "\n".join(wrong)


def test_no_cycle_between_units() -> None:
    graph: dict[str, set[str]] = {}
    for module, path in modules():
        src = unit(module)
        if src != "gpuetl":
            graph.setdefault(src, set()).update(unit(t) for t, _, _ in imports(path) if unit(t) not in (src, "gpuetl"))
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail(f"import cycle: {' -> '.join([*trail[trail.index(nxt):], nxt])}")
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])


def test_importlib_pandas_pylibcugraph_where_allowed() -> None:
    wrong = []
    for module, path in modules():
        libs = third_party(path)
        u = unit(module)
        if imports_by_name(path) and u not in IMPORTLIB_OK:
            wrong.append(f"{module} imports modules by name (importlib.import_module)")
        if "pandas" in libs and u in NO_PANDAS:
            wrong.append(f"{module} imports pandas (a stage package: use the backend's frame library)")
        if "pylibcugraph" in libs and u != "kernels":
            wrong.append(f"{module} imports pylibcugraph outside gpuetl/kernels")
    assert not wrong, "\n".join(wrong)


def test_device_to_host_transfers_in_the_library_are_marked() -> None:
    known = layers()
    wrong = []
    for module, path in modules():
        if unit(module) == "gpuetl" or known[unit(module)] not in LIBRARY_LAYERS:
            continue
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            if HOST_CALLS.search(code) and "host-ok" not in line:
                wrong.append(f"{module}:{n}: {line.strip()}")
    assert not wrong, "unmarked device-to-host transfers (mark deliberate ones `# host-ok: why`):\n" + "\n".join(wrong)


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_every_module_imports_first_and_in_any_order(order: str) -> None:
    """Every module imported in a fresh interpreter, in two opposite orders (a cycle would leave some module
    half-initialised in one of them); modules of optional libraries (cuDF, CuPy, Polars) may be absent."""
    names = [m for m, _ in modules() if m != "gpuetl.__main__"]
    names = sorted(names) if order == "sorted" else sorted(names, reverse=True)
    script = (
        "import importlib, sys\n"
        "missing = []\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError as err:\n"
        "        if err.name.split('.')[0] == 'gpuetl':\n"
        "            raise\n"
        "        missing.append((name, err.name))\n"
        "print(missing)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    allowed = {"cupy", "cudf", "rmm", "pylibcugraph", "cupyx", "polars", "dask_cuda", "dask_cudf"}
    assert all(lib.split(".")[0] in allowed for _, lib in eval(done.stdout.strip())), done.stdout
