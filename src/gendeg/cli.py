"""`gendeg <stage> ...`: the one entry point Snakemake rules and DVC stages call.

Each stage subcommand is made from the stage table (gendeg.pipeline.stage_table): it reads its
resolved stage config (resolved_params/<stage>.json), takes its input and output paths as
arguments, and calls one stage function.  Nothing else.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback
from contextlib import nullcontext
from pathlib import Path

from gendeg.data.ingest import IngestError
from gendeg.data.manifest import ManifestError
from gendeg.intensity.stats import IntensityStatsError
from gendeg.pipeline.built import forget, record
from gendeg.pipeline.config import ConfigError, read_stage_config, write_resolved
from gendeg.pipeline.orchestration import PipelineBusy, job_lock
from gendeg.pipeline.stage_table import COMMANDS, PATH_ROLES, Command, example
from gendeg.pipeline.stage_table import command as table_command
from gendeg.restorers.common import RestorerConfigError
from gendeg.runtime.distributed import is_main_process, process_index
from gendeg.runtime.progress import set_console


def _set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def _job_threads(args) -> int | None:
    """The job's torch threads: `threads` of its resolved config (params.yaml `threads:`), so a
    result's thread count is a recorded parameter and the same under Snakemake and DVC.
    --threads serves commands without a config and may not contradict one."""
    config = getattr(args, "config", None)
    if config is None or not Path(config).exists():
        return args.threads
    configured = read_stage_config(config).get("threads")
    if configured is None:
        return args.threads
    if args.threads is not None and args.threads != configured:
        raise ConfigError(f"--threads {args.threads} contradicts threads: {configured} in {config}; "
                          f"set the thread count in params.yaml (threads:), where both orchestrators read it")
    return configured


def cmd_resolve_params(args) -> None:
    from gendeg.pipeline.config import load_params
    from gendeg.pipeline.orchestration import preflight

    preflight(load_params(args.params), str(args.params))  # DVC's first stage: fail before any work
    for path in write_resolved(args.params, args.out):
        print(f"updated {path}")


def run_stage(command: Command):
    """The subcommand's action: call the stage function with the arguments the table declares."""

    def run(args) -> None:
        import importlib

        module, name = command.function.split(":")
        function = getattr(importlib.import_module(module), name)
        kwargs = {arg.param: getattr(args, arg.name) for arg in command.args if arg.param}
        if command.threads_param:
            kwargs[command.threads_param] = args.threads
        if command.sections is None:
            function(**kwargs)
        else:
            function(read_stage_config(args.config), **kwargs)

    return run


def cmd_comparison(args) -> None:
    from gendeg.pipeline.config import COMPARISONS, set_comparison

    changed = set_comparison(args.params, args.name)
    wanted = COMPARISONS[args.name]
    print(f"{args.params}: " + (", ".join(f"{k} = {wanted[k]}" for k in changed) if changed else "already set") +
          f" ({args.name} comparison)")


def cmd_tracking(args) -> None:
    from gendeg.pipeline import tracking

    from gendeg.pipeline.orchestration import create_store

    print(f"MLflow store {tracking.tracking_uri()}, experiment id {create_store()}")


def cmd_track(args) -> int:
    """Run a command (e.g. `dvc repro`) under one parent MLflow run, as Snakemake's onstart does."""
    from gendeg.pipeline import tracking

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise SystemExit("usage: gendeg track -- COMMAND ...")
    if Path("params.yaml").exists() and Path("dvc.yaml").exists():
        # `dvc repro` re-runs resolve_params only when params.yaml changes; refreshing here (under
        # the project lock) also lets it see changed user data files (resolved_params/user_data.json).
        from gendeg.pipeline.orchestration import hold_project_lock, release_project_lock

        hold_project_lock(".")
        try:
            write_resolved("params.yaml", "resolved_params")
        finally:
            release_project_lock()
    from gendeg.pipeline.orchestration import create_store, reap_dead_runs

    create_store()
    reaped = reap_dead_runs()
    if reaped:
        print(f"MLflow: marked {len(reaped)} run(s) of killed invocations KILLED")
    run_id = tracking.start_parent(" ".join(command))
    code = subprocess.call(command, env={**os.environ, tracking.PARENT_ENV: run_id})
    tracking.end_parent(run_id, success=code == 0)
    if code == 0:
        from gendeg.pipeline.answer import final_lines

        print("\n".join(final_lines(".")))  # the run's answer, last (gendeg.pipeline.answer)
    return code


# Per subcommand that is no stage: what it is for beyond its one-line help, and an example.
OTHER_HELP = {
    "resolve-params": ("Applies the preset selected by `preset:` to params.yaml, validates every key, and writes one\n"
                       "JSON file per stage with exactly the parameters that stage reads.",
                       "gendeg resolve-params --params params.yaml --out resolved_params"),
    "comparison": ("Rewrites the keys that shape the DAG (architectures, training_sets, scaling_counts, seeds)\n"
                   "in params.yaml itself, where presets may not set them.",
                   "gendeg comparison full"),
    "tracking": ("Snakemake and `gendeg track` call it before jobs start in parallel (a fresh SQLite store\n"
                 "must be created by one process).", "gendeg tracking init"),
    "track": ("One MLflow parent run holds the runs of every job the command starts; prints the\n"
              "headline when the command succeeds.", "gendeg track -- dvc repro"),
}


def _subparser(sub, name: str, help_text: str, description: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_text, description=f"{help_text[0].upper()}{help_text[1:]}.\n\n{description}",
                          epilog=f"example (as the pipeline runs it):\n  {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_stage_command(sub, command: Command) -> None:
    """`gendeg <command>`: its options from the stage table (gendeg.pipeline.stage_table)."""
    p = _subparser(sub, command.name, command.help, command.description, example(command))
    p.set_defaults(func=run_stage(command))
    if command.sections is not None:
        p.add_argument("--config", type=Path, required=True,
                       help="the stage's resolved parameters, resolved_params/<stage>.json (gendeg resolve-params)")
    for arg in command.args:
        kind = Path if arg.role in PATH_ROLES else arg.type
        p.add_argument(arg.flag, dest=arg.name, type=kind, required=arg.required, default=arg.default, help=arg.help,
                       **({"choices": list(arg.choices)} if arg.choices else {}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gendeg", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of a command without --config (a stage reads `threads` from its config)")
    # --log-file: the spelling to use under `accelerate launch` / torchrun, whose own --log_dir
    # option makes a bare --log ambiguous to their argument parsers.
    parser.add_argument("--log", "--log-file", dest="log", type=Path, default=None,
                        help="write stdout and stderr to this file")
    parser.add_argument("--benchmark", type=Path, default=None, help="write wall time and peak memory here (TSV)")
    sub = parser.add_subparsers(dest="command_name", required=True)

    def other(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = _subparser(sub, name, help_text, *OTHER_HELP[name])
        p.set_defaults(func=func)
        return p

    p = other("resolve-params", cmd_resolve_params, "apply the preset and write resolved_params/<stage>.json")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="the parameter file (default: params.yaml)")
    p.add_argument("--out", type=Path, default=Path("resolved_params"),
                   help="folder for <stage>.json (default: resolved_params); a file is rewritten only when it changes")
    for command in COMMANDS:
        add_stage_command(sub, command)

    p = other("comparison", cmd_comparison,
              "set the DAG-shaping keys of params.yaml for a comparison (architectures, training sets, seeds)")
    p.add_argument("name", choices=["default", "full", "seeds", "one-seed"],
                   help="default: one architecture, two training sets; full: the paper's three architectures, four "
                        "training sets and the scaling curve; seeds: every restorer over five seeds (the spread of "
                        "the headline); one-seed: back to one")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="the parameter file to edit (default: params.yaml)")

    p = other("tracking", cmd_tracking, "create the MLflow store and experiment (before parallel jobs start)")
    p.add_argument("action", choices=["init"], help="init: create the store, or point a moved project's artifact paths here")

    p = other("track", cmd_track, "run a command under one MLflow parent run: gendeg track -- dvc repro")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command to run after `--`, e.g. dvc repro")
    return parser


def _redirect_to_log(path: Path) -> int:
    """Send this process's stdout and stderr (Python and native) to `path`; return the old stderr.

    Both orchestrators call the same command with the same --log, so logs/ looks the same
    after `snakemake` and after `dvc repro`.  The other processes of a multi-process job
    (`gendeg.runtime.distributed`) log beside it, to <log>.rank<N>.
    """
    if not is_main_process():
        path = path.with_name(f"{path.name}.rank{process_index()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    console = os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    return console


def _write_benchmark(path: Path, seconds: float) -> None:
    """A Snakemake-style benchmark TSV, also when the job runs under DVC.

    Snakemake counts a job's benchmark file among its outputs; a job re-run by `dvc repro`
    must refresh it too, or Snakemake would think the job out of date.
    """
    import resource

    from gendeg.runtime.atomic import write_text

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    usage = resource.getrusage(resource.RUSAGE_SELF)
    clock = f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{seconds % 60:06.3f}"
    write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{seconds:.4f}\t{clock}\t{rss_mb:.2f}\t{usage.ru_utime + usage.ru_stime:.2f}\n", path)


# Subcommand -> MLflow stage name, for the commands a pipeline job runs.
_JOB_STAGES = {command.name: command.config for command in COMMANDS}


def _job_outputs(args) -> list[Path]:
    """The outputs a pipeline job writes (its stage's outputs in the stage table)."""
    if args.command_name not in _JOB_STAGES:
        return []
    return [getattr(args, arg.name) for arg in table_command(args.command_name).args if arg.role in ("out", "outdir")]


def _open_store() -> None:
    """The MLflow store, created under a lock, and predecessors' dead runs marked KILLED
    (gendeg.pipeline.orchestration.open_store_for_job); the job's own run says if MLflow is unusable."""
    from gendeg.pipeline.orchestration import open_store_for_job

    try:
        reaped = open_store_for_job()
    except Exception as error:  # noqa: BLE001 - the job opens its run later and fails there, with MLflow's reason
        print(f"MLflow: could not prepare the store before the job: {error}", file=sys.stderr)
        return
    if reaped:
        print(f"MLflow: marked {len(reaped)} run(s) whose process was gone KILLED")


def _record_failure(args) -> None:
    """Every job that started ends with an MLflow run: one that failed before opening its own gets a FAILED one."""
    from gendeg.pipeline import tracking
    from gendeg.pipeline.orchestration import record_failed_job

    if tracking.OPENED:
        return
    stage = _JOB_STAGES[args.command_name]
    restorer = "-".join(filter(None, (getattr(args, "arch", None), getattr(args, "train_set", None))))
    label = getattr(args, "job", None) or getattr(args, "degradation", None) or restorer or None
    if label and getattr(args, "seed", None) is not None:  # one restorer run per seed (`nafnet · gends · s1`)
        label = f"{label}@{args.seed}"
    reason = ""
    if args.log and args.log.exists():
        reason = "".join(args.log.read_text(errors="replace").splitlines(keepends=True)[-25:])
    try:  # named as the job's own run would be (`nafnet · gends`), architecture included
        record_failed_job(stage, tracking.display_name(stage, f"{stage}:{label}") if label else stage,
                          reason or "failed before its run opened")
    except Exception as error:  # noqa: BLE001 - the job's own failure is what the exit status reports
        print(f"gendeg {args.command_name}: could not record the failure in MLflow: {error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = _redirect_to_log(args.log) if args.log else None
    set_console(console)  # running bars report one line at a time to the terminal (gendeg.runtime.progress)
    started = time.perf_counter()
    try:
        _set_threads(_job_threads(args))
        # One writer per output: a second copy of a job (beside an orphan of a killed
        # orchestrator, or a second `dvc repro`) fails here instead of racing the first.
        out = getattr(args, "out", None) or getattr(args, "out_json", None)
        with job_lock(out) if out is not None and is_main_process() else nullcontext():
            built = _job_outputs(args) if is_main_process() else []
            forget(built)  # a job that fails or is killed leaves no record of its outputs
            if args.command_name in _JOB_STAGES and is_main_process():
                _open_store()
            started_ns = time.time_ns()
            code = args.func(args) or 0
            if code == 0 and built:  # what this job built, for dvc.lock (gendeg.pipeline.built)
                record(built, started_ns, sys.argv if argv is None else ["gendeg", *argv])
    except (ConfigError, ManifestError, IngestError, IntensityStatsError, RestorerConfigError, PipelineBusy) as error:
        print(f"gendeg {args.command_name}: {error}", file=sys.stderr)
        code = 2
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    if code != 0 and is_main_process() and args.command_name in _JOB_STAGES:
        _record_failure(args)
    if code == 0 and args.benchmark and is_main_process():
        _write_benchmark(args.benchmark, time.perf_counter() - started)
    if console is not None and code != 0:
        tail = "".join(args.log.read_text(errors="replace").splitlines(keepends=True)[-25:])
        os.write(console, f"gendeg {args.command_name} failed; log {args.log} ends with:\n{tail}".encode())
    return code


if __name__ == "__main__":
    sys.exit(main())
