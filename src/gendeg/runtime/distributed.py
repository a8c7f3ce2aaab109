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


class LaunchError(RuntimeError):
    """The launcher started fewer processes than asked for."""


def check_launch(environ=None) -> None:
    """Refuse `accelerate launch --cpu --num_processes N` (N > 1), which starts one process.

    Why: accelerate starts several CPU processes only through MPI (`--mpirun_hostfile`);
    without it `--cpu` runs the script once and the job would silently train as one process.
    The signature: accelerate's CPU flag and a rendezvous port (set only for N > 1) but no
    rank from torchrun or MPI.
    """
    env = os.environ if environ is None else environ
    cpu = env.get("ACCELERATE_USE_CPU", "").lower() in ("true", "1", "yes")
    ranked = any(key in env for key in ("RANK", "WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"))
    if cpu and "MASTER_PORT" in env and not ranked:
        raise LaunchError(
            "`accelerate launch --cpu --num_processes N` started ONE process: accelerate runs several CPU "
            "processes only through MPI (--mpirun_hostfile).  Use `accelerate launch --multi_gpu --num_processes N "
            "-m gendeg.cli ...` (without GPUs it starts N CPU processes that train together over gloo) or "
            "`torchrun --nproc_per_node N -m gendeg.cli ...`.")
