"""Which process of a multi-process job (``accelerate launch`` / ``torchrun``) this one is.

Both launchers set RANK for every process; a plain run has none and is the main process.
Every process trains (accelerate's DDP keeps the weights in step, each draws its own
batches); only the main process logs its MLflow run, checkpoints and writes the outputs,
so N processes never race on one file.
"""

from __future__ import annotations

import os


def process_index() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return process_index() == 0
