"""The module map (session/README.md) holds: each package imports only the packages below it, no module imports
itself back through others, and a function-local import of the session's own modules says why it is one.

Read from the source with `ast`, so it counts every import: top-level, function-local and TYPE_CHECKING-only.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SESSION = Path(__file__).resolve().parents[2] / "session"

# Bottom to top; a package may import its own modules and those of the packages before it.
LAYERS = ("core", "engine", "storage", "host", "checks", "run", "insight", "models", "lifecycle", "dashboard", "cli")
# What may stay function-local: only imports whose line says why (start-up time, or a process that must not load
# the rest). The CLI dispatches to every command lazily, which is its whole job: its imports are all exempt.
LAZY_REASON = "# start-up"
LAZY_EVERYWHERE = ("cli",)


@dataclass(frozen=True)
class Import:
    source: str  # session.<package>.<module>
    target: str  # the session module imported
    line: int
    local: bool  # inside a function
    text: str


def _module_name(path: Path) -> str:
    parts = path.relative_to(SESSION.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _known_modules() -> set[str]:
    return {_module_name(path) for path in SESSION.rglob("*.py")}


def _imports() -> list[Import]:
    known = _known_modules()
    found = []
    for path in sorted(SESSION.rglob("*.py")):
        source = _module_name(path)
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        local_nodes = {id(node) for function in ast.walk(tree)
                       if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for node in ast.walk(function)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from session.x import y` imports module session.x.y when that is a module, else session.x
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                           for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            text = " ".join(lines[node.lineno - 1:node.end_lineno])
            for target in targets:
                if target.startswith("session.") and target != source:
                    found.append(Import(source, target, node.lineno, id(node) in local_nodes, text))
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else ""


def _rank(module: str, *, importing: bool) -> int:
    """A layer's place; the root package (`session.__version__`) is below every layer, `python -m session`
    (session.__main__) above them."""
    package = _package(module)
    if package:
        return LAYERS.index(package)
    return len(LAYERS) if importing else -1


def test_every_package_is_a_layer():
    packages = {path.parent.name for path in SESSION.glob("*/__init__.py")}
    assert packages == set(LAYERS)
    top = sorted(path.name for path in SESSION.glob("*.py"))
    assert top == ["__init__.py", "__main__.py"]  # every module lives in a layer


def test_imports_point_down():
    upward = [f"{i.source}:{i.line} imports {i.target}" for i in _imports()
              if _rank(i.target, importing=False) > _rank(i.source, importing=True)]
    assert upward == []


def test_no_module_imports_itself_back():
    graph: dict[str, set[str]] = defaultdict(set)
    for i in _imports():
        graph[i.source].add(i.target)
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_a_function_local_import_says_why():
    unexplained = [f"{i.source}:{i.line} {i.text.strip()}" for i in _imports()
                   if i.local and _package(i.source) not in LAZY_EVERYWHERE and LAZY_REASON not in i.text]
    assert unexplained == []
