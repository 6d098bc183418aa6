"""Imports go one way: a layer imports the layers below it and the vocabulary everyone shares, never one
above it, and no two packages import each other (docs/design.md, "Data flows one way")."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import sweeper

ROOT = Path(sweeper.__file__).parent

#: Top to bottom. A module may import its own layer's modules and those of any layer below its own.
LAYERS = (
    ("cli", {"cli", "listing", "__main__"}),
    ("report", {"report"}),
    ("driver", {"driver"}),
    ("engine", {"engine"}),
    ("store", {"store"}),
    ("space", {"space"}),  # the search-space file: the store words how a resumed one changed
    ("stats", {"stats"}),
    # the vocabulary every layer shares (``sweeper`` is the package's own __init__: its version)
    (
        "vocabulary",
        {"records", "metrics", "noise", "tasks", "seeding", "errors", "regular_files", "_native", "sweeper"},
    ),
)
RANK = {package: rank for rank, (_, packages) in enumerate(LAYERS) for package in packages}


def package_of(module: str) -> str:
    """``sweeper.driver.sweep`` -> ``driver``; ``sweeper.records`` -> ``records``; ``sweeper`` -> ``sweeper``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """Every ``sweeper`` module ``path`` (module ``module``) imports, at any depth (inside functions too),
    with its line; imports under ``if TYPE_CHECKING:`` are for annotations only and do not count."""
    module = module or module_name(path)
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "sweeper")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] == "sweeper":
                found.append((node.lineno, base))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def edges() -> list[tuple[str, int, str, str]]:
    """(file, line, importing package, imported package) for every import that crosses packages."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:  # Alembic's revisions import nothing of sweeper's layers
            continue
        source = package_of(module_name(path))
        for line, target in imported(path):
            if package_of(target) != source:
                found.append((str(path.relative_to(ROOT.parent)), line, source, package_of(target)))
    return found


def test_every_package_has_a_layer():
    packages = {package_of(module_name(p)) for p in ROOT.rglob("*.py") if "migrations" not in p.parts}
    assert packages <= set(RANK), f"give these a layer in LAYERS: {sorted(packages - set(RANK))}"


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{file}:{line}: {source} imports {target}"
        for file, line, source, target in edges()
        if RANK[target] < RANK[source]  # a smaller rank is a higher layer
    ]
    assert upward == []


def test_no_two_packages_import_each_other():
    graph: dict[str, set[str]] = {}
    for _, _, source, target in edges():
        graph.setdefault(source, set()).add(target)

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    return path + [start]
                if nxt not in path:
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = [c for c in map(cycle_from, sorted(graph)) if c is not None]
    assert cycles == [], " ; ".join(" -> ".join(c) for c in cycles)


def test_the_check_finds_an_upward_import(tmp_path):
    """The walk sees imports inside functions and skips TYPE_CHECKING blocks."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from sweeper.report import build\n"
        "def f():\n    from sweeper.driver import sweep\n    from . import _rows\n"
    )
    assert imported(probe, "sweeper.store.probe") == [(5, "sweeper.driver"), (6, "sweeper.store")]
    assert RANK["driver"] < RANK["store"]  # so the store importing the driver is refused


def test_the_report_reads_only_the_store():
    """Not even inside a function: the report needs nothing of the driver or the trainers."""
    reaching = [
        f"{file}:{line}: report imports {target}"
        for file, line, source, target in edges()
        if source == "report" and target in ("driver", "engine")
    ]
    assert reaching == []


def test_the_report_imports_neither_driver_nor_engine_nor_torch():
    code = (
        "import sys\n"
        "import sweeper.report, sweeper.report.command, sweeper.stats.comparisons\n"
        "above = ('sweeper.driver', 'sweeper.engine')\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith(above))\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
