"""The user documentation stays true to the code: every ```python block in docs/*.md and README.md
parses, every import of a perdure name in them resolves, and every relative link between the pages
points to a file that exists (and, with a #fragment, to a heading of that page).

A block preceded by ``<!-- not-a-test -->`` is deliberately partial and only has to exist.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]

BLOCK = re.compile(
    r"(?P<skip><!--\s*not-a-test\s*-->\s*)?^```python\n(?P<code>.*?)^```", re.S | re.M
)
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
URL_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:")


def _blocks(page: Path) -> list[tuple[int, str]]:
    """(line number, code) of each python block that is not marked not-a-test."""
    text = page.read_text()
    return [
        (text.count("\n", 0, m.start("code")) + 1, m.group("code"))
        for m in BLOCK.finditer(text)
        if not m.group("skip")
    ]


def _anchors(page: Path) -> set[str]:
    """GitHub-style anchors of a page's headings (outside code blocks)."""
    anchors, in_code = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif line.startswith("#") and not in_code:
            title = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower())
            anchors.add(title.replace(" ", "-"))
    return anchors


def _import_problems(where: str, tree: ast.AST) -> list[str]:
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [(node.module, [alias.name for alias in node.names])]
        else:
            continue
        for module_name, names in modules:
            if module_name.split(".")[0] != "perdure":
                continue
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                problems.append(f"{where}: import {module_name}: {exc}")
                continue
            problems += [
                f"{where}: from {module_name} import {name}: no such name"
                for name in names
                if name != "*" and not hasattr(module, name)
            ]
    return problems


def block_problems(page: Path) -> list[str]:
    """Why python blocks of ``page`` do not parse or import perdure names that do not exist."""
    problems = []
    for line, code in _blocks(page):
        where = f"{page.name}:{line}"
        try:
            tree = ast.parse(code, filename=where)
        except SyntaxError as exc:
            problems.append(f"{where}: does not parse: {exc.msg}")
            continue
        problems += _import_problems(where, tree)
    return problems


def link_problems(page: Path) -> list[str]:
    """Relative links of ``page`` to missing files or missing headings."""
    problems = []
    for match in LINK.finditer(page.read_text()):
        target = match.group("target")
        if URL_SCHEME.match(target):
            continue
        path_part, _, fragment = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            problems.append(f"{page.name}: {target} points to a missing file")
        elif fragment and linked.suffix == ".md" and fragment not in _anchors(linked):
            problems.append(f"{page.name}: {target}: no heading #{fragment} in {linked.name}")
    return problems


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO)) for p in paths]


def test_every_documented_page_exists() -> None:
    names = {p.relative_to(REPO).as_posix() for p in PAGES}
    pages = (
        "README",
        "sdk",
        "client",
        "server",
        "compatibility",
        "operations",
        "cli",
        "dev",
        "testing",
    )
    assert {f"docs/{n}.md" for n in pages} <= names


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_python_blocks_parse_and_their_perdure_imports_resolve(page: Path) -> None:
    assert block_problems(page) == []


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_relative_links_point_to_existing_files_and_headings(page: Path) -> None:
    assert link_problems(page) == []


def test_the_checks_report_broken_blocks_imports_and_links(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("## A heading\n\n```sh\n# not a heading\n```\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[ok](other.md#a-heading) [self](#page) [web](https://example.com/x.md)\n"
        "[gone](missing.md) [in code](other.md#not-a-heading)\n\n"
        "```python\ndef broken(:\n```\n\n"
        "```python\nfrom perdure import NoSuchThing, Service\nimport perdure.nowhere\n```\n\n"
        "<!-- not-a-test -->\n```python\nnot python at all\n```\n"
    )
    assert link_problems(page) == [
        "page.md: missing.md points to a missing file",
        "page.md: other.md#not-a-heading: no heading #not-a-heading in other.md",
    ]
    problems = block_problems(page)
    assert len(problems) == 3, problems
    assert problems[0].startswith("page.md:7: does not parse")
    assert problems[1] == "page.md:11: from perdure import NoSuchThing: no such name"
    assert problems[2].startswith("page.md:11: import perdure.nowhere: No module named")
