"""The shape of the server holds: the pure core imports nothing heavy, and no two server
modules import each other, even indirectly."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "flawless" / "server"
HEAVY = ("twisted", "git", "yaml", "jinja2", "msgspec")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every flawless module ``path`` imports, wherever in the file the import stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("flawless")}


def test_importing_the_core_loads_no_twisted_git_yaml_or_templates() -> None:
    core = sorted(module_name(path) for path in (SERVER / "core").glob("*.py"))
    program = ("import sys\n" + "".join(f"import {name}\n" for name in core)
               + f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    loaded = subprocess.run([sys.executable, "-c", program], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    assert loaded == "[]"


def test_the_core_imports_only_itself_and_the_wire_schema() -> None:
    for path in (SERVER / "core").glob("*.py"):
        for name in imports_of(path):
            assert name.startswith(("flawless.server.core", "flawless.report")), (path, name)


def test_the_server_modules_form_no_import_cycle() -> None:
    modules = {module_name(path): path for path in SERVER.rglob("*.py")}
    graph = {name: {target for target in imports_of(path) if target in modules
                    and target != name} for name, path in modules.items()}
    # A package's __init__ is imported on the way to its modules; it imports nothing itself.
    cycles = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:  # Tarjan's strongly connected components
        index[name] = low[name] = len(index)
        stack.append(name)
        for target in graph[name]:
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    assert cycles == []
