"""What keeps Snakemake, DVC and MLflow telling one story (docs/orchestration.md).

- Only an invocation that runs jobs writes resolved_params/ (a dry run or `--summary` writes
  nothing) and it does so holding the project lock, so no second invocation can change a
  running pipeline's inputs.  The project lock is DVC's own repository lock: `dvc repro`
  holds it for its whole run, so `snakemake` and `dvc repro` lock each other out.
- After Snakemake succeeds, DVC records only the stages whose outputs Snakemake considers
  produced from their current inputs, never the whole pipeline on trust.
- Every job holds a lock on its output for as long as it runs, so a job orphaned by a
  killed orchestrator cannot be joined by a second copy writing the same output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gendeg.pipeline.config import RESOLVED_DIR, resolved_texts

# Snakemake command-line modes that build the DAG but run no job: they must write nothing.
INSPECTION_FLAGS = frozenset({
    "--dry-run", "--dryrun", "-n", "--unlock", "--summary", "-S", "--detailed-summary", "-D", "--list-rules",
    "--list", "-l", "--list-target-rules", "--lt", "--report", "--dag", "--rulegraph", "--filegraph", "--d3dag",
    "--lint", "--list-changes", "--lc", "--list-input-changes", "--li", "--list-params-changes", "--lp",
    "--list-code-changes", "--list-untracked", "--lu", "--print-compilation", "--containerize", "--export-cwl",
    "--generate-unit-tests", "--archive", "--cleanup-metadata", "--cm", "--delete-all-output",
    "--delete-temp-output", "--conda-create-envs-only", "--conda-cleanup-envs", "--cleanup-shadow",
    "--list-conda-envs", "--runtime-report",
})
LOCK_DIR = Path(".gendeg") / "locks"


def touches_only(argv: list[str] | None = None) -> bool:
    """Whether this Snakemake invocation is `--touch`: it marks outputs up to date, builds nothing.

    Such a run must not `dvc commit`: DVC would then vouch for outputs that were not made from
    their recorded inputs, and re-saving them rewrites files in DVC's order, undoing the touch
    (after `dvc pull`, `snakemake -n` then wanted to re-run jobs on some runs, faults.json).
    """
    argv = sys.argv[1:] if argv is None else argv
    return any(arg in ("--touch", "-t") for arg in argv)


class PipelineBusy(RuntimeError):
    """Another orchestrator or job holds the lock this one needs; the message says which."""


def runs_jobs(workflow, argv: list[str] | None = None) -> bool:
    """Whether this Snakemake invocation will run jobs (so it may write resolved parameters).

    Snakemake decides its executor only after parsing the Snakefile, so the parse sees the
    dry-run flag (output_settings) and the command line, not the executor.
    """
    if not workflow.is_main_process or workflow.output_settings.dryrun:
        return False
    argv = sys.argv[1:] if argv is None else argv
    return not any(arg.split("=", 1)[0] in INSPECTION_FLAGS for arg in argv)


def changed_stages(resolved: dict, out_dir: str | Path = RESOLVED_DIR) -> list[str]:
    """Stages whose resolved_params/<stage>.json is missing or differs from params.yaml's."""
    out_dir = Path(out_dir)
    changed = []
    for stage, text in resolved_texts(resolved).items():
        path = out_dir / f"{stage}.json"
        if not path.exists() or path.read_text() != text:
            changed.append(stage)
    return changed


def preflight(resolved: dict, source: str = "params.yaml", components: bool = True) -> None:
    """Checks that would otherwise fail a job hours in, run before any job starts (ConfigError naming the key).

    `components`: also build the settings of the built-in data, GenDeg's model and every restorer
    architecture, whose modules own their keys (a typo there is an unknown key, not a silent default);
    this imports torch, so the Snakefile does it only in an invocation that runs jobs.
    """
    from gendeg.pipeline.config import ConfigError, check_user_data

    check_user_data(resolved, source)
    if not components:
        return
    from gendeg.data.builtin_data import resolve_config
    from gendeg.diffusion.model import merge_config as gendeg_model
    from gendeg.restorers import DEFAULTS
    from gendeg.restorers.common import merge_config as restorer_model

    checks = [("gendeg.model", lambda: gendeg_model(resolved["gendeg"]["model"]))]
    if resolved["data"]["source"] == "builtin":
        checks.append(("data.builtin", lambda: resolve_config(resolved["data"].get("builtin"))))
    for arch in resolved["architectures"]:
        checks.append((f"restorer.model.{arch}",
                       lambda arch=arch: restorer_model(arch, DEFAULTS[arch], dict(resolved["restorer"]["model"][arch]))))
    problems = []
    for key, check in checks:
        try:
            check()
        except (KeyError, ValueError, TypeError, FileNotFoundError) as error:
            problems.append(f"{key}: {error.args[0] if error.args else error}")
    if problems:
        raise ConfigError(f"{source} (preset {resolved['preset']!r} applied) fails the pre-flight check:\n  "
                          + "\n  ".join(problems))


def standin_inputs(resolved: dict, stage: str) -> list[str]:
    """What a dry run's stand-in for resolved_params/<stage>.json depends on (workflow/rules/common.smk):
    params.yaml, and for the user-data fingerprint the user's folders and newest file."""
    from gendeg.data.ingest.fingerprint import watched_paths
    from gendeg.pipeline.config import USER_DATA

    return ["params.yaml"] + (watched_paths(resolved["data"]) if stage == USER_DATA else [])


# Held for the life of the process that took it (Snakemake's main process): the kernel
# releases it when that process dies, even by kill -9, so it never goes stale.
_HELD: list = []


def hold_project_lock(root: str | Path = ".") -> None:
    """Take DVC's repository lock (or, without DVC, .gendeg/locks/pipeline.lock) until exit."""
    if _HELD:
        return
    root = Path(root)
    if (root / ".dvc").is_dir():
        from dvc.lock import LockError
        from dvc.repo import Repo

        repo = Repo(str(root))
        try:
            repo.lock.lock()
        except LockError as error:
            raise PipelineBusy(
                f"another DVC command (e.g. `dvc repro`) or `snakemake` run holds {repo.lock.lockfile}: "
                f"one pipeline run at a time in {root.resolve()} ({error})") from error
        _HELD.append(repo)
    else:
        _HELD.append(_file_lock(root / LOCK_DIR / "pipeline.lock", "another `snakemake` run"))


def release_project_lock() -> None:
    while _HELD:
        held = _HELD.pop()
        if hasattr(held, "lock"):
            held.lock.unlock()
            held.close()
        else:
            held.release()


def _file_lock(path: Path, who: str):
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout as error:
        holder = path.with_suffix(".pid")
        pid = holder.read_text().strip() if holder.exists() else "unknown"
        raise PipelineBusy(f"{who} (pid {pid}) holds {path}; it is still running") from error
    path.with_suffix(".pid").write_text(f"{os.getpid()}\n")
    return lock


@contextmanager
def job_lock(out: str | Path, root: str | Path = ".") -> Iterator[None]:
    """Hold .gendeg/locks/<out>.lock while a job writes `out`: a second copy fails at once.

    The lock lives outside the output (which DVC hashes) and dies with its process.
    """
    name = str(Path(out)).strip("/").replace("/", "__")
    lock = _file_lock(Path(root) / LOCK_DIR / f"{name}.lock", f"a job writing {out}")
    try:
        yield
    finally:
        lock.release()


def up_to_date_outputs(root: str | Path = ".") -> dict[str, str]:
    """Snakemake's own view: output path -> plan ('no update' when produced from current inputs).

    `snakemake -n --summary` over the whole DAG (target `all`), the same check `snakemake -n` makes.
    """
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--summary", "--cores", "1", "--quiet", "all"],
                          cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`snakemake -n --summary` failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    plans = {}
    for line in done.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) >= 6 and fields[0] != "output_file":
            plans[fields[0].rstrip("/")] = fields[-1]
    if not plans:
        raise RuntimeError(f"`snakemake -n --summary` listed no outputs:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return plans


def stages_to_commit(root: str | Path = ".") -> tuple[list[str], list[str]]:
    """(DVC stages whose every output Snakemake calls up to date, the other stages).

    resolve_params always qualifies: this invocation wrote resolved_params/ from params.yaml.
    """
    from dvc.repo import Repo

    plans = up_to_date_outputs(root)
    commit, skip = [], []
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            if stage.name == "resolve_params":
                commit.append(stage.name)
                continue
            outs = [out.def_path.rstrip("/") for out in stage.outs]
            fresh = all(plans.get(out) == "no update" and (Path(root) / out).exists() for out in outs)
            (commit if fresh else skip).append(stage.name)
    return commit, skip


class DvcCommitError(RuntimeError):
    """`dvc commit` failed: dvc.lock is not in step with what Snakemake built."""


def commit_to_dvc(root: str | Path = ".") -> tuple[list[str], list[str]]:
    """Record in dvc.lock the stages Snakemake built from their current inputs; return (committed, skipped)."""
    commit, skip = stages_to_commit(root)
    if commit:
        done = subprocess.run([str(Path(sys.executable).parent / "dvc"), "commit", "--force", *commit], cwd=root,
                              capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr + done.stdout).strip() or f"exit status {done.returncode}, no output"
            raise DvcCommitError(f"`dvc commit --force {' '.join(commit)}` failed; dvc.lock is not in step "
                                 f"with Snakemake's outputs:\n{reason}")
    return commit, skip


def reap_dead_runs() -> list[str]:
    """Mark KILLED the RUNNING MLflow runs whose process (same host) is gone; return their ids.

    A killed invocation cannot end its runs; the next one (Snakemake's onstart, `gendeg track`)
    does.  A run owned by another host (a cluster node) is left alone: its process cannot be seen.
    """
    import socket

    import psutil

    from gendeg.pipeline import tracking

    mlflow = tracking._mlflow()
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    if experiment is None:
        return []
    host = socket.gethostname()
    reaped = []
    for run in client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'", max_results=5000):
        tags = run.data.tags
        if tags.get("gendeg.host") != host or not tags.get("gendeg.pid", "").isdigit():
            continue
        pid = int(tags["gendeg.pid"])
        try:  # alive, and not a later process that reuses the pid
            alive = psutil.Process(pid).create_time() <= run.info.start_time / 1000 + 1
        except psutil.NoSuchProcess:
            alive = False
        if not alive:
            tracking._retry(client.set_tag, run.info.run_id, "gendeg.ended_by",
                            f"its process {pid} on {host} was gone when a later invocation started")
            tracking._retry(client.set_terminated, run.info.run_id, "KILLED")
            reaped.append(run.info.run_id)
    return reaped


def record_failed_job(stage: str, name: str, reason: str) -> str:
    """A FAILED MLflow run for a job that stopped before opening its own (bad input, a held lock)."""
    from gendeg.pipeline import tracking

    mlflow = tracking._mlflow()
    client = mlflow.MlflowClient()
    tags = {"gendeg.stage": stage, "gendeg.error": reason[-5000:], **tracking.git_tags(), **tracking.owner_tags()}
    parent = os.environ.get(tracking.PARENT_ENV)
    if parent:
        tags["mlflow.parentRunId"] = parent
    run = tracking._retry(client.create_run, tracking.init_store(), run_name=name, tags=tags)
    tracking._retry(client.set_terminated, run.info.run_id, "FAILED")
    return run.info.run_id
