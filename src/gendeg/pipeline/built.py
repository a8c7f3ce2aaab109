"""What each job built, recorded by the job itself as it finishes (docs/orchestration.md).

Snakemake's end-of-run hook used to decide which DVC stages to record in dvc.lock from what
Snakemake thought up to date; it re-vouched outputs damaged outside any job, and a touch spelled
in a way it did not recognise committed models never retrained.  Now the `gendeg`
job wrapper (both orchestrators run it) writes `.gendeg/built/<output>.json` after the stage
returns: each output's files (relative path, size, modification time, MD5) and when the job started.
The hook records a stage only when a record says a job built every output, the outputs are still
what that job left, and no dependency changed after the job started (`vouched`).  An output whose
files differ from its record changed outside a job: the hook names it and Snakemake rebuilds it
(`changed_outputs`, forced in the Snakefile), as `dvc repro` does from its hashes.

Checking is one stat per file; only a file whose time moved but whose size did not is read again
and compared by its MD5 (DVC re-saves a file output after its stage, a new time on the same bytes).
Writing a record reads every output byte once, as DVC's own hashing does.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

BUILT_DIR = Path(".gendeg") / "built"
MARKER = ".snakemake_timestamp"  # Snakemake's mtime marker in directory outputs: not content (.dvcignore)


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(Path(parent) / name for parent, _, names in os.walk(path) for name in names if name != MARKER)


def _md5(file: Path) -> str:
    digest = hashlib.md5()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path: str | Path, content: bool = False) -> dict | None:
    """{relative file: [size, mtime_ns(, md5)]} of an output (a file or a folder); None when it is missing."""
    path = Path(path)
    if not path.exists():
        return None
    entries = {}
    for file in _files(path):
        status = file.stat()
        entry = [status.st_size, status.st_mtime_ns] + ([_md5(file)] if content else [])
        entries[file.relative_to(path).as_posix() if file != path else "."] = entry
    return entries


def same(path: str | Path, files: dict) -> bool:
    """Whether an output still holds the files a record lists (by size and time, by MD5 where only the time moved)."""
    path = Path(path)
    now = fingerprint(path)
    if now is None or now.keys() != files.keys():
        return False
    for name, (size, mtime) in now.items():
        recorded = files[name]
        if size != recorded[0]:
            return False
        if mtime != recorded[1] and _md5(path if name == "." else path / name) != recorded[2]:
            return False
    return True


def newest_change(path: str | Path) -> int:
    """Latest modification time (ns) of a path, the files under it and its sub-folders (a removed file
    moves its folder's time); Snakemake's marker is left out.  -1 when the path is missing."""
    path = Path(path)
    if not path.exists():
        return -1
    newest = path.stat().st_mtime_ns
    if path.is_dir():
        for parent, folders, names in os.walk(path):
            for name in folders + [n for n in names if n != MARKER]:
                try:
                    newest = max(newest, (Path(parent) / name).stat().st_mtime_ns)
                except FileNotFoundError:  # a dangling link: its own time
                    newest = max(newest, (Path(parent) / name).lstat().st_mtime_ns)
    return newest


def record_path(out: str | Path, root: str | Path = ".") -> Path:
    return Path(root) / BUILT_DIR / (str(Path(out)).strip("/").replace("/", "__") + ".json")


def forget(outs: list[str | Path], root: str | Path = ".") -> None:
    """Drop the records of outputs a job is about to rewrite: a failed or killed job leaves none."""
    for out in outs:
        record_path(out, root).unlink(missing_ok=True)


def record(outs: list[str | Path], started_ns: int, command: list[str], root: str | Path = ".") -> None:
    """After the stage returned: what it left in each output, written atomically (one file per output)."""
    from gendeg.runtime.atomic import write_text

    for out in outs:
        path = record_path(out, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(json.dumps({"output": str(out), "started_ns": started_ns, "finished_ns": time.time_ns(),
                               "command": command, "files": fingerprint(Path(root) / out, content=True)}, sort_keys=True), path)


def load(out: str | Path, root: str | Path = ".") -> dict | None:
    path = record_path(out, root)
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def changed_outputs(root: str | Path = ".") -> list[str]:
    """Outputs that exist and differ from what the job that built them left: changed outside any job."""
    folder = Path(root) / BUILT_DIR
    changed = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            built = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        out = Path(root) / built["output"]
        if out.exists() and not same(out, built["files"]):
            changed.append(built["output"])
    return changed


def vouched(outs: list[str], deps: list[str], root: str | Path = ".") -> str | None:
    """None when a job built every output of a stage, they are as it left them and no dependency
    changed after it started; otherwise why not (for the hook's message)."""
    root = Path(root)
    started = []
    for out in outs:
        built = load(out, root)
        if built is None:
            return f"no job built {out}"
        if not same(root / out, built["files"]):
            return f"{out} changed after the job that built it"
        started.append(built["started_ns"])
    for dep in deps:
        changed = newest_change(root / dep)
        if changed < 0:
            return f"{dep} is missing"
        if changed > min(started) and not _rewritten_unchanged(dep, min(started), root):
            return f"{dep} changed after the job started"
    return None


def _rewritten_unchanged(dep: str, started_ns: int, root: Path) -> bool:
    """A dependency whose time moved after the job started but whose bytes did not: the output of a job that
    finished before, re-saved since (DVC rewrites a file output when it commits it)."""
    built = load(dep, root)
    return built is not None and built["finished_ns"] <= started_ns and same(root / dep, built["files"])
