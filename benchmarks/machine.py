"""One description of the machine a benchmark ran on, written beside its figures."""

from __future__ import annotations

import os
import platform


def describe_machine(threads: int | None = None, note: str = "") -> str:
    """Host, processor and core count; torch threads when given; no GPU (the benchmarks run on CPU)."""
    parts = [f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"]
    if threads is not None:
        parts.append(f"torch threads {threads}")
    parts.append("no GPU")
    return ", ".join(parts) + (f". {note}" if note else "")
