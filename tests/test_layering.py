"""The package layering of DESIGN.md holds: imports only go down, and there are no cycles.

Every module under ``src/initlab`` is parsed with ``ast``; every ``import`` of an ``initlab``
module (at any depth, function-level imports included) is checked against the layer table.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"

# Lower number = lower floor. A module may import its own package and any lower layer;
# gradient_check and doctor share a floor and must not import each other.
LAYERS = {
    "_core": 0,
    "initializers": 1,
    "gradient_check": 2,
    "doctor": 2,
    "bench": 3,
    "papers": 4,
    "report": 5,
    "cli": 6,
}
API = 7  # initlab/__init__.py and the public facade modules at the top level


def _package(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "<api>"
    head = parts[1]
    return head if head in LAYERS else "<api>"


def _layer(package: str) -> int:
    return API if package == "<api>" else LAYERS[package]


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in sorted((SRC / "initlab").rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: pathlib.Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, node.lineno))
            # ``from initlab.pkg import submodule`` imports that submodule too
            out += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return [(t, line) for t, line in out if t == "initlab" or t.startswith("initlab.")]


MODULES = _modules()


def test_every_package_has_a_layer():
    packages = {_package(m) for m in MODULES} - {"<api>"}
    assert packages <= set(LAYERS), f"packages without a layer: {packages - set(LAYERS)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_go_down(module):
    mine = _package(module)
    bad = []
    for target, line in _imports(module, MODULES[module]):
        if target not in MODULES:
            continue  # ``from initlab.x import name``: the module itself is checked as well
        theirs = _package(target)
        if theirs == mine:
            continue
        if _layer(theirs) > _layer(mine) or (_layer(theirs) == _layer(mine) and mine != "<api>"):
            bad.append(f"line {line}: {target} ({theirs}, layer {_layer(theirs)})")
    assert not bad, f"{module} ({mine}, layer {_layer(mine)}) imports upward: " + "; ".join(bad)


def test_no_import_cycles_between_modules():
    graph = {
        m: {t for t, _ in _imports(m, p) if t in MODULES and t != m} for m, p in MODULES.items()
    }
    # Packages import their own __init__ implicitly; an __init__ importing its children is fine.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if node.startswith(nxt + "."):  # a module importing its own package
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if not state.get(nxt):
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if not state.get(module):
            cycle = visit(module)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_catches_an_upward_import(tmp_path):
    """The check must be able to fail: a doctor module importing the bench is flagged."""
    fake = tmp_path / "initlab" / "doctor" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from initlab.bench.compare import compare\n")
    targets = [t for t, _ in _imports("initlab.doctor.x", fake)]
    assert "initlab.bench.compare" in targets
    assert _layer(_package("initlab.bench.compare")) > _layer(_package("initlab.doctor.x"))
