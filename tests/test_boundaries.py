"""The package's architecture, enforced: the core never reaches into the app, and core modules form no import loop.

Read from the source (an AST scan of every import, lazy ones inside functions
included), so a forbidden import fails here even on a path no other test runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tui_cifar"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it, as absolute dotted names."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from . import store`
    return found


def _core_files() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "tui" not in p.relative_to(PACKAGE).parts[:-1]]


# The command line opens the app when given no command: its one way in, imported lazily.
ENTRY_POINT = ("commands.py", {"tui_cifar.tui.app", "tui_cifar.tui.app.run_app"})


def test_the_core_never_imports_textual_or_the_app():
    offenders = []
    for path in _core_files():
        for name in _imports(path):
            if name.split(".")[0] == "textual" or name == "tui_cifar.tui" or name.startswith("tui_cifar.tui."):
                if not (path.name == ENTRY_POINT[0] and name in ENTRY_POINT[1]):
                    offenders.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert offenders == []


def test_the_core_has_no_import_cycle():
    modules = {_module_name(p): p for p in _core_files()}
    # A module's own parent packages are imported before it by Python itself (`from . import x` names the
    # package too): not an edge a design can remove, so the package's lazy `RunLogger` export is no loop.
    graph = {m: sorted({n for n in _imports(p) if n in modules and n != m and not m.startswith(f"{n}.")})
             for m, p in modules.items()}
    cycles = []

    def visit(node: str, path: list[str], state: dict[str, int]) -> None:
        state[node] = 1  # on the current path
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt], state)
        state[node] = 2

    state: dict[str, int] = {}
    for module in graph:
        if module not in state:
            visit(module, [module], state)
    assert cycles == []


def test_the_scan_sees_lazy_and_relative_imports():
    """The scan must not pass by missing imports: a known lazy, relative import is found."""
    assert "tui_cifar.tui.app" in _imports(PACKAGE / "cli" / "commands.py")  # `from ..tui.app import run_app`, inside a function
    assert "tui_cifar.runs.store" in _imports(PACKAGE / "runs" / "reader.py")  # `from . import store`


# Shared by every screen: the base class and the generic modal dialogs (confirm, path prompt).
SHARED_SCREEN_MODULES = {"tui_cifar.tui.screens.base", "tui_cifar.tui.screens.dialogs"}


def test_no_screen_imports_another_screens_module():
    """A screen talks to another through the app (messages, modes), never by importing it."""
    screens = PACKAGE / "tui" / "screens"
    offenders = []
    for path in sorted(screens.glob("*.py")):
        own = _module_name(path)
        if own in SHARED_SCREEN_MODULES or path.name == "__init__.py":
            continue
        for name in _imports(path):
            if name.startswith("tui_cifar.tui.screens.") and not any(
                    name == m or name.startswith(f"{m}.") for m in SHARED_SCREEN_MODULES | {own}):
                offenders.append(f"{path.name} imports {name}")
    assert offenders == []


def test_only_the_app_imports_the_screens():
    """The palette, widgets and settings reach screens through the app's modes, not by import (presets: config.py)."""
    offenders = [f"{path.relative_to(PACKAGE.parent)} imports {name}"
                 for path in sorted((PACKAGE / "tui").rglob("*.py"))
                 if "screens" not in path.parts and path.name != "app.py"
                 for name in _imports(path) if name.startswith("tui_cifar.tui.screens")]
    assert offenders == []
