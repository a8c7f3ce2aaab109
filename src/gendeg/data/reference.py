"""Where the released GenDeg intensity statistics live (copied into the repository's reference/)."""

from __future__ import annotations

from pathlib import Path

from gendeg import PROJECT_ROOT


def released_stats_dir() -> Path:
    """The statistics the authors released with their code (reference/README.md)."""
    path = PROJECT_ROOT / "reference" / "gendeg-intensity-stats"
    if not path.is_dir():
        raise FileNotFoundError(f"released intensity statistics not found at {path}")
    return path
