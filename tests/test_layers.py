"""The package's layers (docs/design.md): imports only go downwards, with no cycles, and the
torch-free parts stay torch-free."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "realbogus"

#: Layer of each top-level module or sub-package; a module may import its own layer or lower ones.
LAYERS = {
    "errors": 0,
    "numeric": 0,
    "stamps": 0,
    "render": 0,
    "io": 1,
    "sim": 2,
    "injection": 2,
    "crowd": 2,
    "alerts": 2,
    "model": 3,
    "inference": 4,
    "training": 5,
    "evaluation": 5,
    "report": 5,
    "workflows": 6,
    "label": 6,
    "cli": 7,
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """realbogus modules imported anywhere in the file, inside functions too."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("realbogus"):
                if node.module:  # `from .x import y`: x (y may be a submodule too)
                    found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("realbogus"))
    modules = {_module(p) for p in SRC.rglob("*.py")}
    return {m for m in found if m in modules}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


GRAPH = {_module(p): _imports(p) for p in SRC.rglob("*.py")}


def test_every_module_has_a_layer():
    assert sorted({m.split(".")[1] for m in GRAPH if "." in m} - set(LAYERS)) == []


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _layer(m) is not None))
def test_imports_only_go_down(module):
    upward = [t for t in GRAPH[module] if (_layer(t) or 0) > _layer(module)]
    assert upward == [], f"{module} imports higher layers: {upward}"


def test_no_import_cycles():
    """Depth-first search over all imports, function-level ones included."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(GRAPH.get(node, ())):
            if target == node or target == "realbogus":
                continue
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target] if target in path else [node, target]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, path + [target])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_alerts_sim_crowd_and_io_import_without_torch():
    code = (
        "import sys, realbogus, realbogus.alerts, realbogus.sim, realbogus.crowd, realbogus.io.dataset; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
