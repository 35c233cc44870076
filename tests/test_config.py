"""Config loading: YAML defaults, `--set` overrides, and errors that name the key path."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Literal

import pytest

from gpuetl.config import ConfigError, Settings, apply_overrides, from_dict, load, load_settings, to_dict


@dataclasses.dataclass(frozen=True)
class Inner:
    size: int
    ratio: float
    names: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Outer:
    mode: Literal["a", "b"]
    flag: bool
    inner: Inner
    label: str | None


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


GOOD = """
mode: a
flag: true
inner: {size: 3, ratio: 0.5, names: [x, y]}
label: null
"""


def test_defaults_file_loads_into_settings() -> None:
    s = load_settings()
    assert isinstance(s, Settings)
    assert s.backend in ("auto", "gpu", "cpu")
    assert s.gpu.rmm_pool.endswith("%") or s.gpu.rmm_pool[-1].isalpha()
    assert to_dict(s)["paths"]["lake"] == s.paths.lake


def test_nested_load_with_types(tmp_path: Path) -> None:
    cfg = load(Outer, _write(tmp_path, GOOD))
    assert cfg == Outer("a", True, Inner(3, 0.5, ("x", "y")), None)


def test_overrides_merge_deep_and_parse_yaml_scalars(tmp_path: Path) -> None:
    cfg = load(Outer, _write(tmp_path, GOOD), ["inner.size=7", "flag=false", "inner.names=[p]", "label=hi"])
    assert cfg.inner == Inner(7, 0.5, ("p",))
    assert cfg.flag is False
    assert cfg.label == "hi"


def test_exponent_floats_without_a_dot_are_numbers(tmp_path: Path) -> None:
    """PyYAML (YAML 1.1) reads 1e-3 as a string; a float field takes it as the number it is, not a string."""
    cfg = load(Outer, _write(tmp_path, GOOD), ["inner.ratio=1e-3"])
    assert cfg.inner.ratio == 0.001
    for bad in ("e3", "1e", "fast"):
        with pytest.raises(ConfigError, match=r"inner\.ratio: expected a number"):
            load(Outer, _write(tmp_path, GOOD), [f"inner.ratio={bad}"])


def test_overrides_do_not_mutate_input() -> None:
    base = {"a": {"b": 1}}
    out = apply_overrides(base, ["a.b=2", "a.c=x"])
    assert base == {"a": {"b": 1}}
    assert out == {"a": {"b": 2, "c": "x"}}


def test_settings_overrides_on_real_defaults() -> None:
    s = load_settings(overrides=["backend=cpu", "gpu.rmm_pool=40GB", "gpu.device=1"])
    assert (s.backend, s.gpu.rmm_pool, s.gpu.device) == ("cpu", "40GB", 1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["inner.sise=3"], r"unknown key\(s\) inner\.sise; valid keys at inner: size, ratio, names"),
        (["colour=red"], r"unknown key\(s\) colour; valid keys at <root>: mode, flag, inner, label"),
        (["mode=c"], r"mode: 'c' is not one of 'a', 'b'"),
        (["inner.size=big"], r"inner\.size: expected an integer, got 'big'"),
        (["inner.size=true"], r"inner\.size: expected an integer"),
        (["flag=1"], r"flag: expected true/false, got 1"),
        (["inner.names=3"], r"inner\.names: expected a list"),
        (["flag.x=1"], r"flag is a value, not a section"),
        (["novalue"], r"not of the form key\.path=value"),
    ],
)
def test_errors_name_the_key_path(tmp_path: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(Outer, _write(tmp_path, GOOD), overrides)


def test_missing_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"missing key inner\.ratio"):
        from_dict(Outer, {"mode": "a", "flag": True, "label": None, "inner": {"size": 1, "names": []}})


def test_error_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + "extra: 1\n")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load(Outer, path)


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load(Outer, tmp_path / "nope.yaml")
