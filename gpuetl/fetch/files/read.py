"""Finding and reading the files an import names: CSV, gzipped CSV or Parquet, given as files, folders or globs.

CSV is read with every column as text (codes keep their leading zeros, `DiscNo` stays a string, and a value that
is not a number is seen, not inferred away); an unquoted empty field is null, a quoted `""` an empty string, as
pyarrow writes them. Parquet keeps its own types (converted per field by `rows`). Anything that cannot be read
is an `InputError` naming the file, raised before the lake is touched.
"""

from __future__ import annotations

import csv
import glob
import io
import re
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gpuetl.fetch.files import SUFFIXES

_GLOB = re.compile(r"[*?\[]")
_HEADER_BYTES = 1 << 16


class InputError(ValueError):
    """An input that does not exist or cannot be read (a usage error: exit 2)."""


def kind(path: Path) -> str | None:
    """"csv" or "parquet" by the file's name, or None for a file the import does not read."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return None


def stem(path: Path) -> str:
    """The name without its data suffix (`7203.csv.gz` -> `7203`)."""
    name = path.name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def expand(paths: Sequence[str]) -> list[Path]:
    """Every data file `paths` name (a file, a folder searched recursively, a glob), sorted and without repeats; an
    InputError for a path that does not exist, a glob or folder with no data file, or a file of another type."""
    if not paths:
        raise InputError("no input: name the files, folders or globs to import")
    found: dict[Path, None] = {}
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and kind(p) and not p.name.startswith("."))
            if not files:
                raise InputError(f"{arg}: the folder holds no {', '.join(SUFFIXES)} file")
        elif path.is_file():
            if kind(path) is None:
                raise InputError(f"{arg}: not a {', '.join(SUFFIXES)} file")
            files = [path]
        elif _GLOB.search(arg):
            files = sorted(Path(p) for p in glob.glob(arg, recursive=True) if Path(p).is_file() and kind(Path(p)))
            if not files:
                raise InputError(f"{arg}: no {', '.join(SUFFIXES)} file matches")
        elif path.exists():
            raise InputError(f"{arg}: not a file or folder")
        else:
            raise InputError(f"{arg}: no such file or folder")
        found.update(dict.fromkeys(p.resolve() for p in files))
    return list(found)


def header(path: Path, encoding: str) -> list[str]:
    """The file's column names (the first CSV line; the Parquet schema)."""
    try:
        if kind(path) == "parquet":
            return list(pq.read_schema(path).names)
        with pa.input_stream(str(path), compression="detect") as stream:
            head = stream.read(_HEADER_BYTES).split(b"\n", 1)[0].decode(encoding)
    except (OSError, pa.ArrowException, UnicodeDecodeError, LookupError) as err:
        raise InputError(f"{path}: cannot be read ({_reason(err)})") from err
    first = next(csv.reader(io.StringIO(head.lstrip("\ufeff").rstrip("\r"))), None)
    if not first or not any(c.strip() for c in first):
        raise InputError(f"{path}: has no header line (column names)")
    names = [c.strip() for c in first]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"{path}: the header names {', '.join(twice)} more than once")
    return names


def read(path: Path, columns: Sequence[str], encoding: str) -> pa.Table:
    """`columns` of the file (CSV: as text)."""
    try:
        if kind(path) == "parquet":
            return pq.read_table(path, columns=list(columns))
        names = header(path, encoding)
        return pacsv.read_csv(
            str(path),
            read_options=pacsv.ReadOptions(encoding=encoding, column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), include_columns=list(columns),
                strings_can_be_null=True, quoted_strings_can_be_null=False, null_values=[""]))
    except (OSError, pa.ArrowException, UnicodeDecodeError, LookupError) as err:
        raise InputError(f"{path}: cannot be read ({_reason(err)})") from err


def _reason(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:160] if text else type(err).__name__
