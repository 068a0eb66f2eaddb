"""The tree shows the architecture: imports run one way, as docs/architecture.md draws them.

Every module's imports are read from its source (functions' own imports included), so the test
imports nothing and fails on the first import that points up the table.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "observer"

# A module may import its own layer and those below it.
LAYERS: dict[str, int] = {
    "observer.__main__": 8,
    "observer.app": 8,
    "observer.cli": 8,
    "observer.web": 7,
    "observer.sources": 6,
    "observer.recorder": 5,
    "observer.incidents": 5,
    "observer.leadtime": 4,
    "observer.forges": 3,
    "observer.teams": 3,
    "observer.metrics": 2,
    "observer.state": 2,
    "observer.ops": 1,
    "observer.settings": 0,
    "observer.domain": 0,
    "observer": 0,
}
# Settings are validated at start, so that a bad one stops the process there: their validators
# parse what the settings name, with the parsers of the modules that use them.
ALLOWED = {
    ("observer.settings", "observer.teams.file"),
    ("observer.settings", "observer.forges.github.keys"),
    ("observer.settings", "observer.sources.alertmanager.matchers"),
}


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """The package or top-level module a module belongs to, as LAYERS names it."""
    for length in (2, 1):
        candidate = ".".join(module.split(".")[:length])
        if candidate in LAYERS:
            return candidate
    raise AssertionError(f"{module} has no place in the layers of docs/architecture.md")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "observer":
                found.update(f"observer.{alias.name}" for alias in node.names)
            elif node.module.startswith("observer."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("observer."))
    return found


def _wrong_way() -> list[str]:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _name(path)
        unit = _unit(module)
        for imported in sorted(_imports(path)):
            if imported == "observer.__version__" or (module, imported) in ALLOWED:
                continue
            target = _unit(imported)
            if target == unit:
                continue
            if LAYERS[target] > LAYERS[unit]:
                wrong.append(f"{module} imports {imported}")
    return wrong


def test_imports_point_down_the_layers() -> None:
    assert _wrong_way() == []


def test_every_package_has_a_layer() -> None:
    packages = {_name(path.parent) for path in PACKAGE.rglob("__init__.py")}
    for package in packages:
        _unit(package)
    top_level = {_name(path) for path in PACKAGE.glob("*.py")}
    assert all(_unit(module) for module in top_level)


def test_the_check_sees_an_import_that_points_up(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text("from observer.web.pipeline import Pipeline\n")
    assert _imports(module) == {"observer.web.pipeline"}
    assert LAYERS[_unit("observer.web.pipeline")] > LAYERS[_unit("observer.state.base")]
