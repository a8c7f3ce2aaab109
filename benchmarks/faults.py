"""Kill and partial-run scenarios end to end (docs/orchestration.md), smoke preset.

Each scenario runs real commands in a fresh copy of the working tree (PYTHONPATH=<copy>/src)
and ends by recording the state both tools and MLflow report: `dvc status`, `snakemake -n`,
the MLflow run statuses, and whether every DVC-declared output matches an uninterrupted run
byte for byte.  Target: every scenario ends consistent, nothing stale, nothing lost.

    python benchmarks/faults.py [--cores 1] [--only NAME ...] [--keep]

writes benchmarks/results/faults.json.  CPU-heavy (one smoke pipeline per scenario).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gendeg.runtime.machine import provenance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # helpers: the project copy the end-to-end tests make too
from helpers.project_copy import commit_all, copy_worktree, select_preset  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "faults.json"
BIN = Path(sys.executable).parent


class Clone:
    """A fresh clone with the smoke preset; runs commands and records them."""

    def __init__(self, base: Path, name: str, cores: int, git_source: Path | None = None):
        """A copy of the working tree (tracked and untracked, not ignored files), committed in a new repository:
        the code under test is what `provenance` records (commit, and whether the tree differed from it).
        With `git_source`, a `git clone` of that repository instead (what a collaborator gets)."""
        self.dir = base / name
        self.env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GENDEG_PROJECT_ROOT")}
        self.env.update(PATH=f"{BIN}:{self.env['PATH']}", PYTHONPATH=str(self.dir / "src"), OMP_NUM_THREADS="1",
                        GENDEG_STATUS_EVERY="0")
        self.cores = cores
        self.commands: list[dict] = []
        if git_source is not None:
            subprocess.run(["git", "clone", "-q", str(git_source), str(self.dir)], check=True, capture_output=True)
            return
        copy_worktree(self.dir)
        commit_all(self.dir, "working tree", "faults")
        select_preset(self.dir, "smoke")

    def sh(self, command: str, timeout: int = 3600) -> subprocess.CompletedProcess:
        started = time.perf_counter()
        done = subprocess.run(command, shell=True, cwd=self.dir, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        self.commands.append({"command": command, "exit": done.returncode,
                              "seconds": round(time.perf_counter() - started, 1),
                              "tail": (done.stdout + done.stderr)[-600:] if done.returncode else ""})
        return done

    def start(self, command: str) -> subprocess.Popen:
        """In the background, without a shell: the pid is the command's own (kill -9 hits it alone)."""
        self.commands.append({"command": command + "  (started in the background)"})
        return subprocess.Popen(command.split(), cwd=self.dir, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    def snakemake(self, extra: str = "") -> subprocess.CompletedProcess:
        return self.sh(f"snakemake --cores {self.cores} {extra}".strip())

    def outputs(self) -> dict[str, str]:
        """SHA-256 of every file under every DVC-declared output (logs and benchmarks are not outputs)."""
        from dvc.repo import Repo

        with Repo(str(self.dir)) as repo:
            outs = sorted({out.def_path for stage in repo.index.stages for out in stage.outs
                           if stage.name != "resolve_params"})
        digests = {}
        for out in outs:
            path = self.dir / out
            # Snakemake's empty mtime marker is not content (.dvcignore lists it): a touch adds it.
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*")
                                                          if p.is_file() and p.name != ".snakemake_timestamp")
            for file in files:
                digests[file.relative_to(self.dir).as_posix()] = hashlib.sha256(file.read_bytes()).hexdigest()
        return digests

    def state(self) -> dict:
        import mlflow

        dvc = self.sh("dvc status")
        dry = self.sh(f"snakemake -n --cores {self.cores}")
        client = mlflow.MlflowClient(f"sqlite:///{self.dir / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("gendeg")
        runs = client.search_runs([experiment.experiment_id], max_results=5000) if experiment else []
        statuses: dict[str, int] = {}
        for run in runs:
            statuses[run.info.status] = statuses.get(run.info.status, 0) + 1
        return {
            "dvc_status": dvc.stdout.strip()[-1500:],
            "dvc_up_to_date": "up to date" in dvc.stdout,
            "snakemake_nothing_to_do": "Nothing to be done" in dry.stdout + dry.stderr,
            # What the dry run would do and why, when it has work (the `reason:` lines say).
            "snakemake_dry_run": "" if "Nothing to be done" in dry.stdout + dry.stderr else
            "\n".join(line for line in (dry.stdout + dry.stderr).splitlines()
                      if line.strip().startswith(("rule ", "reason:", "output:")))[-3000:],
            "mlflow_run_statuses": statuses,
        }


def wait_for(predicate, timeout: float, poll: float = 0.5) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def job_pid(clone: Clone, out: str) -> int | None:
    """The pid holding a job's output lock (gendeg.pipeline.orchestration.job_lock), if any."""
    pid_file = clone.dir / ".gendeg" / "locks" / (out.replace("/", "__") + ".pid")
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def uninterrupted(base: Path, cores: int) -> tuple[dict, dict]:
    clone = Clone(base, "uninterrupted", cores)
    clone.snakemake()
    return {"name": "uninterrupted", "commands": clone.commands, "final": clone.state()}, clone.outputs()


def kill_snakemake(base: Path, cores: int) -> tuple[dict, dict]:
    """kill -9 of snakemake while GenDeg trains: its job lives on as an orphan."""
    clone = Clone(base, "kill_snakemake", cores)
    run = clone.start(f"snakemake --cores {cores}")
    checkpoint = clone.dir / "checkpoints" / "train_gendeg"
    events = {"checkpoint_seen": wait_for(lambda: checkpoint.exists() or run.poll() is not None, 1800)
              and checkpoint.exists()}
    os.kill(run.pid, signal.SIGKILL)  # snakemake only, not its job
    run.wait()
    events["orphan_alive_after_kill"] = job_pid(clone, "models/gendeg") is not None
    second = clone.snakemake()
    events["second_run_refused"] = second.returncode != 0
    clone.sh("snakemake --unlock")
    if job_pid(clone, "models/gendeg") is not None:
        beside = clone.snakemake()
        events["run_beside_orphan_exit"] = beside.returncode
        events["run_beside_orphan_named_the_orphan"] = "a job writing models/gendeg" in beside.stdout + beside.stderr
    events["orphan_finished"] = wait_for(lambda: job_pid(clone, "models/gendeg") is None, 1800)
    clone.snakemake()
    return {"name": "kill_snakemake", "commands": clone.commands, "events": events, "final": clone.state()}, \
        clone.outputs()


def kill_job(base: Path, cores: int) -> tuple[dict, dict]:
    """kill -9 of a restorer training job: snakemake fails; the next run resumes from the checkpoint."""
    clone = Clone(base, "kill_job", cores)
    run = clone.start(f"snakemake --cores {cores}")
    target = "models/restorer/nafnet/gends/seed-0"
    last = clone.dir / "checkpoints/train_restorer/nafnet/gends/seed-0/last"
    events = {"job_seen": wait_for(lambda: last.exists() or run.poll() is not None, 3600, poll=0.2) and last.exists()}
    pid = job_pid(clone, target)
    if pid:
        os.kill(pid, signal.SIGKILL)
    events["killed_pid"] = pid
    events["snakemake_exit"] = run.wait()
    clone.snakemake()
    return {"name": "kill_job", "commands": clone.commands, "events": events, "final": clone.state()}, clone.outputs()


def halve_restorer_lr(params: Path) -> str:
    """Edit restorer.train.lr 2.0e-3 -> 1.0e-3 in params.yaml (structure_correction has an lr too); returns the original text."""
    original = params.read_text()
    start = original.index("\nrestorer:\n")
    params.write_text(original[:start] + re.sub(r"(?m)^(    lr: )2\.0e-3$", r"\g<1>1.0e-3", original[start:], count=1))
    return original


def partial_run(base: Path, cores: int) -> tuple[dict, dict]:
    """A finished run, an lr edit, a partial target, then both tools to finish; the edit undone at the end."""
    clone = Clone(base, "partial_run", cores)
    clone.snakemake()
    params = clone.dir / "params.yaml"
    original = halve_restorer_lr(params)
    clone.snakemake("-f data/training_sets/existing.csv")
    events = {"after_partial_target": clone.state()}
    clone.sh("gendeg track -- dvc repro")
    events["after_dvc_repro"] = clone.state()
    params.write_text(original)
    clone.sh("gendeg track -- dvc repro")  # back to the first lr: DVC's run cache restores the first models
    clone.snakemake()
    return {"name": "partial_run", "commands": clone.commands, "events": events, "final": clone.state()}, \
        clone.outputs()


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def kill_when(process: subprocess.Popen, folder: Path, timeout: float = 300) -> dict:
    """kill -9 `process` as soon as `folder` holds a file; how many it held then (0: the kill came first)."""
    arrived = wait_for(lambda: count_files(folder) > 0 or process.poll() is not None, timeout, poll=0.01)
    seen = count_files(folder)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    return {"files_at_kill": seen, "exit": process.wait(), "killed_mid_transfer": arrived and process.returncode < 0}


def kill_transfer(base: Path, cores: int) -> tuple[dict, dict]:
    """kill -9 of `dvc push`, then of `dvc pull` in a new clone; each re-run to the end."""
    origin = Clone(base, "kill_transfer", cores)
    origin.snakemake()
    remote = base / "kill_transfer_remote"
    origin.sh(f"dvc remote add -d store {remote} && git add -A && git commit -qm 'a finished run'")
    events = {"push": kill_when(origin.start("dvc push"), remote)}
    events["push_retry_exit"] = origin.sh("dvc push").returncode
    events["remote_files"] = count_files(remote)
    clone = Clone(base, "kill_transfer_clone", cores, git_source=origin.dir)
    events["pull"] = kill_when(clone.start("dvc pull"), clone.dir / "data")
    retry = clone.sh("dvc pull")
    events["pull_retry_exit"] = retry.returncode
    if retry.returncode != 0:  # a killed pull can leave a temporary file DVC will not overwrite unasked
        events["pull_retry_message"] = (retry.stdout + retry.stderr).strip()[-400:]
        events["pull_force_exit"] = clone.sh("dvc pull --force").returncode
    # Touch only what DVC has checked (README: pull, `dvc status`, then `snakemake --touch`).
    events["dvc_status_clean_before_touch"] = "up to date" in clone.sh("dvc status").stdout
    if events["dvc_status_clean_before_touch"]:
        clone.sh(f"snakemake --touch --cores {cores}")  # pulled files' times follow no DAG order
    clone.commands = origin.commands + clone.commands
    return {"name": "kill_transfer", "commands": clone.commands, "events": events, "final": clone.state()}, \
        clone.outputs()


def damaged_output(base: Path, cores: int) -> tuple[dict, dict]:
    """A file deleted from a built output, then `snakemake -R report`, then each tool."""
    clone = Clone(base, "damaged_output", cores)
    clone.snakemake()
    victim = sorted((clone.dir / "data" / "gends").rglob("*.png"))[0]
    victim.unlink()
    lock = (clone.dir / "dvc.lock").read_text()
    events = {"deleted": victim.relative_to(clone.dir).as_posix(), "after_delete": clone.state()}
    rerun = clone.snakemake("-R report")
    events["rerun_said"] = [line for line in (rerun.stdout + rerun.stderr).splitlines()
                            if "dvc.lock:" in line or "changed" in line][-4:]
    events["merge_lock_entry_unchanged_by_rerun"] = _stage_lock(lock, "merge") == _stage_lock(
        (clone.dir / "dvc.lock").read_text(), "merge")
    events["after_rerun"] = clone.state()
    return {"name": "damaged_output", "commands": clone.commands, "events": events, "final": clone.state()}, \
        clone.outputs()


def _stage_lock(text: str, stage: str) -> dict:
    import yaml

    return yaml.safe_load(text)["stages"].get(stage, {})


def touch_combined_flags(base: Path, cores: int) -> tuple[dict, dict]:
    """An lr edit, `snakemake -pt` (a touch spelled as combined short flags), the edit undone."""
    clone = Clone(base, "touch_combined_flags", cores)
    clone.snakemake()
    params = clone.dir / "params.yaml"
    original = halve_restorer_lr(params)
    lock = (clone.dir / "dvc.lock").read_text()
    clone.sh(f"snakemake --cores {cores} -pt")
    events = {"dvc_lock_unchanged_by_touch": (clone.dir / "dvc.lock").read_text() == lock,
              "after_touch": clone.state()}
    params.write_text(original)
    clone.snakemake()
    return {"name": "touch_combined_flags", "commands": clone.commands, "events": events, "final": clone.state()}, \
        clone.outputs()


def dvc_stage_running(clone: Clone) -> bool:
    rwlock = clone.dir / ".dvc" / "tmp" / "rwlock"
    try:
        return bool(json.loads(rwlock.read_text()).get("write"))
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def dvc_first(base: Path, cores: int) -> tuple[dict, dict]:
    """`dvc repro` started first, `snakemake` while a DVC stage's command runs; then a
    kill -9 of a job under a bare `dvc repro` and a second `dvc repro` (no run may be left RUNNING)."""
    clone = Clone(base, "dvc_first", cores)
    repro = clone.start("dvc repro")
    events = {"dvc_stage_seen": wait_for(lambda: dvc_stage_running(clone) or repro.poll() is not None, 600, 0.2)}
    beside = clone.snakemake()
    events["snakemake_beside_exit"] = beside.returncode
    events["snakemake_beside_refused_by_dvc_stage"] = "is running a DVC stage" in beside.stdout + beside.stderr
    events["dvc_repro_exit"] = repro.wait()
    # A bare `dvc repro` of one restorer, its job killed, then `dvc repro` again.
    single = clone.start("dvc repro -s -f train_restorer@nafnet-existing-0")
    target = "models/restorer/nafnet/existing/seed-0"
    last = clone.dir / "checkpoints/train_restorer/nafnet/existing/seed-0/last"
    events["job_seen"] = wait_for(lambda: last.exists() or single.poll() is not None, 600, 0.2) and last.exists()
    pid = job_pid(clone, target)
    if pid:
        os.kill(pid, signal.SIGKILL)
    events["killed_pid"] = pid
    events["killed_repro_exit"] = single.wait()
    events["mlflow_after_kill"] = clone.state()["mlflow_run_statuses"]
    clone.sh("dvc repro")
    clone.snakemake()
    return {"name": "dvc_first", "commands": clone.commands, "events": events, "final": clone.state()}, \
        clone.outputs()


SCENARIOS = {"kill_snakemake": kill_snakemake, "kill_job": kill_job, "partial_run": partial_run,
             "kill_transfer": kill_transfer, "damaged_output": damaged_output,
             "touch_combined_flags": touch_combined_flags, "dvc_first": dvc_first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), default=sorted(SCENARIOS))
    parser.add_argument("--keep", action="store_true", help="keep the clones (printed)")
    args = parser.parse_args()
    # Each clone commits its copy of the tree; with fixed dates the same tree is the same commit in every clone,
    # so reports/report.md (whose provenance line names the commit) compares equal when the code is the same.
    os.environ["GIT_AUTHOR_DATE"] = os.environ["GIT_COMMITTER_DATE"] = "2000-01-01T00:00:00+00:00"
    base = Path(tempfile.mkdtemp(prefix="gendeg-faults-"))
    record = provenance(note=f"snakemake --cores {args.cores}")  # the code the clones copy: taken now, not at the end
    started = time.perf_counter()
    # A partial run (--only) replaces its scenarios and keeps the others, each with its own provenance.
    kept = []
    if RESULT.exists() and args.only != sorted(SCENARIOS):
        old = json.loads(RESULT.read_text())
        kept = [{"provenance": {"git": old["git"], "cores": old["cores"]}, **s} for s in old["scenarios"]]
    try:
        reference, reference_outputs = uninterrupted(base, args.cores)
        reference["provenance"] = {"git": record["git"], "cores": args.cores}
        scenarios = [reference]
        for name in args.only:
            result, outputs = SCENARIOS[name](base, args.cores)
            differ = sorted(k for k in set(outputs) | set(reference_outputs) if outputs.get(k) != reference_outputs.get(k))
            result["outputs_match_uninterrupted"] = not differ
            result["outputs_that_differ"] = differ[:50]
            final = result["final"]
            result["consistent"] = (final["dvc_up_to_date"] and final["snakemake_nothing_to_do"]
                                    and not differ and "RUNNING" not in final["mlflow_run_statuses"])
            result["provenance"] = {"git": record["git"], "cores": args.cores}
            scenarios.append(result)
            print(name, "consistent" if result["consistent"] else "NOT consistent", flush=True)
            write(kept, scenarios, args.cores, started, record)  # after each scenario: a long run keeps what it did
    finally:
        if args.keep:
            print(f"clones kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"wrote {RESULT}")


def write(kept: list[dict], scenarios: list[dict], cores: int, started: float, record: dict) -> None:
    now = {s["name"] for s in scenarios}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps({
        "what": "kill, partial-run and built-output fault scenarios on the smoke preset, each in a fresh clone; outputs compared with "
                "an uninterrupted run of the same clone's code",
        "cores": cores, "seconds": round(time.perf_counter() - started),
        "scenarios": [s for s in kept if s["name"] not in now] + scenarios,
        **record,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
