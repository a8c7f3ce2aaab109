"""What keeps Snakemake, DVC and MLflow telling one story (docs/orchestration.md).

- Only an invocation that runs jobs writes resolved_params/ (a dry run or `--summary` writes
  nothing), as Snakemake itself parsed its command line (`snakemake_mode`), and it does so
  holding the project lock, so no second invocation can change a running pipeline's inputs.
  The project lock is DVC's own repository lock, plus DVC's stage lock while `dvc repro` runs a
  stage command: `snakemake` and `dvc repro` lock each other out, whichever started first.
- After Snakemake succeeds, DVC records only the stages a job built from their current inputs,
  as the jobs' own records say (gendeg.pipeline.built), never the whole pipeline on trust.
- Every job holds a lock on its output for as long as it runs, so a job orphaned by a
  killed orchestrator cannot be joined by a second copy writing the same output."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gendeg.pipeline.config import RESOLVED_DIR, resolved_texts

LOCK_DIR = Path(".gendeg") / "locks"

# What an invocation does is decided by Snakemake's own parse of its command line (its argparse
# namespace in snakemake.cli.args_to_api, so abbreviations like `--summ` and combined flags like
# `-pt` read as Snakemake reads them): any of these destinations picks a branch that runs no job.
NO_JOB_MODES = ("dryrun", "lint", "list_target_rules", "list_rules", "print_compilation", "containerize", "report",
                "generate_unit_tests", "dag", "rulegraph", "filegraph", "d3dag", "unlock", "cleanup_metadata",
                "conda_cleanup_envs", "conda_create_envs_only", "list_conda_envs", "cleanup_shadow",
                "container_cleanup_images", "list_changes", "list_input_changes", "list_params_changes",
                "list_untracked", "summary", "detailed_summary", "archive", "delete_all_output", "delete_temp_output")


def _snakemake_args():
    """Snakemake's parsed command line, from the frame that is parsing this Snakefile (None under the Python API)."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "args_to_api" and "args" in frame.f_locals:
            return frame.f_locals["args"]
        frame = frame.f_back
    return None


def snakemake_mode(workflow) -> str:
    """'run' (jobs run), 'touch' (outputs marked up to date, nothing built) or 'inspect' (a dry run,
    --summary, --list, --unlock, ...: nothing may be written).  Hooks can also ask `workflow.touch`."""
    if not workflow.is_main_process:
        return "inspect"
    args = _snakemake_args()
    if args is None:  # the Python API: only its dry-run setting is known while the Snakefile is read
        return "inspect" if workflow.output_settings.dryrun else "run"
    if any(getattr(args, name, None) for name in NO_JOB_MODES):
        return "inspect"
    return "touch" if getattr(args, "touch", False) else "run"


class PipelineBusy(RuntimeError):
    """Another orchestrator or job holds the lock this one needs; the message says which."""


def runs_jobs(workflow) -> bool:
    """Whether this Snakemake invocation runs jobs (or touches outputs): only then may it write resolved parameters."""
    return snakemake_mode(workflow) != "inspect"


def require_gendeg_command() -> None:
    """Every rule runs `gendeg`; without it on PATH each job fails and Snakemake deletes its outputs
    (git-tracked reports/ too).  Refuse before any job instead."""
    import shutil

    if shutil.which("gendeg") is None:
        from gendeg.pipeline.config import ConfigError

        raise ConfigError("`gendeg` is not on PATH, and every rule runs it: activate the project's environment "
                           "(e.g. `source .venv/bin/activate`, or `pip install -e .`) and run again")


def dvc_modified_outputs(root: str | Path = ".") -> set[str] | None:
    """Outputs `dvc status` calls changed (None when it cannot say, e.g. another DVC command holds its lock)."""
    import json

    done = subprocess.run([str(Path(sys.executable).parent / "dvc"), "status", "--json"], cwd=root,
                          capture_output=True, text=True)
    try:
        status = json.loads(done.stdout) if done.returncode == 0 else None
    except json.JSONDecodeError:
        status = None
    if not isinstance(status, dict):
        return None
    return {path.rstrip("/") for changes in status.values() if isinstance(changes, list) for change in changes
            if isinstance(change, dict) for path in (change.get("changed outs") or {})}


def force_changed_outputs(root: str | Path = ".", forget_restored: bool = False) -> list[str]:
    """Have Snakemake rebuild outputs that changed since the job that built them (gendeg.pipeline.built)
    and that DVC, where there is one, also calls modified: Snakemake compares modification times, so a
    file deleted from a folder output goes unseen.  Added to the invocation's own `--forcerun` set (its
    DAG settings, read by the DAG it builds next).  `forget_restored`: drop the records of outputs DVC
    put back as dvc.lock has them (run mode only; a dry run writes nothing)."""
    from gendeg.pipeline.built import changed_outputs, forget

    changed = changed_outputs(root)
    if changed and (Path(root) / ".dvc").is_dir():
        # DVC may have put back what dvc.lock records (its run cache, `dvc checkout`): not damage.
        modified = dvc_modified_outputs(root)
        if modified is not None:
            if forget_restored:
                forget([out for out in changed if out not in modified], root)  # no longer what a job left
            changed = [out for out in changed if out in modified]
    if not changed:
        return []
    frame = sys._getframe()
    while frame is not None:
        settings = getattr(frame.f_locals.get("self"), "dag_settings", None)
        if frame.f_code.co_name == "__post_init__" and settings is not None:
            settings.forcerun = frozenset(settings.forcerun) | frozenset(changed)
            return changed
        frame = frame.f_back
    return changed  # the Python API: named by the caller, not forced


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
    problems = size_problems(resolved)
    if problems:
        raise ConfigError(f"{source} (preset {resolved['preset']!r} applied) fails the pre-flight check:\n  "
                          + "\n  ".join(problems))
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
    problems = batch_problems(resolved) if resolved["data"]["source"] == "builtin" else []
    for key, check in checks:
        try:
            check()
        except (KeyError, ValueError, TypeError, FileNotFoundError) as error:
            problems.append(f"{key}: {error.args[0] if error.args else error}")
    if problems:
        raise ConfigError(f"{source} (preset {resolved['preset']!r} applied) fails the pre-flight check:\n  "
                          + "\n  ".join(problems))


def _default_codec() -> dict:
    """GenDeg's default codec, read from gendeg/diffusion/model.py's DEFAULT_CONFIG literal without importing
    it (torch: seconds a dry run should not pay); {} if the literal cannot be read."""
    import ast

    import gendeg

    source = Path(gendeg.__file__).parent / "diffusion" / "model.py"
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(getattr(t, "id", None) == "DEFAULT_CONFIG" for t in targets):
                try:
                    return dict(ast.literal_eval(node.value).get("codec") or {})
                except ValueError:
                    return {}
    return {}


def size_problems(resolved: dict) -> list[str]:
    """Image sizes GenDeg's codec cannot encode (pixel_unshuffle: a multiple of its factor), found from
    params alone so that a dry run sees them too."""
    codec = {**_default_codec(), **(resolved["gendeg"]["model"].get("codec") or {})}
    if codec.get("type") != "pixel_unshuffle" or not isinstance(codec.get("factor"), int):
        return []
    factor, problems = codec["factor"], []
    for key, value in (("gendeg.image_size", resolved["gendeg"].get("image_size")),
                       ("gendeg.train.crop", resolved["gendeg"]["train"].get("crop"))):
        if isinstance(value, int) and value % factor:
            problems.append(f"{key}: {value} is not a multiple of the codec factor {factor} "
                            f"(gendeg.model.codec.factor); use e.g. {max(factor, value - value % factor)}")
    return problems


def batch_problems(resolved: dict) -> list[str]:
    """restorer.train.batch_size larger than the pairs of the built-in data's smallest training set
    (`existing`): every batch would repeat pairs, and a huge one fails allocating memory hours in."""
    from gendeg.data.builtin_data import resolve_config, selected_specs

    try:
        builtin = resolve_config(resolved["data"].get("builtin"))
    except (KeyError, ValueError):
        return []  # reported by the data.builtin check
    standins, _ = selected_specs(builtin)
    pairs = builtin["train_pairs_per_standin"] * sum(spec.degradation in resolved["degradations"] for spec in standins)
    batch = resolved["restorer"]["train"]["batch_size"]
    if pairs and batch > pairs:
        return [f"restorer.train.batch_size: {batch} exceeds the {pairs} training pairs the built-in data makes "
                f"(data.builtin.train_pairs_per_standin {builtin['train_pairs_per_standin']} x "
                f"{pairs // builtin['train_pairs_per_standin']} stand-ins); use at most {pairs}"]
    return []


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
        try:
            _refuse_running_dvc_stage(root)
        except PipelineBusy:
            release_project_lock()
            raise
    else:
        _HELD.append(_file_lock(root / LOCK_DIR / "pipeline.lock", "another `snakemake` run"))


def _refuse_running_dvc_stage(root: Path) -> None:
    """`dvc repro` releases its repository lock while a stage's command runs and keeps only its
    read/write lock on the stage's paths (.dvc/tmp/rwlock): a pipeline started then must still refuse,
    before it touches any output.  Held by us, DVC's repository lock keeps the file from changing."""
    import json

    import psutil

    path = root / ".dvc" / "tmp" / "rwlock"
    try:
        locks = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return
    held = [(target, info) for target, info in (locks.get("write") or {}).items()]
    held += [(target, info) for target, infos in (locks.get("read") or {}).items() for info in infos]
    running = [(target, info) for target, info in held
               if isinstance(info, dict) and info.get("pid") != os.getpid() and psutil.pid_exists(info.get("pid", -1))]
    if running:
        target, info = running[0]
        raise PipelineBusy(f"`{info.get('cmd', 'dvc')}` (pid {info['pid']}) is running a DVC stage on {target} "
                           f"({path}): one pipeline run at a time in {root.resolve()}; wait for it or stop it")


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


def stages_to_commit(root: str | Path = ".") -> tuple[list[str], dict[str, str]]:
    """(DVC stages a job built from their current dependencies, {other stage: why not}).

    A stage qualifies only on its jobs' own records (gendeg.pipeline.built.vouched): a job built
    every output, the outputs are as it left them, and no file dependency changed after it started.
    Never on what Snakemake thinks up to date: that re-vouched outputs damaged outside any job.
    resolve_params always qualifies: this invocation wrote resolved_params/ from params.yaml.
    """
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    from gendeg.pipeline.built import vouched

    commit, skip = [], {}
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            if stage.name == "resolve_params":
                commit.append(stage.name)
                continue
            outs = [out.def_path.rstrip("/") for out in stage.outs]
            deps = [dep.def_path.rstrip("/") for dep in stage.deps if not isinstance(dep, ParamsDependency)]
            reason = vouched(outs, deps, root)
            if reason is None:
                commit.append(stage.name)
            else:
                skip[stage.name] = reason
    return commit, skip


class DvcCommitError(RuntimeError):
    """`dvc commit` failed: dvc.lock is not in step with what Snakemake built."""


def commit_to_dvc(root: str | Path = ".") -> tuple[list[str], dict[str, str]]:
    """Record in dvc.lock the stages a job built from their current inputs; return (committed, {skipped: why})."""
    commit, skip = stages_to_commit(root)
    if commit:
        # --no-relink: DVC would otherwise re-copy every output from its cache, giving a file output a new
        # time after the job downstream of it ran; Snakemake, with no checksum of its own for a file DVC
        # built, then calls the input updated and retrains (a run after `dvc repro`).
        done = subprocess.run([str(Path(sys.executable).parent / "dvc"), "commit", "--force", "--no-relink", *commit],
                              cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr + done.stdout).strip() or f"exit status {done.returncode}, no output"
            raise DvcCommitError(f"`dvc commit --force --no-relink {' '.join(commit)}` failed; dvc.lock is not in step "
                                 f"with Snakemake's outputs:\n{reason}")
    return commit, skip


def open_store_for_job() -> list[str]:
    """What every pipeline job does before its stage: create the MLflow store under a file lock (two
    jobs creating a fresh SQLite store at once crash, "table ... already exists"), then mark KILLED
    the runs whose process is gone, its own killed predecessor among them: a bare `dvc repro` has no
    start hook to do it.  Returns the ids marked."""
    create_store()
    return reap_dead_runs()


def create_store() -> str:
    """tracking.init_store under .gendeg/locks/mlflow-store.lock: one process creates a fresh store."""
    from filelock import FileLock

    from gendeg.pipeline import tracking

    lock = tracking.project_root() / LOCK_DIR / "mlflow-store.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock), timeout=300):
        return tracking.init_store()


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
    run = tracking._retry(client.create_run, create_store(), run_name=name, tags=tags)
    tracking._retry(client.set_terminated, run.info.run_id, "FAILED")
    return run.info.run_id
