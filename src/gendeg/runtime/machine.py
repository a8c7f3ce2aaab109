"""Which machine a result was made on, measured when it is written.

The vector ISA matters: CPU results are byte-identical on one machine, but kernels for AVX2
and AVX-512 round differently, so the same seed gives other weights on another CPU.
"""

from __future__ import annotations

import os
import platform
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
