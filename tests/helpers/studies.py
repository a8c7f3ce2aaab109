"""Load a study from benchmarks/ by its file, for the tests of that study's own code.

Studies are scripts, not a package; loading the one under test by path keeps benchmarks/ off
sys.path, so no script's name (`machine`, `calibration`, `scale`) can shadow another module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_study(name: str) -> ModuleType:
    """benchmarks/<name>.py, or the package benchmarks/<name>/, imported as `name` (once)."""
    if name in sys.modules:
        return sys.modules[name]
    folder = BENCHMARKS / name
    if folder.is_dir():
        spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
    else:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
