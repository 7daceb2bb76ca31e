"""The house's layering, read from ARCHITECTURE.md and checked against every import in the
source: imports point down the declared layers only, and no modules import each other in a
circle (a lazy import inside a function counts: it hides a circle, it does not break it)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def declared_layers() -> list[set[str]]:
    """The layers of ARCHITECTURE.md's ``layers`` block, top first; one line each, and the
    packages on one line do not import each other."""
    text = (REPO / "ARCHITECTURE.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md declares its layers in a ```layers block"
    return [set(line.split()) for line in block.group(1).splitlines() if line.strip()]


LAYERS = declared_layers()
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}


def modules() -> Iterator[tuple[str, Path]]:
    for package in RANK:
        single = REPO / f"{package}.py"
        if single.exists():
            yield package, single
            continue
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            yield name, path


MODULES = dict(modules())


def imported(path: Path) -> Iterator[str]:
    """The project modules ``path`` imports (``from pkg import mod`` names the module)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES
                     else node.module for alias in node.names]
        else:
            continue
        yield from (name for name in names if name.split(".")[0] in RANK)


GRAPH = {name: set(imported(path)) - {name} for name, path in MODULES.items()}


def test_every_package_is_in_a_layer():
    packages = {p.name for p in REPO.iterdir() if (p / "__init__.py").exists()} - {"tests", "bench"}
    assert packages <= set(RANK), f"not in ARCHITECTURE.md's layers: {packages - set(RANK)}"


def test_imports_point_down_the_layers():
    upward = sorted(f"{module} imports {target}" for module, targets in GRAPH.items()
                    for target in targets
                    if module.split(".")[0] != target.split(".")[0]
                    and RANK[target.split(".")[0]] <= RANK[module.split(".")[0]])
    assert upward == [], "imports that do not point down:\n" + "\n".join(upward)


def test_no_modules_import_each_other_in_a_circle():
    circles = [sorted(component) for component in strongly_connected(GRAPH) if len(component) > 1]
    assert circles == [], f"import circles: {circles}"


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's components, iteratively (a deep package would overflow the recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root, edges_of_root in graph.items():
        if root in index:
            continue
        work = [(root, iter(sorted(edges_of_root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            step = next((e for e in edges if e in graph), None)
            if step is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif step not in index:
                index[step] = low[step] = len(index)
                stack.append(step)
                on_stack.add(step)
                work.append((step, iter(sorted(graph[step]))))
            elif step in on_stack:
                low[node] = min(low[node], index[step])
    return components


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert sorted(map(sorted, strongly_connected(graph))) == [["a", "b", "c"], ["d"]]


def test_tests_share_helpers_only_through_support():
    """No file under tests/ imports a test module (``test_*.py``): pytest collects those, and
    what tests share lives in tests/support."""

    def is_test_module(dotted: str) -> bool:
        return dotted.rsplit(".", 1)[-1].startswith("test_")

    offending = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        package = path.relative_to(REPO).parent.parts
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else ()
                module = ".".join([*base, *([node.module] if node.module else [])])
                # ``from pkg import test_x`` imports the module pkg.test_x when there is one
                names = [module, *(f"{module}.{alias.name}" for alias in node.names
                                   if (REPO.joinpath(*module.split("."), f"{alias.name}.py")).exists())]
            else:
                continue
            offending += [f"{path.relative_to(REPO)}:{node.lineno} imports {name}"
                          for name in names if is_test_module(name)]
    assert offending == [], "test modules imported (move the helpers to tests/support):\n" + \
        "\n".join(offending)


def external(path: Path) -> set[str]:
    """The top-level packages outside the project that ``path`` imports, lazily or not."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - set(RANK)


def reached(module: str) -> set[str]:
    """``module`` and every project module it imports, directly or through others."""
    seen, todo = {module}, [module]
    while todo:
        for target in GRAPH.get(todo.pop(), ()):
            if target in MODULES and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


BUMBLE_BACKEND = "phone.ble.bumble_backend"


def test_the_phone_speaks_bleak_and_only_its_bumble_backend_imports_bumble():
    """The phone's link is bleak's API, so the same central runs on every OS's stack: outside
    our bleak backend on Bumble, no phone module imports Bumble, directly or through any module
    it imports (the band's GATT server and ble.link are Bumble, so they are out of reach too)."""
    phone = [m for m in MODULES if m.split(".")[0] == "phone"
             and m != BUMBLE_BACKEND and not m.startswith(BUMBLE_BACKEND + ".")]
    assert "phone.ble.central" in phone and "phone.ble.bumble_backend.client" in MODULES
    through = sorted(f"{module} reaches bumble through {other}" for module in phone
                     for other in reached(module) if "bumble" in external(MODULES[other]))
    assert through == [], "Bumble outside the phone's bleak backend:\n" + "\n".join(through)
    assert "bleak" in external(MODULES["phone.ble.central"])
    assert {"bleak", "bumble"} <= external(MODULES["phone.ble.bumble_backend.client"])
