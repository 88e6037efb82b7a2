"""The library's layers: no module imports a module of a higher layer.

    core < media < datasets < demo < evaluation < detectors < training < stages < reporting < (plan, config, workflow, cli)

Every import counts, also one inside a function: a lazy import up the
layers is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "src" / "dfrobust"
LAYERS = ["core", "media", "datasets", "demo", "evaluation", "detectors", "training", "stages", "reporting", "plan", "config", "workflow", "cli"]


def layer_of(module: str) -> int:
    """Layer index of a dotted dfrobust module name ('dfrobust' itself is core)."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module}: not in any layer; add its package to LAYERS")
    return LAYERS.index(parts[1])


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_statements(module: str, path: Path):
    """(imported module, names it imports from it) of every import in `path` (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            yield base, [alias.name for alias in node.names]


def imported(module: str, path: Path) -> set[str]:
    """dfrobust modules `path` imports anywhere (relative imports resolved)."""
    names = {base for base, _ in import_statements(module, path)}
    return {name for name in names if name == "dfrobust" or name.startswith("dfrobust.")}


def test_every_package_has_a_layer():
    for module in modules():
        layer_of(module)


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_import_runs_up_the_layers(module):
    path = modules()[module]
    own = layer_of(module)
    upward = sorted(name for name in imported(module, path) if layer_of(name) > own)
    assert not upward, f"{module} ({LAYERS[own]}) imports higher layers: {upward}"


def test_the_check_catches_an_upward_import(tmp_path):
    """The test above can fail: a core module importing a stage is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from dfrobust.stages.faces import run_face_shard\n")
    assert layer_of(next(iter(imported("dfrobust.core.bad", bad)))) > layer_of("dfrobust.core.bad")


def import_graph() -> dict[str, set[str]]:
    """Module -> the dfrobust modules it imports (anywhere in its file). `from
    package import name` is an edge to package.name when that is a module (the
    package's own __init__ is then only its parent, not what is imported)."""
    found = modules()
    graph = {}
    for module, path in found.items():
        targets = set()
        for base, names in import_statements(module, path):
            submodules = {f"{base}.{name}" for name in names} & set(found)
            targets |= submodules or {base}
        graph[module] = {t for t in targets if t in found and t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles (each as one path around it), found by depth-first search."""
    out, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                out.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return out


def test_no_import_circle_inside_a_layer():
    found = cycles(import_graph())
    assert not found, "import circles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_circle_check_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
