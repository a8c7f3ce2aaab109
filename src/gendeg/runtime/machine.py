"""Which machine and code a result was made on, measured when it is written, never typed.

The vector ISA matters: CPU results are byte-identical on one machine, but kernels for AVX2
and AVX-512 round differently, so the same seed gives other weights on another CPU.
`provenance(run)` is what every study in benchmarks/ merges into its result file.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() is often just the ISA)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(note: str = "", host: bool = True) -> str:
    """CPU model, the vector ISA torch uses, core count and the CUDA devices this process sees
    (and the host name unless `host=False`, for files that are committed)."""
    import torch

    cpu = f"{cpu_model()}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} CPU cores"
    parts = [f"{platform.node()} {cpu}" if host else cpu]
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        parts.append(f"CUDA {torch.version.cuda}: {', '.join(names)}")
    else:
        parts.append("no CUDA device visible")
    return ", ".join(parts) + (f". {note}" if note else "")


def git_commit(root: Path | None = None) -> dict:
    """{"commit", "dirty"} of the checkout holding `root` (by default this package's source, the
    code being measured); dirty: tracked files differed from the commit."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root or Path(__file__).resolve().parent, capture_output=True, text=True)
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
    """The keys a benchmark result file carries beside its figures: commit, parameters, the torch
    threads in use, the load average (how busy the cores were) and the machine."""
    import torch

    return {"git": git_commit(), "params_sha256": params_hash(run), "torch_threads": torch.get_num_threads(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "machine": describe_machine(note)}
