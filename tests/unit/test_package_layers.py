"""The package's folders are layers: a module imports only from its own subpackage or the ones
listed before it (gendeg/__init__.py says the order), lazy imports inside functions included."""

import ast
from pathlib import Path

import gendeg

LAYERS = ["runtime", "degradations", "intensity", "measure", "restorers", "data", "diffusion", "synthesis",
          "pipeline", "stages", "cli"]
PACKAGE = Path(gendeg.__file__).parent


def layer_of(module: str) -> int:
    """-1 for the package root (constants every layer may use), else the index in LAYERS."""
    parts = module.split(".")
    return -1 if len(parts) == 1 else LAYERS.index(parts[1])


def imported_modules(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gendeg":
            if node.module == "gendeg":  # `from gendeg import pipeline` names a layer, `DEGRADATIONS` a constant
                found += [f"gendeg.{a.name}" if a.name in LAYERS else "gendeg" for a in node.names]
            else:
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "gendeg"]
    return found


def test_every_subpackage_is_a_layer():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and any(p.glob("*.py"))}
    assert folders | {"cli"} == set(LAYERS)
    assert {p.stem for p in PACKAGE.glob("*.py")} == {"__init__", "cli"}, "modules belong in a layer's folder"


def test_no_module_imports_from_a_later_layer():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("gendeg", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        own = layer_of(module) if module != "gendeg" else -1
        upward += [f"{module} -> {target}" for target in imported_modules(path) if layer_of(target) > own]
    assert not upward, "imports from a later layer:\n" + "\n".join(upward)
