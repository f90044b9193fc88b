"""The package stays small enough to hold in one's head: no module over 700 lines, imports
flowing one way (no circle, counting imports inside functions), and CONTRIBUTING's reader's
map listing every module after everything it imports.

The graph has an edge A -> B when A's source imports B anywhere (module level or inside a
function): ``import grit_lite.x``, ``from grit_lite import x``, ``from grit_lite.x import
name`` and relative imports all count. Importing a submodule is an edge to that submodule,
not to the package holding it (every package's ``__init__`` re-exports from its modules, so
that edge would make every package a circle).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "grit_lite"
MAX_LINES = 700


def modules(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``package`` under ``root``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _targets(node: ast.Import | ast.ImportFrom, name: str, is_package: bool) -> list[str]:
    """The dotted names an import statement in module ``name`` may refer to, most specific
    first for each imported name (``from a import b`` may import module ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    return [f"{module}.{alias.name}" for alias in node.names] + [module]


def import_graph(root: Path, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at module level or inside functions."""
    known = modules(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            candidates = _targets(node, name, path.name == "__init__.py")
            if isinstance(node, ast.ImportFrom):
                module = candidates[-1]
                names = candidates[:-1]
                hits = [c for c in names if c in known]
                # ``from a import name``: a submodule if it is one, else the module ``a``
                candidates = hits + ([module] if len(hits) < len(names) else [])
            for target in candidates:
                while target and target not in known:  # import a.b.c where only a.b is ours
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None when the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def readers_map(text: str) -> list[str]:
    """The paths listed, in order, in the "Reader's map" section of CONTRIBUTING.md."""
    match = re.search(r"^## Reader's map\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, "CONTRIBUTING.md has no '## Reader's map' section"
    return re.findall(r"^- `([^`]+)`", match.group(1), re.M)


def map_problems(entries: list[str], graph: dict[str, set[str]], package: str = PACKAGE):
    """What is wrong with a reader's map: modules it misses, entries that name no module, and
    modules listed before something they import. A folder entry (``pkg/sub/``) stands for
    every module under it."""
    position: dict[str, int] = {}
    problems = []
    for index, entry in enumerate(entries):
        dotted = entry.removesuffix("/").removesuffix(".py").replace("/", ".")
        dotted = dotted.removesuffix(".__init__")
        if entry.endswith("/"):
            covered = [m for m in graph if m == dotted or m.startswith(dotted + ".")]
        else:
            covered = [dotted] if dotted in graph else []
        if not covered:
            problems.append(f"{entry} names no module of {package}")
        for module in covered:
            position.setdefault(module, index)
    problems += [f"{m} is not in the map" for m in sorted(graph) if m not in position]
    for module, imported in sorted(graph.items()):
        for dep in sorted(imported):
            if module in position and dep in position and position[dep] > position[module]:
                problems.append(f"{module} is listed before {dep}, which it imports")
    return problems


# ---------------------------------------------------------------------------------------------
# The package as it is
# ---------------------------------------------------------------------------------------------


def test_no_module_is_over_700_lines():
    lengths = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in modules(ROOT).items()}
    assert {n: k for n, k in lengths.items() if k > MAX_LINES} == {}


def test_no_import_circle():
    graph = import_graph(ROOT)
    assert "grit_lite.tiny.model" in graph["grit_lite.tiny.skills"]  # the graph sees imports
    assert find_cycle(graph) is None


def test_readers_map_lists_every_module_in_dependency_order():
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert map_problems(readers_map(text), import_graph(ROOT)) == []


# ---------------------------------------------------------------------------------------------
# The checks catch what they are for
# ---------------------------------------------------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return tmp_path


def test_a_circle_through_a_function_level_import_is_found(tmp_path):
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "low.py": "def f():\n    from pkg import high\n",
            "high.py": "from pkg.low import f\n",
            "sub/__init__.py": "from .leaf import g\n",
            "sub/leaf.py": "from .. import high\ng = 1\n",
        },
    )
    graph = import_graph(root, "pkg")
    assert graph["pkg.low"] == {"pkg.high"} and graph["pkg.high"] == {"pkg.low"}
    assert graph["pkg.sub"] == {"pkg.sub.leaf"} and graph["pkg.sub.leaf"] == {"pkg.high"}
    assert find_cycle(graph) == ["pkg.high", "pkg.low", "pkg.high"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        (["pkg/__init__.py", "pkg/high.py", "pkg/low.py"], "pkg.high is listed before pkg.low"),
        (["pkg/__init__.py", "pkg/low.py"], "pkg.high is not in the map"),
        (["pkg/__init__.py", "pkg/low.py", "pkg/high.py", "pkg/gone.py"], "pkg/gone.py names"),
    ],
)
def test_a_wrong_map_is_reported(entries, problem):
    graph = {"pkg": set(), "pkg.low": set(), "pkg.high": {"pkg.low"}}
    assert map_problems(["pkg/__init__.py", "pkg/low.py", "pkg/high.py"], graph, "pkg") == []
    assert any(p.startswith(problem) for p in map_problems(entries, graph, "pkg"))


def test_the_map_is_read_from_its_section_only():
    text = "## Layout\n- `a.py`: no\n\n## Reader's map\nIntro.\n- `b.py`: yes\n\n## Next\n- `c`\n"
    assert readers_map(text) == ["b.py"]
