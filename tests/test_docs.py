"""The documentation stays true to the tree: its links lead somewhere, the README stays short, and
docs/design.md's tables name files and names that exist."""

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sweeper"
README = ROOT / "README.md"
DESIGN = ROOT / "docs" / "design.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 260

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)
CODE_BLOCK = re.compile(r"^```.*?^```", re.S | re.M)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SOURCE_SUFFIXES = (".py", ".c", ".h", ".mako")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@cache
def _anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", CODE_BLOCK.sub("", page.read_text()), re.M):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return frozenset(anchors)


def _links(page: Path) -> list[str]:
    text = CODE_BLOCK.sub("", page.read_text())
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # not http:, mailto:


def _broken(page: Path) -> list[str]:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (file.suffix != ".md" or anchor not in _anchors(file)):
            broken.append(f"{target}: no heading #{anchor}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page):
    assert _links(page) or page.name == "design.md", "a page that links nowhere: the README's links were lost"
    assert _broken(page) == []


def test_a_broken_link_or_anchor_is_found(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## What `query` guarantees\n")
    page.write_text(
        "# Page\n[a](other.md#what-query-guarantees) [b](other.md#nowhere) [c](missing.md) [d](#page) "
        "[e](#nowhere) [f](https://example.org/x#y)\n```\n[g](in-a-code-block.md)\n```\n"
    )
    assert _broken(page) == [
        "other.md#nowhere: no heading #nowhere",
        "missing.md: no such file",
        "#nowhere: no heading #nowhere",
    ]


def test_the_readme_reads_in_one_sitting():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to a page of docs/"


def test_the_readmes_first_commands_are_targets_of_the_makefile():
    first_block = re.search(r"^```bash\n(.*?)^```", README.read_text(), re.S | re.M)[1]
    commands = re.findall(r"^make (\w+)", first_block, re.M)
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    assert commands == ["run", "test"]
    assert set(commands) <= targets


# docs/design.md's tables: the package table and "Where each kind of change lands".


def _table(text: str, header: str) -> list[list[str]]:
    """The rows (cells) of the Markdown table whose header row starts with ``| header |``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def _resolve(name: str, folders: list[Path]) -> list[Path]:
    """What a path of the tables names: ``tests/...`` and ``sweeper/...`` from the root, others in the
    first of ``folders`` that has it, else in sweeper/ (``noise/spec.py``); globs match files."""
    bases = [ROOT] if name.startswith(("tests/", "sweeper/")) else [*folders, PACKAGE, ROOT]
    for base in bases:
        found = sorted(base.glob(name)) if "*" in name else [base / name] if (base / name).exists() else []
        if found:
            return found
    return []


def _is_path(token: str) -> bool:
    return "/" in token or token.endswith(SOURCE_SUFFIXES)


@cache
def _defined(file: Path) -> frozenset[str]:
    """The names a file defines: Python functions and classes at any level, names assigned outside
    functions (module and class attributes; a package: its ``__init__.py``); C and templates: every word."""
    if file.is_dir():
        file = file / "__init__.py"
    if file.suffix != ".py":
        return frozenset(re.findall(r"\w+", file.read_text()))
    names = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(child.name)
            elif isinstance(child, (ast.Assign, ast.AnnAssign)) and not in_function:
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                names.update(n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(file.read_text()), in_function=False)
    return frozenset(names)


def _stale(cell: str, folder: Path) -> list[str]:
    """What one cell of the tables names that the tree lacks. A path names a file or folder; a bare
    file name is in the folder of the path before it, else in ``folder``; an identifier must be defined
    in the file named last before it (``KINDS`` after ``noise/spec.py``); ``module.name`` in
    ``module.py`` of ``folder``."""
    stale, last = [], None
    for token in re.findall(r"`([^`]+)`", cell):
        if _is_path(token):
            found = _resolve(token, [last.parent, folder] if last and "/" not in token else [folder])
            if not found:
                stale.append(f"`{token}`: no such file or folder")
                last = None  # what follows is not checked against the wrong file
                continue
            last = found[0]
        elif IDENTIFIER.fullmatch(token) and last is not None and (last.is_dir() or last.suffix in SOURCE_SUFFIXES):
            checkable = not last.is_dir() or (last / "__init__.py").exists()
            if checkable and token not in _defined(last):
                stale.append(f"`{token}`: not defined in {last.relative_to(ROOT)}")
        elif re.fullmatch(r"\w+\.\w+", token):
            module, name = token.split(".")
            file = folder / f"{module}.py"
            if file.exists() and name not in _defined(file):
                stale.append(f"`{token}`: not defined in {file.relative_to(ROOT)}")
    return stale


def _design_rows() -> list[tuple[str, Path, str]]:
    """(row label, folder its paths are relative to, cell) for every cell of the two tables."""
    text = DESIGN.read_text()
    rows = []
    for package, holds in _table(text, "package"):
        path = ROOT / package.strip("`")
        rows.append((package, path if path.is_dir() else path.parent, package))
        rows.append((package, path if path.is_dir() else path.parent, holds))
    for change, where in _table(text, "change"):
        rows.append((change, PACKAGE, where))
    return rows


def test_design_md_tables_name_only_files_and_names_that_exist():
    rows = _design_rows()
    assert len(rows) >= 2 * 10 + 10, "docs/design.md lost its package table or its table of changes"
    stale = [f"{label}: {problem}" for label, folder, cell in rows for problem in _stale(cell, folder)]
    assert stale == []


def test_a_stale_design_row_is_found(tmp_path, monkeypatch):
    package = tmp_path / "sweeper"
    (package / "noise" / "_c").mkdir(parents=True)
    (package / "noise" / "spec.py").write_text("KINDS = {}\n\n\nclass NoiseSpec:\n    relative: bool = False\n")
    (package / "noise" / "_c" / "philox.c").write_text("void philox_fill(void) {}\n")
    (package / "noise" / "_c" / "philox.h").write_text("void philox_fill(void);\n")
    (package / "metrics.py").write_text("def metric(name):\n    local = name\n    return local\n")
    (tmp_path / "tests" / "noise").mkdir(parents=True)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGE", package)
    noise = package / "noise"
    cell = "`noise/spec.py` (`KINDS`, `NoiseSpec`), `noise/_c/philox.c`, `philox.h` (`philox_fill`), `tests/noise/`"
    assert _stale(cell, package) == []
    assert _stale("`spec.py` (`KINDS`), `metrics.py` (`metric`, `local`), `spec.metric`, `spec.KINDS`", noise) == [
        "`local`: not defined in sweeper/metrics.py",
        "`spec.metric`: not defined in sweeper/noise/spec.py",
    ]
    assert _stale("`noise/spec.py` (`RULES`), `noise/gone.py`, `tests/gone/`, `_c/philox.c` (`gone`)", package) == [
        "`RULES`: not defined in sweeper/noise/spec.py",
        "`noise/gone.py`: no such file or folder",
        "`tests/gone/`: no such file or folder",
        "`_c/philox.c`: no such file or folder",
    ]
