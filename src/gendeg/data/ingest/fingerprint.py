"""A cheap fingerprint of every file the user's data entries can read, for the orchestrators.

`prepare` depends on its parameters and code, and on resolved_params/user_data.json: this
fingerprint (relative path, size, modification time of each file under the configured
folders and manifest roots).  Overwriting, adding or removing a user file changes it, so
Snakemake and DVC re-run `prepare` and what follows.  Size and mtime, not content hashes: one
stat per file on every invocation, where hashing would read every byte; a touched but
unchanged file re-runs `prepare`, a changed one is never missed.

DVC cannot list the configured folders (dvc.yaml cannot interpolate a list into `deps:`), so
its `prepare` stage also depends on the one folder `data.user.folder`, and every file the
entries read must lie under it (`outside_folder`): then a bare `dvc repro` sees the change too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_FOLDER_KEYS = ("degraded_dir", "clean_dir", "dir", "root")
_FILE_KEYS = ("manifest", "gends_manifest", "captions")
PATH_KEYS = _FOLDER_KEYS + _FILE_KEYS  # every key of a data.user entry that names a path


def _entries(user: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [entry for key in ("paired", "ood", "clean") for entry in (user.get(key) or [])
            if isinstance(entry, Mapping)]


def _stat(path: Path) -> list[int]:
    status = path.stat()
    return [status.st_size, status.st_mtime_ns]


def _walk(folder: Path) -> dict[str, list[int]]:
    files = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = Path(parent) / name
            if path.is_file():
                files[path.relative_to(folder).as_posix()] = _stat(path)
    return dict(sorted(files.items()))


def outside_folder(path: str | Path, folder: str | Path) -> bool:
    """True when DVC, hashing `folder` as a dependency, would not see `path` change.

    DVC walks the folder without following symlinked sub-folders (a symlinked file, or the folder
    itself being a symlink, is followed), so a path under a symlinked sub-folder counts as outside.
    """
    base = Path(os.path.abspath(Path(folder).expanduser()))
    target = Path(os.path.abspath(Path(path).expanduser()))
    if target != base and base not in target.parents:
        return True
    relative = target.relative_to(base)
    steps = [base / part for part in [*list(relative.parents)[:-1], relative] if part.parts]
    return any(step.is_symlink() and step.is_dir() for step in steps)


def user_data_fingerprint(data: Mapping[str, Any]) -> dict:
    """{"source": ...} for built-in data; with source: user, every configured path's files."""
    if data.get("source") != "user":
        return {"source": data.get("source")}
    paths: dict[str, Any] = {}
    for entry in _entries(data.get("user") or {}):
        for key in PATH_KEYS:
            if key not in entry or str(entry[key]) in paths:
                continue
            path = Path(str(entry[key])).expanduser()
            if key in _FILE_KEYS and "root" not in entry:  # relative rows resolve against the manifest's folder
                paths.setdefault(path.parent.as_posix(), _walk(path.parent) if path.parent.is_dir() else "missing")
            if path.is_dir():
                paths[str(entry[key])] = _walk(path)
            elif path.is_file():
                paths[str(entry[key])] = _stat(path)
            else:
                paths[str(entry[key])] = "missing"  # prepare names it; the fingerprint just changes when it appears
    captioner = (data.get("user") or {}).get("captioner")
    if captioner:  # the BLIP-2 folder: new weights, new captions
        folder = Path(str(captioner)).expanduser()
        paths[f"captioner:{captioner}"] = _walk(folder) if folder.is_dir() else "missing"
    return {"source": "user", "paths": dict(sorted(paths.items()))}


def watched_paths(data: Mapping[str, Any]) -> list[str]:
    """The configured folders and files that exist, and the newest file under them.

    A dry run writes no fingerprint, so it shows the change by modification times instead: a
    folder's own time moves when a file is added or removed, the newest file's when one is
    overwritten.
    """
    if data.get("source") != "user":
        return []
    watched, newest = [], (0, "")
    for entry in _entries(data.get("user") or {}):
        for key in PATH_KEYS:
            path = Path(str(entry.get(key, ""))).expanduser()
            if key not in entry or not path.exists() or path.as_posix() in watched:
                continue
            watched.append(path.as_posix())
            files = [path] if path.is_file() else [Path(parent) / name for parent, _, names in os.walk(path)
                                                   for name in names]
            for file in files:
                newest = max(newest, (file.stat().st_mtime_ns, file.as_posix()))
    return watched + ([newest[1]] if newest[1] and newest[1] not in watched else [])
