"""The README and docs/ hold together: every relative link and image resolves inside the clone (anchors to a
heading of their target), the README stays a short user's guide, every docs page is reachable from it, and
nothing in the project points outside the clone (at the sibling `shared` folder a session has but a clone
does not)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 300
OUTSIDE = "../" + "shared"  # spelled in two parts so this file does not match itself
SCANNED = ("README.md", "ARCHITECTURE.md", "Makefile", "Dockerfile", "pyproject.toml", "environment.yml",
           "docs", "gpuetl", "configs", "kernels", "benchmarks", "tests")
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".toml", ".cu", ".cuh", ".h", ".sh", ".txt", ".cfg", ".json"}
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"}

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+).*?\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def links(text: str) -> Iterator[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition outside code."""
    for number, raw in prose_lines(text):
        line = INLINE_CODE.sub("", raw)
        for match in INLINE_LINK.finditer(line):
            yield number, match.group(1)
        definition = REFERENCE_DEF.match(line)
        if definition:
            yield number, definition.group(1)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        heading = HEADING.match(line)
        if not heading:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Every relative link or image of a Markdown file that does not resolve inside `root`, as 'file:line: why'."""
    problems = []
    for number, target in links(path.read_text(encoding="utf-8")):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # an external address: not checked here
        where = f"{path.relative_to(root)}:{number}: {target}"
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.is_relative_to(root.resolve()):
            problems.append(f"{where}: points outside the project (a clone does not have it)")
        elif not resolved.exists():
            problems.append(f"{where}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{where}: no heading with the anchor #{anchor}")
    return problems


def project_text_files() -> Iterator[Path]:
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            yield path
        elif path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.is_file() and file.suffix in TEXT_SUFFIXES and not SKIPPED_DIRS & set(file.parts):
                    yield file


def test_every_relative_link_in_the_readme_and_docs_resolves() -> None:
    assert DOCS.is_dir(), "docs/ is missing"
    problems = [problem for path in markdown_files() for problem in broken_links(path)]
    assert not problems, "\n".join(problems)


def test_the_readme_is_a_short_guide_that_links_every_docs_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines (at most {MAX_README_LINES})"
    linked = {(README.parent / target.partition("#")[0]).resolve()
              for _, target in links(README.read_text(encoding="utf-8")) if not SCHEME.match(target)}
    unlinked = [str(page.relative_to(ROOT)) for page in sorted(DOCS.rglob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_nothing_in_the_project_points_at_the_shared_folder_outside_it() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for path in project_text_files()
                 for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
                 if OUTSIDE in line]
    assert not offenders, f"{OUTSIDE} is not in a clone: {offenders}"


@pytest.mark.parametrize(("text", "why"), [
    ("see [the guide](docs/nowhere.md)", "no such file"),
    ("![chart](img/missing.png)", "no such file"),
    ("see [the notes](" + OUTSIDE + "/DESIGN.md)", "points outside the project"),
    ("see [a part](other.md#no-such-part)", "no heading with the anchor #no-such-part"),
    ("[notes]: docs/gone.md", "no such file"),
])
def test_the_link_check_finds_a_planted_broken_link(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## A part\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(f"# Page\n\n{text}\n\n```\n[in code](not/checked.md)\n```\n`[inline](not/checked.md)`\n"
                    "[fine](other.md#a-part) [web](https://example.com/x.md) [self](#page)\n", encoding="utf-8")
    problems = broken_links(page, root=tmp_path)
    assert len(problems) == 1 and why in problems[0], problems


def test_anchors_follow_github_slugs() -> None:
    assert slug("Quick start (fresh machine, CPU)") == "quick-start-fresh-machine-cpu"
    assert slug("How the default came about (seed 7)") == "how-the-default-came-about-seed-7"
    assert slug("Scaling out (Dask)") == "scaling-out-dask"
    assert slug("`gpuetl train`: the run folder") == "gpuetl-train-the-run-folder"
