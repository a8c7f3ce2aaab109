"""What every benchmark result records beside its figures: code, parameters, threads, machine.

`provenance(run)` is measured when the file is written, never typed: the git commit of this
checkout (and whether it had uncommitted changes), a hash of the run's resolved parameters,
the torch thread count in use, the load average (how busy the cores were), and the machine,
with the GPU's name when CUDA is available.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from gendeg.runtime.machine import describe_machine

ROOT = Path(__file__).resolve().parents[1]


def git_commit(root: Path = ROOT) -> dict:
    """{"commit", "dirty"}: the checkout the script ran from; dirty: tracked files differed from it."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""
    commit = git("rev-parse", "HEAD")
    return {"commit": commit or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


def params_hash(run: Path | None) -> str | None:
    """SHA-256 of a run folder's resolved_params/*.json (names and bytes); None without a run."""
    if run is None:
        return None
    files = sorted((Path(run) / "resolved_params").glob("*.json"))
    if not files:
        raise FileNotFoundError(f"{run}/resolved_params/*.json: none found; is {run} a finished pipeline run?")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def provenance(run: Path | None = None, note: str = "") -> dict:
    """The keys every result file carries (merged into its top level)."""
    import torch

    return {"git": git_commit(), "params_sha256": params_hash(run), "torch_threads": torch.get_num_threads(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "machine": describe_machine(note)}
