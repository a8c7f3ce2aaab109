"""A fresh project for a benchmark or an end-to-end test: the working tree's files (tracked and
untracked, not ignored, so uncommitted code is what gets measured) copied with their times,
committed in a new repository, with a preset selected."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def copy_worktree(target: Path, exclude: tuple[str, ...] = (), root: Path = ROOT) -> None:
    """Copy every file `git ls-files` lists (cached and untracked-not-ignored, minus `exclude` prefixes)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        if (root / name).is_file() and not name.startswith(exclude):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, target / name)


def commit_all(target: Path, message: str, who: str) -> None:
    """`git init` (if needed), add everything and commit as `who`, whatever the user's git identity."""
    git = ["git", "-c", f"user.name={who}", "-c", f"user.email={who}@example.org"]
    if not (target / ".git").exists():
        subprocess.run(git + ["init", "-q"], cwd=target, check=True, capture_output=True)
    for command in (["add", "-A"], ["commit", "-qm", message]):
        subprocess.run(git + command, cwd=target, check=True, capture_output=True)


def select_preset(target: Path, preset: str) -> None:
    """Set params.yaml's `preset:` line; fails loudly if there is not exactly one."""
    params = target / "params.yaml"
    text, count = re.subn(r"(?m)^preset: \w+", f"preset: {preset}", params.read_text())
    if count != 1:
        raise ValueError(f"{params}: expected one `preset:` line, found {count}")
    params.write_text(text)
