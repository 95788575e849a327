"""The package's folders import only downward (README, "What is in the package")."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "espnet_wavenet"
# Lower layers first; a module may import its own layer and those before it.
LAYERS = [
    {"utils", "features"},
    {"data", "layers", "distributions"},
    {"models"},
    {"generation", "train"},
    {"vocoder"},
    {"tasks", "evaluation", "integration", "recipe"},
    {"bin"},
]


def layer_of(unit: str) -> int:
    for i, units in enumerate(LAYERS):
        if unit in units:
            return i
    raise AssertionError(f"espnet_wavenet/{unit}: not placed in LAYERS (and the README's order)")


def unit_of(module: str) -> str:
    return module.split(".")[1]


def test_imports_run_downward():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if len(rel.parts) < 2 or rel.parts[1] == "__init__":
            continue
        here = layer_of(rel.parts[1])
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("espnet_wavenet.") and layer_of(unit_of(name)) > here:
                    upward.append(f"{rel}.py:{node.lineno} imports {name}")
    assert not upward, "\n".join(upward)
