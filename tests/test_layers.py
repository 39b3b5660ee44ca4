"""The layer rule of ARCHITECTURE.md: imports point down, and no module imports itself through others.

Every ``ser_hf`` import is read from the source (module-level and inside functions, ``TYPE_CHECKING`` blocks
too), so a lazy import cannot hide an upward arrow or a circle. The imports that still break the rule are listed
in ``KNOWN_UPWARD`` and ``KNOWN_CIRCLES`` with the reason; the tests fail on a new one. Strike an entry once its
import is gone (``python tests/test_layers.py`` lists what is left).

Run ``python tests/test_layers.py`` for the figures ARCHITECTURE.md quotes: the floors, every upward import and
every circle of the tree you stand in.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ser_hf"

#: The floors, bottom first. A unit is a top-level module (``ser_hf/paths.py``) or a sub-package (``ser_hf/models/``);
#: a unit may import units on its own floor or below, never above.
FLOORS: list[tuple[str, ...]] = [
    ("errors", "progress", "paths", "names", "versions", "_io", "_atomic_folder", "_output_folders", "locks"),
    ("ranges", "emotions", "processes"),
    ("audio",),
    ("corpora", "splits", "models", "data_arguments", "checkpoint"),
    ("inference", "testing"),
    ("evaluation", "service"),
    ("baseline", "cards"),
    ("training", "hub", "push_folder"),
    ("demo", "cli", "__main__", "__init__"),
]

#: Upward imports that are known and still to be removed: (importing module, imported module) -> why it is left.
KNOWN_UPWARD: dict[tuple[str, str], str] = {}

#: Circles that are known and still to be broken: the sorted modules of each.
KNOWN_CIRCLES: set[tuple[str, ...]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ``name`` (``ser_hf.a.b.C`` -> ``ser_hf.a.b``), or None outside the package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the ser_hf modules it imports (wherever the import statement stands)."""
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                if not target.startswith("ser_hf"):
                    continue
                found = _resolve(target, modules)
                if found and found != name and found != "ser_hf":
                    graph[name].add(found)
    return graph


def unit(module: str) -> str:
    """``ser_hf.models.factory`` -> ``models``; ``ser_hf.audio`` -> ``audio``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def floor(module: str) -> int:
    name = unit(module)
    for number, names in enumerate(FLOORS, start=1):
        if name in names:
            return number
    raise AssertionError(f"{module}: unit {name!r} is on no floor; add it to FLOORS in {__file__}.")


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, targets in graph.items() for b in targets if floor(a) < floor(b))


def circles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(tuple(sorted(group)))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_every_unit_is_on_a_floor():
    for module in _modules():
        floor(module)


def test_imports_point_down():
    found = set(upward_imports(import_graph()))
    new = sorted(found - set(KNOWN_UPWARD))
    assert not new, ("imports that run up a floor (see ARCHITECTURE.md; move the shared piece down instead): "
                     + "; ".join(f"{a} -> {b}" for a, b in new))


def test_no_new_circles():
    found = set(circles(import_graph()))
    new = sorted(found - KNOWN_CIRCLES)
    assert not new, f"modules that import each other (move what they share into a module both import): {new}"


def main() -> None:
    graph = import_graph()
    print("floors, bottom first:")
    for number, names in enumerate(FLOORS, start=1):
        print(f"  {number}: {', '.join(names)}")
    upward = upward_imports(graph)
    print(f"upward imports: {len(upward)}")
    for a, b in upward:
        print(f"  {a} -> {b}")
    found = circles(graph)
    print(f"circles: {len(found)}")
    for group in found:
        print(f"  {' <-> '.join(group)}")


if __name__ == "__main__":
    main()
