"""ARCHITECTURE.md, enforced: the layers (and layer 2's stages) and what each may import, no cycles between units,
module-level imports of gpuetl modules (commands aside), importlib only where modules are resolved by name, the
kernel registry's "module:function" strings, the package facade, no pandas in the stage packages, no unmarked
device-to-host transfers in the library; and every module imports on its own.

Each rule is a `check_*` function of a repository root (ARCHITECTURE.md beside a `gpuetl/` package) that returns
its violations, one line each. The real repository must have none; the planted tests at the end build small fake
trees in tmp_path, break one rule each and assert that its check names the break."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = "gpuetl"
FACADE = PKG  # gpuetl/__init__.py: its own unit, in no layer (see check_facade)

# modules that import an optional library at their top (polars: the bench extra; torch: the train extra), so the
# bench loads them only when a stage asks for them
LAZY_OK = {"gpuetl.bench.polars_peer", "gpuetl.tensors", "gpuetl.tensors.panel", "gpuetl.train.config",
           "gpuetl.train.data", "gpuetl.train.loop", "gpuetl.train.splits"}
LAZY_UNITS = {"commands"}  # import gpuetl modules when a command runs, so `gpuetl --help` is fast
IMPORTLIB_OK = {"backend", "kernels"}  # may resolve modules by name (importlib.import_module)
NO_PANDAS = {"features", "enrich", "dataset", "graphs"}
PYLIBCUGRAPH_OK = {"kernels"}
LIBRARY_LAYERS = {0, 1, 2}
# what the facade re-exports from above layer 0, imported on first use (its module __getattr__): name -> module
FACADE_EXPORTS = {"open_dataset": "gpuetl.tensors"}
# libraries a kernel's GPU version may name that a CPU-only machine lacks: its registry string is checked for
# shape and layer only (they resolve on the GPU machines, where tests/test_kernel_registry.py runs them)
GPU_ONLY_LIBS = {"cupy", "cupyx", "cudf", "rmm", "pylibcugraph"}
KERNEL_TARGET = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")  # "module:function"

# ----------------------------------------------------------------------------- the device-to-host rule
# A module of layers 0-2 can hold device data when it imports the backend seam, the array type aliases, torch,
# CuPy or cuDF, or names the backend's array or frame module (`xp`, `xdf`); the others (typed configs, the
# J-Quants client, the lake's writers, fetch) only ever see host values, so nothing there is a transfer.
DEVICE_IMPORTS = {"gpuetl.backend", "gpuetl.arrays", "torch", "cupy", "cupyx", "cudf", "rmm"}
DEVICE_NAMES = {"xp", "xdf"}
# In those modules these always move data to the host when called on a device value (and are flagged wherever
# they appear: on host values the mark says so):
TRANSFER_METHODS = {"cpu", "numpy", "item", "tolist", "to_pandas", "to_numpy", "to_arrow", "asnumpy"}
TRANSFER_NOARG_METHODS = {"get"}  # cupy.ndarray.get() (dict.get takes a key)
TRANSFER_ATTRS = {"values_host", "to_host"}  # cuDF's host values; the backend's own transfer (a call or a reference)
# ... and these do when their argument is a device value (an expression computed from the backend's array or
# frame module, from torch or CuPy, from a parameter annotated as a backend array or tensor, or from a name bound
# to one of those; see DeviceValues):
CONVERSIONS = {"bool", "int", "float"}
HOST_ARRAY_CALLS = {"asarray", "array", "ascontiguousarray"}  # np.asarray(device): an implicit copy (or an error)
HOST_MARK = re.compile(r"#\s*host-ok:\s*\S")


# ----------------------------------------------------------------------------- reading the tree


@dataclasses.dataclass(frozen=True)
class Layer:
    number: int
    stage: str = ""  # a, b, ... for the ordered stages of a split layer

    def __str__(self) -> str:
        return f"{self.number}{self.stage}"


def layers(root: Path) -> dict[str, Layer]:
    """unit -> layer, from the table in ARCHITECTURE.md (rows `| 0 foundation | ...` or `| 2a stages | ...`)."""
    out: dict[str, Layer] = {}
    for line in (root / "ARCHITECTURE.md").read_text().splitlines():
        m = re.match(r"\| (\d)([a-z]?) [\w ]+\| (.+?) \|", line)
        if m:
            out |= dict.fromkeys(re.findall(r"`(\w+)`", m.group(3)), Layer(int(m.group(1)), m.group(2)))
    return out


def modules(root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted((root / PKG).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def unit(root: Path, module: str) -> str:
    """The layer unit of a gpuetl module: its subpackage or top-level module (`gpuetl` for the facade and any
    name only the facade defines)."""
    parts = module.split(".")
    if len(parts) == 1 or not ((root / PKG / parts[1]).is_dir() or (root / PKG / f"{parts[1]}.py").exists()):
        return FACADE
    return parts[1]


def is_gpuetl(name: str) -> bool:
    return name.split(".")[0] == PKG


@dataclasses.dataclass(frozen=True)
class Import:
    target: str  # absolute module name (a gpuetl module, or a third-party module)
    line: int
    lazy: bool  # inside a function: runs at call time
    how: str = "imports"  # or "imports by name" (importlib), or "registers kernel" (a "module:function" string)


def _nested_in_functions(tree: ast.AST) -> set[int]:
    return {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            for n in ast.walk(f) if n is not f}


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def imports(module: str, path: Path) -> Iterator[Import]:
    """Every import of a file: statements (relative ones made absolute) and importlib.import_module / __import__
    of a constant name, each with whether it runs at call time."""
    tree = ast.parse(path.read_text())
    nested = _nested_in_functions(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        lazy = id(node) in nested
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, *([base] if base else [])])
            if base == PKG or (node.level and not node.module):  # `from gpuetl import x`: x may be a module
                for a in node.names:
                    yield Import(f"{base}.{a.name}", node.lineno, lazy)
            else:
                yield Import(base, node.lineno, lazy)
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield Import(a.name, node.lineno, lazy)
        elif (isinstance(node, ast.Call) and _call_name(node) in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield Import(node.args[0].value, node.lineno, lazy, "imports by name")


def imports_by_name(path: Path) -> bool:
    """Whether a file resolves modules by name at run time (importlib.import_module, __import__), which would
    hide an import from these checks; probing with importlib.util.find_spec or importlib.metadata is fine."""
    return any(isinstance(n, ast.Call) and _call_name(n) in ("import_module", "__import__")
               for n in ast.walk(ast.parse(path.read_text())))


@dataclasses.dataclass(frozen=True)
class KernelTarget:
    resolver: str  # the module that resolves it by name (as if it imported the target)
    module: str
    function: str
    where: str  # module:line of the string


def kernel_targets(root: Path) -> list[KernelTarget]:
    """The registry's "module:function" strings: every such string constant (docstrings aside) in a module of a
    unit that resolves modules by name, and the cpu=/gpu= strings of any `register(...)` call (kernels resolves
    those)."""
    out: dict[tuple[str, int, str], KernelTarget] = {}
    for module, path in modules(root):
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                      and n.body and isinstance(n.body[0], ast.Expr)}
        found: list[tuple[str, ast.Constant]] = []
        if unit(root, module) in IMPORTLIB_OK:
            found += [(module, n) for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in docstrings
                      and isinstance(n.value, str) and KERNEL_TARGET.fullmatch(n.value)]
        found += [(f"{PKG}.kernels", k.value) for n in ast.walk(tree)
                  if isinstance(n, ast.Call) and _call_name(n) == "register"
                  for k in n.keywords if k.arg in ("cpu", "gpu") and isinstance(k.value, ast.Constant)
                  and isinstance(k.value.value, str)]
        for resolver, const in found:
            mod, _, fn = str(const.value).partition(":")
            out.setdefault((module, const.lineno, str(const.value)),
                           KernelTarget(resolver, mod, fn, f"{module}:{const.lineno}"))
    return list(out.values())


def all_imports(root: Path) -> dict[str, list[Import]]:
    """module -> its imports, the kernel registry's targets counted as module-level imports of their resolver."""
    out = {module: list(imports(module, path)) for module, path in modules(root)}
    for k in kernel_targets(root):
        out.setdefault(k.resolver, []).append(Import(k.module, int(k.where.rpartition(":")[2]), False,
                                                     f"registers kernel {k.module}:{k.function}, so it imports"))
    return out


def third_party(imps: list[Import]) -> set[str]:
    return {i.target.split(".")[0] for i in imps if not is_gpuetl(i.target)}


# ----------------------------------------------------------------------------- the checks


def check_units(root: Path) -> list[str]:
    """Every unit has a layer in the table, the table names only units that exist, and a layer is either split
    into lettered stages or not."""
    known = layers(root)
    units = {unit(root, m) for m, _ in modules(root)} - {FACADE}
    wrong = [f"unit missing from ARCHITECTURE.md: {u}" for u in sorted(units - set(known))]
    wrong += [f"ARCHITECTURE.md names a unit that does not exist: {u}" for u in sorted(set(known) - units)]
    for n in {lay.number for lay in known.values()}:
        if len({bool(lay.stage) for lay in known.values() if lay.number == n}) > 1:
            wrong.append(f"layer {n} has lettered stages and unlettered rows")
    return wrong


def layer_violation(src: Layer, dst: Layer) -> str | None:
    """Why a unit of layer `src` may not import a (different) unit of layer `dst`, or None when it may: a lower
    layer; within a split layer, an earlier stage (units of one stage never import each other)."""
    if dst.number != src.number:
        return None if dst.number < src.number else f"layer {dst} above {src}"
    if not src.stage or dst.stage < src.stage:
        return None
    return f"stage {dst} above {src}" if dst.stage > src.stage else f"stage {dst} beside {src}"


def check_layers(root: Path) -> list[str]:
    """Imports go down the layers (and down layer 2's stages), never to the facade, and happen at module level
    (commands and the modules of optional libraries aside); the kernel registry's targets count as imports of
    the module that resolves them."""
    known = layers(root)
    wrong = []
    for module, imps in all_imports(root).items():
        src = unit(root, module)
        if src == FACADE:
            continue  # check_facade
        for i in filter(lambda i: is_gpuetl(i.target), imps):
            dst = unit(root, i.target)
            if dst == FACADE:
                wrong.append(f"{module}:{i.line} {i.how} {i.target} from the facade (gpuetl/__init__.py): import "
                             "it from the module that defines it")
                continue
            why = layer_violation(known[src], known[dst]) if dst != src and {src, dst} <= set(known) else None
            if why:
                wrong.append(f"{module}:{i.line} {i.how} {i.target} ({why})")
            if i.lazy and src not in LAZY_UNITS and i.target not in LAZY_OK:
                wrong.append(f"{module}:{i.line} {i.how} {i.target} inside a function")
    return wrong


def check_facade(root: Path) -> list[str]:
    """The facade gpuetl/__init__.py runs before any gpuetl module loads, so at its top it imports only the
    standard library and layer-0 modules; what it re-exports from higher layers (FACADE_EXPORTS) it imports on
    first use. (No module imports from the facade: check_layers.)"""
    known = layers(root)
    path = root / PKG / "__init__.py"
    wrong = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # what it imports on first use: only the declared re-exports
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) in _nested_in_functions(tree):
            source = node.module if isinstance(node, ast.ImportFrom) and not node.level else None
            for a in node.names:
                if source is None or FACADE_EXPORTS.get(a.name) != source:
                    wrong.append(f"{PKG}:{node.lineno} imports {a.name}" + (f" from {source}" if source else "")
                                 + " on first use, which FACADE_EXPORTS does not declare")
    for i in imports(PKG, path):
        if i.lazy:
            continue
        if is_gpuetl(i.target):
            layer = known.get(unit(root, i.target))
            if layer is None or layer.number != 0:
                wrong.append(f"{PKG}:{i.line} imports {i.target} (layer {layer}) at its top: every gpuetl module "
                             "would load it")
        elif i.target.split(".")[0] not in sys.stdlib_module_names:
            wrong.append(f"{PKG}:{i.line} imports {i.target} at its top: every gpuetl module would load it")
    return wrong


def check_cycles(root: Path) -> list[str]:
    """No import cycle between units (the kernel registry's targets included)."""
    graph: dict[str, set[str]] = {}
    for module, imps in all_imports(root).items():
        src = unit(root, module)
        graph.setdefault(src, set()).update(unit(root, i.target) for i in imps
                                            if is_gpuetl(i.target) and unit(root, i.target) != src)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(f"import cycle: {' -> '.join([*trail[trail.index(nxt):], nxt])}")
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return cycles


def check_module_cycles(root: Path) -> list[str]:
    """No import circle between modules, even inside one unit, and counting the imports made only for annotations
    (`if TYPE_CHECKING:`): a circle there still makes one module's meaning depend on the other's (the synthetic
    market's generators and the market once did). `from pkg import sub` counts as an import of `pkg.sub`."""
    paths = dict(modules(root))
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        deps = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, *([base] if base else [])])
                deps.update(f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        deps.intersection_update(set(paths) - {module})
    circles, index, low, stack, on = [], {}, {}, [], set()

    def strong(v: str) -> None:  # Tarjan: each strongly connected set of two or more modules is a circle
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            members = []
            while True:
                w = stack.pop()
                on.discard(w)
                members.append(w)
                if w == v:
                    break
            if len(members) > 1:
                circles.append(f"import circle between modules: {', '.join(sorted(members))}")

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return circles


def check_libraries(root: Path) -> list[str]:
    """importlib by name only in IMPORTLIB_OK, no pandas in the stage packages, pylibcugraph only in kernels (a
    kernel registry target's library counts as imported by the module that resolves it)."""
    wrong = []
    paths = dict(modules(root))
    for module, imps in all_imports(root).items():
        libs, u = third_party(imps), unit(root, module)
        if module in paths and imports_by_name(paths[module]) and u not in IMPORTLIB_OK:
            wrong.append(f"{module} imports modules by name (importlib.import_module)")
        if "pandas" in libs and u in NO_PANDAS:
            wrong.append(f"{module} imports pandas (a stage package: use the backend's frame library)")
        if "pylibcugraph" in libs and u not in PYLIBCUGRAPH_OK:
            wrong.append(f"{module} imports pylibcugraph outside gpuetl/kernels")
    return wrong


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def check_kernel_registry(root: Path) -> list[str]:
    """Each "module:function" string names an existing module that defines that function: a gpuetl module by its
    file (never imported here: a GPU version needs CuPy), another library by importing it where it is installed
    (GPU-only libraries aside)."""
    wrong = []
    for k in kernel_targets(root):
        if is_gpuetl(k.module):
            rel = Path(*k.module.split("."))
            path = next((p for p in (root / rel.with_suffix(".py"), root / rel / "__init__.py") if p.is_file()), None)
            if path is None:
                wrong.append(f"{k.where} names {k.module}:{k.function}, but there is no module {k.module}")
            elif k.function not in _top_level_names(path):
                wrong.append(f"{k.where} names {k.module}:{k.function}, but {k.module} defines no {k.function}")
        elif importlib.util.find_spec(k.module.split(".")[0]) is not None:
            try:
                found = hasattr(importlib.import_module(k.module), k.function)
            except ImportError as err:
                wrong.append(f"{k.where} names {k.module}:{k.function}, which does not import ({err})")
                continue
            if not found:
                wrong.append(f"{k.where} names {k.module}:{k.function}, but {k.module} has no {k.function}")
        elif k.module.split(".")[0] not in GPU_ONLY_LIBS:
            wrong.append(f"{k.where} names {k.module}:{k.function}, whose library is not installed (and is not "
                         "one of the GPU-only libraries)")
    return wrong


LIBS = {"xp", "xdf", "cupy", "cudf", "torch"}  # names whose calls make device values
DEVICE_TYPES = {"Array", "Frame", "Series", "Tensor"}  # gpuetl.arrays' aliases and torch.Tensor
LIB_TYPES = {"Tensor", "ndarray", "DataFrame", "Series", "Index"}  # torch.Tensor, cupy.ndarray, cudf.Series ...


def device_annotation(ann: ast.expr | None) -> bool | None:
    """Whether an annotation names a device type (None: no annotation, or `Any`, which says nothing)."""
    ann = _annotation(ann)
    if ann is None or (isinstance(ann, ast.Name) and ann.id == "Any"):
        return None
    return any((isinstance(n, ast.Name) and n.id in DEVICE_TYPES)
               or (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in LIBS
                   and n.attr in LIB_TYPES) for n in ast.walk(ann))


def _annotation(ann: ast.expr | None) -> ast.expr | None:
    if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
        try:
            return ast.parse(ann.value, mode="eval").body
        except SyntaxError:
            return None
    return ann


Kind = bool | str | tuple[Any, ...] | None  # a device value, a host value, an object of a class, a tuple of kinds


@dataclasses.dataclass
class Typing:
    """What the annotations of a set of modules say: each class's device fields (annotated fields, `self.x: T`,
    properties, and `self.x = <a device value>` in its methods) and fields holding an object of another class;
    and what functions and methods return, by name (see `Kind`; the module's own definitions first, then the
    others', where the annotated definitions of a name agree)."""

    fields: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    objects: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    returns: dict[str, Kind] = dataclasses.field(default_factory=dict)
    by_module: dict[str, dict[str, Kind]] = dataclasses.field(default_factory=dict)  # top-level functions

    @classmethod
    def of(cls, sources: dict[str, str]) -> Typing:
        """The annotations of modules (name -> source)."""
        trees = [ast.parse(source) for source in sources.values()]
        classes = [n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
        out = cls({c.name: set() for c in classes}, {c.name: {} for c in classes})
        for c in classes:
            for node in ast.walk(c):
                name: str
                ann: ast.expr | None
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node in c.body:
                    name, ann = node.target.id, node.annotation
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Attribute) \
                        and _is_self_attr(node.target):
                    name, ann = node.target.attr, node.annotation
                elif isinstance(node, ast.FunctionDef) and node in c.body and any(
                        isinstance(d, ast.Name) and d.id in ("property", "cached_property")
                        for d in node.decorator_list):
                    name, ann = node.name, node.returns
                else:
                    continue
                if device_annotation(ann):
                    out.fields[c.name].add(name)
                elif kind := out.class_of(ann):
                    out.objects[c.name][name] = kind
        out.returns = out._returns(trees)
        out.by_module = {m: {f.name: out.kind_of(f.returns) for f in tree.body
                             if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}
                         for m, tree in zip(sources, trees, strict=True)}
        for _ in range(2):  # fields set from device values (self.codes = codes, codes: Array), then from those
            for c in classes:
                for method in (m for m in c.body if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)):
                    dev = DeviceValues(method, out, c.name)
                    for node in ast.walk(method):
                        if isinstance(node, ast.Assign):
                            out.fields[c.name] |= {t.attr for t in node.targets if isinstance(t, ast.Attribute)
                                                   and _is_self_attr(t) and dev.is_device(node.value)}
        return out

    def _returns(self, trees: list[ast.Module]) -> dict[str, Kind]:
        seen: dict[str, set[Kind]] = {}
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    seen.setdefault(node.name, set()).add(self.kind_of(node.returns))
        return {name: kinds.pop() for name, kinds in seen.items() if len(kinds) == 1 and None not in kinds}

    def local(self, source: str) -> Typing:
        """These, with what one module defines or imports first (its `_merge`, its `check_inputs`)."""
        tree = ast.parse(source)
        imported = {a.asname or a.name: self.by_module[n.module][a.name] for n in tree.body
                    if isinstance(n, ast.ImportFrom) and n.module in self.by_module for a in n.names
                    if a.name in self.by_module[n.module]}
        return Typing(self.fields, self.objects, {**self.returns, **imported, **self._returns([tree])}, self.by_module)

    def kind_of(self, ann: ast.expr | None) -> Kind:
        ann = _annotation(ann)
        if isinstance(ann, ast.Subscript) and isinstance(ann.value, ast.Name) and ann.value.id == "tuple" \
                and isinstance(ann.slice, ast.Tuple) and not any(isinstance(e, ast.Constant) for e in ann.slice.elts):
            return tuple(self.kind_of(e) for e in ann.slice.elts)
        return self.class_of(ann) or device_annotation(ann)

    def class_of(self, ann: ast.expr | None) -> str | None:
        """The class an annotation names (`Panel`, `Panel | None`, "Panel"), when it is one of these modules'."""
        ann = _annotation(ann)
        if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
            return self.class_of(ann.left) or self.class_of(ann.right)
        return ann.id if isinstance(ann, ast.Name) and ann.id in self.fields else None


def _is_self_attr(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


class DeviceValues:
    """Which expressions of one function (or of a module's top level) hold device values, by a syntactic
    dataflow over what the code says: a call through the backend's array or frame module (`xp.any(...)`,
    `backend.xp.searchsorted`), torch or CuPy, or a method of the backend (`b.to_array(...)`); a function or
    method annotated to return a backend array, frame, series or tensor; a parameter, or a field of an object of a
    known class, annotated as one; a name bound from any of those; and what is computed from them (indexing,
    arithmetic, comparisons, their methods, helpers given one or given the backend or `xp`). Shapes, dtypes,
    lengths, identity and membership tests, what a transfer returns and what a function annotated otherwise
    returns are host values."""

    ROOT_ATTRS = frozenset({"xp", "xdf"})  # attributes that are the backend's modules
    HOST_ATTRS = frozenset({"shape", "ndim", "dtype", "dtypes", "size", "nbytes", "itemsize", "device", "name",
                            "names", "columns", "is_gpu", "is_cuda", "cuda", "kernels"})
    HOST_CALLS = frozenset({"len", "isinstance", "type", "id", "hasattr", "str", "repr", "range", "print", "sorted",
                            "list", "tuple", "set", "dict", "zip", "enumerate", *CONVERSIONS})
    HOST_ROOT_CALLS = frozenset({"finfo", "iinfo", "dtype", "device", "is_tensor", "synchronize", "result_type",
                                 "promote_types", "can_cast", "get_default_dtype", "is_available"})
    CONTAINER_METHODS = frozenset({"items", "keys", "values", "copy", "pop", "setdefault"})

    def __init__(self, scope: ast.AST, typing: Typing, cls: str | None = None) -> None:
        self.typing = typing
        self.roots: set[str] = set(LIBS)  # names bound to the backend's modules (xp = backend.xp)
        self.backends: set[str] = {"backend"}  # names bound to the backend (b = ctx.backend)
        self.data: set[str] = set()  # names bound to device values
        self.objects: dict[str, str] = {"self": cls} if cls else {}  # names bound to objects of known classes
        for node in ast.walk(scope):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                args = node.args
                for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                    if a is not None:
                        self._declare(a.arg, a.annotation)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                self._declare(node.target.id, node.annotation)
        bindings = list(self._bindings(scope))
        while True:  # to a fixed point: a name bound later may feed an earlier binding in a loop
            before = (len(self.roots), len(self.backends), len(self.data), len(self.objects))
            for target, value in bindings:
                self._bind(target, value)
            if (len(self.roots), len(self.backends), len(self.data), len(self.objects)) == before:
                return

    def _bind(self, target: ast.expr, value: ast.expr) -> None:
        names = {n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        kind = self.kind_of_call(value)
        if isinstance(target, ast.Tuple) and isinstance(kind, tuple) and len(kind) == len(target.elts):
            for t, k in zip(target.elts, kind, strict=True):  # frame, panel = build_panel(...) -> tuple[Any, Panel]
                if isinstance(t, ast.Name) and (k is True or (k is None and self.is_device(value))):
                    self.data.add(t.id)
                elif isinstance(t, ast.Name) and isinstance(k, str):
                    self.objects.setdefault(t.id, k)
        elif self.is_root(value):
            self.roots |= names
        elif self.is_backend(value):
            self.backends |= names
        elif isinstance(target, ast.Name) and (owner := self.class_of(value)):
            self.objects.setdefault(target.id, owner)
        elif self.is_device(value):
            self.data |= names

    def kind_of_call(self, node: ast.expr) -> Kind:
        """What a call's function is annotated to return (None when it is not a call or says nothing)."""
        if not isinstance(node, ast.Call):
            return None
        f = node.func
        if isinstance(f, ast.Attribute) and (self.is_root(f.value) or self.is_device(f.value)):
            return None  # xp.unique(...), x.sum(): the library's, not one of ours
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        return name if name in self.typing.fields else self.typing.returns.get(name)

    def _declare(self, name: str, ann: ast.expr | None) -> None:
        ann = _annotation(ann)
        if isinstance(ann, ast.Name) and ann.id == "Backend":
            self.backends.add(name)
        elif device_annotation(ann):
            self.data.add(name)
        elif kind := self.typing.class_of(ann):
            self.objects[name] = kind

    @staticmethod
    def _bindings(scope: ast.AST) -> Iterator[tuple[ast.expr, ast.expr]]:
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Tuple) and isinstance(node.value, ast.Tuple) \
                            and len(t.elts) == len(node.value.elts):
                        yield from zip(t.elts, node.value.elts, strict=True)
                    else:
                        yield t, node.value
            elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr) and node.value is not None:
                yield node.target, node.value
            elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
                yield node.target, node.iter
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                yield node.optional_vars, node.context_expr

    def class_of(self, node: ast.expr) -> str | None:
        """The known class of an object: a name bound to one, a field holding one, `Panel(...)`, `make() -> Panel`."""
        if isinstance(node, ast.Name):
            return self.objects.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self.class_of(node.value)
            return self.typing.objects.get(owner, {}).get(node.attr) if owner else None
        kind = self.kind_of_call(node)
        return kind if isinstance(kind, str) else None

    def is_root(self, node: ast.expr) -> bool:
        """One of the backend's modules (not data): `xp`, `torch`, `backend.xp`, `panel.xp`."""
        if isinstance(node, ast.Name):
            return node.id in self.roots
        return isinstance(node, ast.Attribute) and node.attr in self.ROOT_ATTRS

    def is_backend(self, node: ast.expr) -> bool:
        """The backend object (`backend`, `ctx.backend`, `self.backend`), whose methods make device values."""
        if isinstance(node, ast.Name):
            return node.id in self.backends
        return isinstance(node, ast.Attribute) and node.attr == "backend" and not self.is_device(node.value)

    def is_device(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.data
        if isinstance(node, ast.Attribute):
            if node.attr in self.HOST_ATTRS or self.is_root(node) or self.is_root(node.value):
                return False  # metadata; xp.float64, xp.nan, torch.float32: constants of the module
            owner = self.class_of(node.value)
            if owner:
                return node.attr in self.typing.fields[owner]
            return self.is_device(node.value)
        if isinstance(node, ast.Subscript | ast.Starred):
            return self.is_device(node.value)
        if isinstance(node, ast.BinOp):
            return self.is_device(node.left) or self.is_device(node.right)
        if isinstance(node, ast.UnaryOp):
            return self.is_device(node.operand)
        if isinstance(node, ast.BoolOp):
            return any(self.is_device(v) for v in node.values)
        if isinstance(node, ast.Compare):
            if any(isinstance(op, ast.Is | ast.IsNot | ast.In | ast.NotIn) for op in node.ops) or any(
                    isinstance(v, ast.Constant) and (v.value is None or isinstance(v.value, str))
                    for v in [node.left, *node.comparators]):
                return False  # identity, membership, or a comparison with a name or None: host
            return any(self.is_device(v) for v in [node.left, *node.comparators])
        if isinstance(node, ast.IfExp):
            return self.is_device(node.body) or self.is_device(node.orelse)
        if isinstance(node, ast.Call):
            return self._call_is_device(node)
        return False

    def _call_is_device(self, node: ast.Call) -> bool:
        f = node.func
        args = [*node.args, *(k.value for k in node.keywords)]
        kind = self.kind_of_call(node)
        if kind is not None:  # what one of our functions is annotated to return (an object is no device value)
            return kind is True or (isinstance(kind, tuple) and any(k is True for k in kind))
        if isinstance(f, ast.Name):
            if f.id in self.HOST_CALLS:
                return False  # a conversion or a builtin of host results
            # a helper (or min/max/abs) given a device value, the backend or its module: segment_ids(xp, offsets)
            return any(self.is_device(a) or self.is_root(a) or self.is_backend(a) for a in args)
        if isinstance(f, ast.Attribute):
            if f.attr in TRANSFER_METHODS | TRANSFER_NOARG_METHODS | TRANSFER_ATTRS:
                return False  # the transfer itself is flagged; what it returns is on the host
            if self.is_root(f.value):  # xp.any(...), torch.where(...), backend.xp.unique(...)
                return f.attr not in self.HOST_ROOT_CALLS
            if self.is_device(f.value):  # a method of a device value: x.sum(), (a < b).any()
                return f.attr not in self.CONTAINER_METHODS
            if self.is_backend(f.value):  # backend.to_array(...), a method not annotated otherwise
                return f.attr not in self.HOST_ROOT_CALLS
        return False


def _scopes(tree: ast.Module) -> Iterator[tuple[ast.AST, str | None]]:
    """The outermost functions (nested ones belong to them), with their class, and the module's own statements."""
    top: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node, None
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield item, node.name
                else:
                    top.append(item)
        else:
            top.append(node)
    yield ast.Module(body=top, type_ignores=[]), None


def host_transfers(source: str, typing: Typing | None = None) -> Iterator[tuple[int, int, str]]:
    """(first line, last line, what) of each device-to-host transfer in a module's source: the transfer methods
    and attributes wherever they appear; bool()/int()/float() and np.asarray()/np.array() of a device value; and
    a device value used as a truth value (if, while, assert, not, and/or) or iterated over (for, comprehensions)."""
    tree = ast.parse(source)
    typing = (typing or Typing.of({"module": source})).local(source)
    for scope, cls in _scopes(tree):
        dev = DeviceValues(scope, typing, cls)
        functions = {id(n) for f in ast.walk(scope) if f is not scope and isinstance(
            f, ast.FunctionDef | ast.AsyncFunctionDef) for n in ast.walk(f)} if isinstance(scope, ast.Module) else set()
        for node in ast.walk(scope):
            if id(node) in functions:
                continue  # a class's methods are scopes of their own
            for what, at in _transfers(dev, node):
                yield at.lineno, at.end_lineno or at.lineno, what


def _transfers(dev: DeviceValues, node: ast.AST) -> Iterator[tuple[str, ast.expr]]:
    """The transfers a node makes, each with the expression whose lines carry its mark."""
    if isinstance(node, ast.Attribute) and node.attr in TRANSFER_ATTRS:
        yield f".{node.attr}", node
    if isinstance(node, ast.Call):
        f, name = node.func, _call_name(node)
        if isinstance(f, ast.Attribute) and name in TRANSFER_METHODS:
            yield f".{name}()", node
        if isinstance(f, ast.Name) and name == "asnumpy":
            yield "asnumpy()", node
        if isinstance(f, ast.Attribute) and name in TRANSFER_NOARG_METHODS and not node.args and not node.keywords:
            yield f".{name}()", node
        if isinstance(f, ast.Name) and name in CONVERSIONS and node.args and dev.is_device(node.args[0]):
            yield f"{name}() of a device value", node
        if (isinstance(f, ast.Attribute) and name in HOST_ARRAY_CALLS and isinstance(f.value, ast.Name)
                and f.value.id in ("np", "numpy") and node.args and dev.is_device(node.args[0])):
            yield f"np.{name}() of a device value", node
    tests: list[ast.expr] = []
    if isinstance(node, ast.If | ast.While | ast.IfExp | ast.Assert):
        tests = [node.test]
    elif isinstance(node, ast.BoolOp):
        tests = node.values
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        tests = [node.operand]
    elif isinstance(node, ast.comprehension):
        tests = node.ifs
    for t in tests:
        if dev.is_device(t):
            yield "a device value as a truth value", t
            break
    if isinstance(node, ast.For | ast.AsyncFor | ast.comprehension) and dev.is_device(node.iter):
        yield "iteration over a device value", node.iter


def holds_device_data(imps: list[Import], path: Path) -> bool:
    """Whether a module can see device values at all (see DEVICE_IMPORTS)."""
    tree = ast.parse(path.read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    return bool(names & DEVICE_NAMES) or any(i.target in DEVICE_IMPORTS or i.target.split(".")[0] in DEVICE_IMPORTS
                                             for i in imps)


def check_host_transfers(root: Path) -> list[str]:
    """Every device-to-host transfer in a layer 0-2 module that can hold device data is marked `# host-ok: why`
    on one of its lines."""
    known = layers(root)
    imps = all_imports(root)
    typing = Typing.of({module: path.read_text() for module, path in modules(root)})
    wrong = []
    for module, path in modules(root):
        u = unit(root, module)
        if u not in known or known[u].number not in LIBRARY_LAYERS or not holds_device_data(imps[module], path):
            continue
        lines = path.read_text().splitlines()
        for first, last, what in sorted(set(host_transfers(path.read_text(), typing))):
            if not any(HOST_MARK.search(line) for line in lines[first - 1:last]):
                wrong.append(f"{module}:{first}: {what}: {lines[first - 1].strip()}")
    return wrong


def _resolves(root: Path, dotted: str) -> bool:
    """Whether `unit.module.name` (or `gpuetl.unit...`) names a gpuetl module, or a name one defines at its top."""
    parts = dotted.split(".")
    if parts[0] == PKG:
        parts = parts[1:]
        if len(parts) == 1 and unit(root, f"{PKG}.{parts[0]}") == FACADE:  # gpuetl.open_dataset, gpuetl.__version__
            return parts[0] in FACADE_EXPORTS or parts[0] in _top_level_names(root / PKG / "__init__.py")
    here = root / PKG
    for i, part in enumerate(parts):
        if (here / part).is_dir():
            here = here / part
        elif (here / f"{part}.py").is_file():
            here = here / f"{part}.py"
        else:
            module = here / "__init__.py" if here.is_dir() else here
            return i > 0 and i == len(parts) - 1 and module.is_file() and part in _top_level_names(module)
    return True


def check_doc_names(root: Path) -> list[str]:
    """ARCHITECTURE.md names only what exists: every `gpuetl/...` path, and every dotted name of a unit (in
    backticks, or in the data-flow diagram) is a module or a name a module defines."""
    text = (root / "ARCHITECTURE.md").read_text()
    units = set(layers(root)) | {PKG}
    paths = sorted(set(re.findall(r"`(gpuetl/[\w/.]+)`", text)))
    wrong = [f"ARCHITECTURE.md names {p}, which does not exist" for p in paths if not (root / p).exists()]
    diagram = "\n".join(re.findall(r"```\n(.*?)```", text, flags=re.S))
    names = set(re.findall(r"`([\w.]+)`", text)) | set(re.findall(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", diagram))
    for name in sorted(n for n in names if "." in n and n.split(".")[0] in units):
        if not _resolves(root, name):
            wrong.append(f"ARCHITECTURE.md names {name}, which is no gpuetl module or name")
    return wrong


CHECKS = [check_units, check_layers, check_facade, check_cycles, check_module_cycles, check_libraries,
          check_kernel_registry, check_host_transfers, check_doc_names]


# ----------------------------------------------------------------------------- the rules, on the real tree


def test_every_unit_has_a_layer() -> None:
    assert not (wrong := check_units(ROOT)), "\n".join(wrong)


def test_imports_go_down_the_layers_and_only_at_module_level() -> None:
    assert not (wrong := check_layers(ROOT)), "\n".join(wrong)


def test_the_facade_stays_light() -> None:
    assert not (wrong := check_facade(ROOT)), "\n".join(wrong)


def test_no_cycle_between_units() -> None:
    assert not (wrong := check_cycles(ROOT)), "\n".join(wrong)


def test_no_circle_between_modules() -> None:
    assert not (wrong := check_module_cycles(ROOT)), "\n".join(wrong)


def test_importlib_pandas_pylibcugraph_where_allowed() -> None:
    assert not (wrong := check_libraries(ROOT)), "\n".join(wrong)


def test_the_kernel_registry_names_existing_functions() -> None:
    targets = kernel_targets(ROOT)
    assert len(targets) >= 16, targets  # the strings are found at all (8 kernels, a CPU and a GPU version each)
    assert not (wrong := check_kernel_registry(ROOT)), "\n".join(wrong)


def test_architecture_md_names_what_exists() -> None:
    assert not (wrong := check_doc_names(ROOT)), "\n".join(wrong)


def test_device_to_host_transfers_in_the_library_are_marked() -> None:
    wrong = check_host_transfers(ROOT)
    assert not wrong, "unmarked device-to-host transfers (mark deliberate ones `# host-ok: why`):\n" + "\n".join(wrong)


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_every_module_imports_first_and_in_any_order(order: str) -> None:
    """Every module imported in a fresh interpreter, in two opposite orders (a cycle would leave some module
    half-initialised in one of them); modules of optional libraries (cuDF, CuPy, Polars) may be absent."""
    names = [m for m, _ in modules(ROOT) if m != "gpuetl.__main__"]
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
    allowed = {"cupy", "cudf", "rmm", "pylibcugraph", "cupyx", "polars", "dask_cuda", "dask_cudf", "dagster"}
    assert all(lib.split(".")[0] in allowed for _, lib in eval(done.stdout.strip())), done.stdout


# ----------------------------------------------------------------------------- a test for the test: planted breaks
# A small fake repository that keeps every rule (checked first); each planted test breaks one rule in a copy of it
# and asserts that the rule's check names the break.

FAKE_DOC = """# fake architecture

| layer | units | what they hold |
|---|---|---|
| 0 foundation | `backend`, `kernels`, `version` | the seam, the kernels, the version |
| 1 data | `lake` | the lake |
| 2a stages | `fetch`, `features` | fetch; features |
| 2b stages | `enrich` | enrichment |
| 2c stages | `tensors` | tensors |
| 5 commands | `commands` | the command line |

The facade is `gpuetl/__init__.py`; `gpuetl.open_dataset` and `gpuetl.version` exist.

```
lake.reader.read -> features.panel.count -> tensors.open_dataset
```
"""

FAKE = {
    "ARCHITECTURE.md": FAKE_DOC,
    "gpuetl/__init__.py": (
        '"""The facade."""\n\nfrom typing import Any\n\nfrom gpuetl.version import __version__\n\n'
        '__all__ = ["__version__", "open_dataset"]\n\n\n'
        "def __getattr__(name: str) -> Any:\n"
        '    if name == "open_dataset":\n'
        "        from gpuetl.tensors import open_dataset\n\n"
        "        return open_dataset\n"
        "    raise AttributeError(name)\n"),
    "gpuetl/version.py": '__version__ = "0"\n',
    "gpuetl/backend.py": (
        "import importlib\nfrom typing import Any\n\n\n"
        "def frames() -> Any:\n"
        '    return importlib.import_module("pandas")\n'),
    "gpuetl/kernels/__init__.py": (
        "import importlib\nfrom typing import Any\n\n\n"
        "def register(name: str, *, cpu: str, gpu: str) -> None:\n    pass\n\n\n"
        "def resolve(target: str) -> Any:\n"
        '    module, _, attr = target.partition(":")\n'
        "    return getattr(importlib.import_module(module), attr)\n\n\n"
        'register("twice", cpu="gpuetl.kernels.twice:twice_cpu", gpu="gpuetl.kernels.twice:twice_gpu")\n'
        'register("sqrt", cpu="numpy:sqrt", gpu="cupy:sqrt")\n'),
    "gpuetl/kernels/twice.py": (
        "import numpy as np\n\n\n"
        "def twice_cpu(x: np.ndarray) -> np.ndarray:\n    return 2 * x\n\n\n"
        "def twice_gpu(x: np.ndarray) -> np.ndarray:\n    return 2 * x\n"),
    "gpuetl/lake/__init__.py": "",
    "gpuetl/lake/reader.py": (
        "from typing import Any\n\nfrom gpuetl.backend import frames\n\n\ndef read() -> Any:\n    return frames()\n"),
    "gpuetl/fetch/__init__.py": "from gpuetl.lake.reader import read\n\n__all__ = ['read']\n",
    "gpuetl/features/__init__.py": "",
    "gpuetl/features/panel.py": (
        "from typing import Any\n\nfrom gpuetl.backend import frames\n\n\n"
        "def count(xp: Any, x: Any) -> int:\n"
        "    return int(xp.count_nonzero(x))  # host-ok: one count\n\n\n"
        "def table() -> Any:\n    return frames()\n"),
    "gpuetl/enrich/__init__.py": "from gpuetl.features.panel import count\n\n__all__ = ['count']\n",
    "gpuetl/tensors/__init__.py": (
        "from typing import Any\n\nfrom gpuetl.enrich import count\n\n\n"
        "def open_dataset() -> Any:\n    return count\n"),
    "gpuetl/commands/__init__.py": (
        "from typing import Any\n\n\n"
        "def main() -> Any:\n"
        "    from gpuetl.tensors import open_dataset\n\n"
        "    return open_dataset()\n"),
}


def fake_repo(tmp_path: Path, edits: dict[str, str] | None = None) -> Path:
    """The fake repository in tmp_path, with some files (by path) replaced."""
    for path, text in (FAKE | (edits or {})).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return tmp_path


def test_the_fake_repository_keeps_every_rule(tmp_path: Path) -> None:
    root = fake_repo(tmp_path)
    assert len(kernel_targets(root)) == 4
    assert {check.__name__: check(root) for check in CHECKS} == {check.__name__: [] for check in CHECKS}


def _with(path: str, text: str) -> dict[str, str]:
    return {path: text}


PANEL = FAKE["gpuetl/features/panel.py"]
KERNELS = FAKE["gpuetl/kernels/__init__.py"]
FACADE_SRC = FAKE["gpuetl/__init__.py"]

PLANTED = {  # what breaks -> (files replaced, the check, what its report says)
    "a layer imports one above": (
        _with("gpuetl/lake/reader.py", "from gpuetl.features.panel import count\n"),
        check_layers, "gpuetl.lake.reader:1 imports gpuetl.features.panel (layer 2a above 1)"),
    "a stage imports a later stage": (
        _with("gpuetl/features/panel.py", PANEL + "\nfrom gpuetl.enrich import count as c\n"),
        check_layers, "imports gpuetl.enrich (stage 2b above 2a)"),
    "a stage imports its sibling": (
        _with("gpuetl/fetch/__init__.py", "from gpuetl.features.panel import count\n"),
        check_layers, "gpuetl.fetch:1 imports gpuetl.features.panel (stage 2a beside 2a)"),
    "a relative import goes up": (
        _with("gpuetl/features/panel.py", PANEL + "\nfrom ..enrich import count as c\n"),
        check_layers, "imports gpuetl.enrich (stage 2b above 2a)"),
    "an import by name goes up": (
        _with("gpuetl/backend.py",
              FAKE["gpuetl/backend.py"] + '\nTENSORS = importlib.import_module("gpuetl.tensors")\n'),
        check_layers, "gpuetl.backend:8 imports by name gpuetl.tensors (layer 2c above 0)"),
    "a cycle within a layer": (
        _with("gpuetl/kernels/__init__.py", KERNELS + "\nfrom gpuetl.backend import frames\n")
        | _with("gpuetl/backend.py", FAKE["gpuetl/backend.py"] + "\nfrom gpuetl.kernels import resolve\n"),
        check_cycles, "import cycle: backend -> kernels -> backend"),
    "a circle between two modules of a unit, for annotations only": (
        _with("gpuetl/features/panel.py", PANEL + "\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                                                  "    from gpuetl.features.rows import Rows\n")
        | _with("gpuetl/features/rows.py", "from gpuetl.features import panel\n\nRows = panel.table\n"),
        check_module_cycles, "import circle between modules: gpuetl.features.panel, gpuetl.features.rows"),
    "a lazy import": (
        _with("gpuetl/lake/reader.py", "from typing import Any\n\n\ndef read() -> Any:\n"
                                        "    from gpuetl.backend import frames\n\n    return frames()\n"),
        check_layers, "gpuetl.lake.reader:5 imports gpuetl.backend inside a function"),
    "importlib by name outside backend and kernels": (
        _with("gpuetl/features/panel.py", PANEL + "\nimport importlib\n\nNP = importlib.import_module('numpy')\n"),
        check_libraries, "gpuetl.features.panel imports modules by name"),
    "pandas in a stage package": (
        _with("gpuetl/enrich/__init__.py", "import pandas as pd\n\n__all__ = ['pd']\n"),
        check_libraries, "gpuetl.enrich imports pandas"),
    "pandas from a stage package's submodule": (
        _with("gpuetl/features/panel.py", PANEL + "\nfrom pandas import DataFrame\n"),
        check_libraries, "gpuetl.features.panel imports pandas"),
    "pylibcugraph outside kernels": (
        _with("gpuetl/features/panel.py", PANEL + "\nimport pylibcugraph\n"),
        check_libraries, "gpuetl.features.panel imports pylibcugraph outside gpuetl/kernels"),
    "a kernel names a missing function": (
        _with("gpuetl/kernels/__init__.py", KERNELS + 'register("thrice", cpu="gpuetl.kernels.twice:thrice_cpu", '
                                                      'gpu="gpuetl.kernels.twice:twice_gpu")\n'),
        check_kernel_registry, "names gpuetl.kernels.twice:thrice_cpu, but gpuetl.kernels.twice defines no thrice_cpu"),
    "a kernel names a missing module": (
        _with("gpuetl/kernels/__init__.py", KERNELS + 'register("gone", cpu="gpuetl.kernels.gone:f", '
                                                      'gpu="gpuetl.kernels.twice:twice_gpu")\n'),
        check_kernel_registry, "names gpuetl.kernels.gone:f, but there is no module gpuetl.kernels.gone"),
    "a kernel names a missing library function": (
        _with("gpuetl/kernels/__init__.py", KERNELS.replace("numpy:sqrt", "numpy:no_such_sqrt")),
        check_kernel_registry, "names numpy:no_such_sqrt, but numpy has no no_such_sqrt"),
    "a kernel names a library that is not installed": (
        _with("gpuetl/kernels/__init__.py", KERNELS.replace("numpy:sqrt", "no_such_library_xyz:sqrt")),
        check_kernel_registry, "names no_such_library_xyz:sqrt, whose library is not installed"),
    "a registry string outside register() names a missing function": (
        _with("gpuetl/kernels/__init__.py", KERNELS + 'TWINS = {"half": "gpuetl.kernels.twice:half_cpu"}\n'),
        check_kernel_registry, "defines no half_cpu"),
    "a kernel's module breaks the layers": (
        _with("gpuetl/kernels/__init__.py", KERNELS + 'register("count", cpu="gpuetl.features.panel:count", '
                                                      'gpu="gpuetl.kernels.twice:twice_gpu")\n'),
        check_layers, "gpuetl.kernels:16 registers kernel gpuetl.features.panel:count, so it imports "
                      "gpuetl.features.panel (layer 2a above 0)"),
    "a kernel's module closes a cycle": (
        _with("gpuetl/kernels/__init__.py", KERNELS + 'register("read", cpu="gpuetl.backend:frames", '
                                                      'gpu="gpuetl.kernels.twice:twice_gpu")\n')
        | _with("gpuetl/backend.py", FAKE["gpuetl/backend.py"] + "\nfrom gpuetl.kernels import resolve\n"),
        check_cycles, "import cycle: backend -> kernels -> backend"),
    "a module named by a string is a library its resolver may not import": (
        _with("gpuetl/backend.py", FAKE["gpuetl/backend.py"] + '\nPAGERANK = "pylibcugraph:pagerank"\n'),
        check_libraries, "gpuetl.backend imports pylibcugraph outside gpuetl/kernels"),
    "a module imports from the facade": (
        _with("gpuetl/lake/reader.py", "from gpuetl import __version__\n"),
        check_layers, "gpuetl.lake.reader:1 imports gpuetl.__version__ from the facade"),
    "the facade imports a higher layer at its top": (
        _with("gpuetl/__init__.py", FACADE_SRC + "\nfrom gpuetl.tensors import open_dataset as _open\n"),
        check_facade, "imports gpuetl.tensors (layer 2c) at its top"),
    "the facade imports a heavy library at its top": (
        _with("gpuetl/__init__.py", FACADE_SRC + "\nimport numpy\n"),
        check_facade, "gpuetl:17 imports numpy at its top"),
    "the facade re-exports what it does not declare": (
        _with("gpuetl/__init__.py", FACADE_SRC.replace('    raise AttributeError(name)\n',
                                                       '    from gpuetl.enrich import count\n\n    return count\n')),
        check_facade, "gpuetl:15 imports count from gpuetl.enrich on first use, which FACADE_EXPORTS does not declare"),
    "a unit without a layer": (
        _with("ARCHITECTURE.md", FAKE_DOC.replace("| 2b stages | `enrich` | enrichment |\n", "")),
        check_units, "unit missing from ARCHITECTURE.md: enrich"),
    "a layer for a unit that is gone": (
        _with("ARCHITECTURE.md", FAKE_DOC.replace("`enrich`", "`enrich`, `graphs`")),
        check_units, "ARCHITECTURE.md names a unit that does not exist: graphs"),
    "the diagram names a module that is gone": (
        _with("ARCHITECTURE.md", FAKE_DOC.replace("lake.reader.read", "lake.scanner.read")),
        check_doc_names, "ARCHITECTURE.md names lake.scanner.read"),
    "the text names a function that is gone": (
        _with("ARCHITECTURE.md", FAKE_DOC.replace("`gpuetl.version`", "`features.panel.total`")),
        check_doc_names, "ARCHITECTURE.md names features.panel.total"),
    "the text names a path that is gone": (
        _with("ARCHITECTURE.md", FAKE_DOC.replace("`gpuetl/__init__.py`", "`gpuetl/facade.py`")),
        check_doc_names, "ARCHITECTURE.md names gpuetl/facade.py, which does not exist"),
    "an unmarked transfer in a stage": (
        _with("gpuetl/features/panel.py", PANEL + "\n\ndef first(xp: Any, x: Any) -> float:\n"
                                                  "    return float(xp.sort(x)[0])\n"),
        check_host_transfers, "gpuetl.features.panel:15: float() of a device value"),
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_a_planted_break_is_reported(tmp_path: Path, name: str) -> None:
    edits, check, expected = PLANTED[name]
    wrong = check(fake_repo(tmp_path, edits))
    assert any(expected in w for w in wrong), f"{check.__name__} missed the planted break ({name}):\n{wrong}"


# Each form of device-to-host transfer, unmarked in a module of a stage: (the source's body, what is reported).
# The function's parameters: `x: Array` (a backend array), `t: torch.Tensor`, `b: Backend`, `xp` (the module).
TRANSFERS = {
    "x.get()": ".get()",
    "x.to_pandas()": ".to_pandas()",
    "x.to_numpy()": ".to_numpy()",
    "x.to_numpy(dtype='float64')": ".to_numpy()",
    "x.to_arrow()": ".to_arrow()",
    "x.values_host": ".values_host",
    "b.to_host(x)": ".to_host",
    "cupy.asnumpy(x)": ".asnumpy()",
    "t.cpu()": ".cpu()",
    "t.detach().numpy()": ".numpy()",
    "t.sum().item()": ".item()",
    "x.tolist()": ".tolist()",
    "bool(xp.any(x))": "bool() of a device value",
    "bool((x > 0).any())": "bool() of a device value",
    "int(xp.count_nonzero(x))": "int() of a device value",
    "int(x[-1])": "int() of a device value",
    "float(x.max())": "float() of a device value",
    "float(torch.mean(t))": "float() of a device value",
    "int(t.sum())": "int() of a device value",
    "np.asarray(x)": "np.asarray() of a device value",
    "np.array(xp.cumsum(x))": "np.array() of a device value",
    "int(b.to_array(s)[0])": "int() of a device value",
    "int(min(x.min(), x.max()))": "int() of a device value",
    "int(helper(xp, x))": "int() of a device value",
    "int(column().sum())": "int() of a device value",
    "int(Holder(x).values[0])": "int() of a device value",
    "1 if xp.any(x) else 0": "a device value as a truth value",
    "[v for v in x if v > 0]": "iteration over a device value",
    "not (x > 0).all()": "a device value as a truth value",
    "x.any() and 1": "a device value as a truth value",
}
TRANSFER_STATEMENTS = {
    "if xp.any(x):\n        pass": "a device value as a truth value",
    "while (x > 0).any():\n        x = x - 1": "a device value as a truth value",
    "assert xp.all(x > 0)": "a device value as a truth value",
    "for v in xp.unique(x):\n        print(v)": "iteration over a device value",
    "y = xp.zeros(3)\n    z = y + 1\n    print(int(z[0]))": "int() of a device value",
    "frame, holder = pair(x)\n    print(int(holder.values[0]))": "int() of a device value",
}
# ... and what is no transfer, or is marked (each must not be reported):
NOT_TRANSFERS = [
    "int(x.shape[0])", "len(x)", "int(n)", "float(np.sum(h))", "bool(flag)", "int(x.ndim)",
    "1 if x is None else 0", "1 if name == 'a' else 0", "int(xp.iinfo(xp.int64).max)",
    "bool(xp.any(x))  # host-ok: one flag, a declaration check", "x.sum()", "xp.where(x > 0, x, 0)",
    "int(Holder(x).n)", "float(torch.cuda.max_memory_allocated())", "int(pair(x)[0].size)",
    "[k for k in {'a': x}]", "1 if 'a' in {'a': x} else 0", "sorted(int(v) for v in h)",
]
TRANSFER_SOURCE = '''from typing import Any

import numpy as np
import torch

from gpuetl.arrays import Array
from gpuetl.backend import Backend


class Holder:
    values: Array
    n: int

    def __init__(self, values: Array) -> None:
        self.values = values
        self.n = len(values)


def helper(xp: Any, x: Any) -> Any:
    return xp.cumsum(x)


def column() -> Array:
    return Array()


def pair(x: Array) -> tuple[Any, Holder]:
    return x, Holder(x)


def f(x: Array, t: torch.Tensor, b: Backend, xp: Any, s: Any, h: np.ndarray, n: int, flag: bool, name: str,
      cupy: Any) -> Any:
    {body}
'''


@pytest.mark.parametrize("body", sorted(TRANSFERS))
def test_each_transfer_form_is_seen(body: str) -> None:
    found = list(host_transfers(TRANSFER_SOURCE.format(body=f"return {body}")))
    assert any(what.startswith(TRANSFERS[body]) for _, _, what in found), found


@pytest.mark.parametrize("body", sorted(TRANSFER_STATEMENTS))
def test_each_transfer_statement_is_seen(body: str) -> None:
    found = list(host_transfers(TRANSFER_SOURCE.format(body=body)))
    assert any(what.startswith(TRANSFER_STATEMENTS[body]) for _, _, what in found), found


@pytest.mark.parametrize("body", NOT_TRANSFERS)
def test_host_values_and_marked_transfers_pass(tmp_path: Path, body: str) -> None:
    source = TRANSFER_SOURCE.format(body=f"return {body}")
    root = fake_repo(tmp_path, {"gpuetl/features/panel.py": source})
    assert not check_host_transfers(root)


def test_a_mark_needs_a_reason(tmp_path: Path) -> None:
    source = TRANSFER_SOURCE.format(body="return bool(xp.any(x))  # host-ok:")
    assert check_host_transfers(fake_repo(tmp_path, {"gpuetl/features/panel.py": source}))


def test_a_module_that_never_holds_device_data_is_not_checked(tmp_path: Path) -> None:
    host = "import numpy as np\n\n\ndef codes(h: np.ndarray) -> list[int]:\n    return [int(v) for v in h.tolist()]\n"
    root = fake_repo(tmp_path, {"gpuetl/fetch/__init__.py": host})
    assert not check_host_transfers(root)
    root = fake_repo(tmp_path, {"gpuetl/fetch/__init__.py": "from gpuetl.backend import frames\n" + host})
    assert check_host_transfers(root) == ["gpuetl.fetch:6: .tolist(): return [int(v) for v in h.tolist()]"]
