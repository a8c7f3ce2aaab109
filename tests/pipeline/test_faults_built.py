"""dvc.lock vouches only for what a job built (docs/orchestration.md).

Each test shows one fault on the smallest state that has it (smoke preset, a copy of
the project); benchmarks/faults.py runs the end-to-end scenarios.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_faults import BIN, make_project, placeholder_outputs, run, set_restorer_lr


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A finished pipeline as both tools see it: prepare and select_pairs@existing built by real jobs
    (so they have records), stand-ins for the rest, touched and committed: `dvc status` clean."""
    root, env = make_project(tmp_path_factory.mktemp("built"))
    run(["snakemake", "--cores", "1", "data/training_sets/existing.csv"], root, env)
    placeholder_outputs(root, env, skip=set())
    run(["snakemake", "--cores", "1", "--touch"], root, env)
    run(["dvc", "commit", "--force"], root, env)
    assert "up to date" in run(["dvc", "status"], root, env).stdout
    return root, env


def test_a_job_records_what_it_built(built):
    root, env = built
    record = json.loads((root / ".gendeg" / "built" / "data__prepared.json").read_text())
    assert record["output"] == "data/prepared" and "train.csv" in record["files"]
    assert record["command"][:2] == ["gendeg", "--log"] or "prepare" in record["command"]


def test_an_output_damaged_outside_a_job_is_not_vouched_for_and_is_rebuilt(built):
    """After `rm` of a file in a built output, the end-of-run hook recorded the damaged
    output in dvc.lock (`dvc status` clean) because Snakemake called it up to date."""
    from gendeg.pipeline import orchestration

    root, env = built
    victim = sorted((root / "data" / "prepared").rglob("*.png"))[0]
    saved, stamp = victim.read_bytes(), victim.stat()
    victim.unlink()
    try:
        commit, skip = orchestration.stages_to_commit(root)
        assert "prepare" not in commit and "changed after the job that built it" in skip["prepare"], skip
        assert "select_pairs@existing" not in commit  # its input changed after it ran
        assert "resolve_params" in commit
        dry = run(["snakemake", "-n", "--cores", "1"], root, env)
        text = dry.stdout + dry.stderr
        assert "changed since the job that built them" in text and "data/prepared" in text, text[-3000:]
        assert "rule prepare:" in text and "Nothing to be done" not in text, text[-3000:]
    finally:
        victim.write_bytes(saved)
        os.utime(victim, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def test_a_touch_spelled_as_combined_short_flags_commits_nothing(built):
    """`snakemake --cores 1 -pt` after an lr edit recorded the new lr for restorers never retrained."""
    root, env = built
    lock = (root / "dvc.lock").read_text()
    set_restorer_lr(root, "1.0e-3")
    try:
        done = run(["snakemake", "--cores", "1", "-pt"], root, env)
        assert "--touch built nothing" in done.stdout + done.stderr, (done.stdout + done.stderr)[-2000:]
        assert (root / "dvc.lock").read_text() == lock
        assert "train_restorer@nafnet-existing-0" in run(["dvc", "status"], root, env).stdout
    finally:
        subprocess.run(["git", "checkout", "-q", "params.yaml"], cwd=root, check=True)


@pytest.mark.parametrize("flag", ["--summ", "--detailed", "-nS"])
def test_inspection_modes_write_nothing_and_take_no_lock_whatever_the_spelling(built, flag):
    """`snakemake --summ` (an argparse abbreviation) wrote resolved_params/ and took the lock."""
    from test_faults import hold_dvc_lock

    root, env = built
    shutil.rmtree(root / "resolved_params")
    holder = hold_dvc_lock(root, env)
    try:
        done = run(["snakemake", "--cores", "1", flag], root, env, ok=False)
    finally:
        holder.kill()
        holder.wait()
        run(["gendeg", "resolve-params"], root, env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    assert "one pipeline run at a time" not in done.stdout + done.stderr


def test_a_run_without_gendeg_on_path_stops_before_any_job(built):
    """Outside the venv every job failed "gendeg: command not found" and Snakemake then
    deleted the git-tracked reports/ as a failed job's output."""
    root, env = built
    report = root / "reports" / "kept.txt"
    report.parent.mkdir(exist_ok=True)
    report.write_text("committed result\n")
    bare = {**env, "PATH": "/usr/bin:/bin"}
    done = run([sys.executable, "-m", "snakemake", "--cores", "1", "-R", "report"], root, bare, ok=False)
    assert done.returncode != 0
    assert "`gendeg` is not on PATH" in done.stdout + done.stderr, (done.stdout + done.stderr)[-2000:]
    assert report.read_text() == "committed result\n"


def test_snakemake_refuses_while_dvc_runs_a_stage(built):
    """DVC releases its repository lock while a stage's command runs; `snakemake` started then
    scheduled jobs and deleted DVC's in-progress output.  It must refuse before writing anything."""
    root, env = built
    config = root / "resolved_params" / "prepare.json"
    stamp = config.stat().st_mtime_ns
    code = ("import time\nfrom dvc.repo import Repo\nfrom dvc.rwlock import rwlock\nrepo = Repo('.')\n"
            "with rwlock(repo.tmp_dir, repo.fs, 'dvc repro', [], ['data/prepared'], False):\n"
            "    print('running', flush=True)\n    time.sleep(600)\n")
    stage = subprocess.Popen([sys.executable, "-c", code], cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert stage.stdout.readline().strip() == "running"
        done = run(["snakemake", "--cores", "1", "-R", "prepare", "data/prepared"], root, env, ok=False, timeout=300)
    finally:
        stage.kill()
        stage.wait()
    text = done.stdout + done.stderr
    assert done.returncode != 0 and "is running a DVC stage on data/prepared" in text, text[-2000:]
    assert "rule prepare" not in text and (root / "data" / "prepared" / "train.csv").exists()
    assert config.stat().st_mtime_ns == stamp


def _user_folder_links(root: Path) -> list[str]:
    folder = root / "data" / "user"
    (folder / "broken.png").symlink_to(folder / "nowhere.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    return ["broken.png", "loop.png"]


def test_broken_or_looping_links_in_the_user_folder_are_named_before_any_work(tmp_path):
    """A broken or looping link made `snakemake -n` say "Nothing to be done"; DVC then failed
    after `prepare` ("Too many levels of symbolic links")."""
    root, env = make_project(tmp_path / "links")
    names = _user_folder_links(root)
    for command in (["snakemake", "-n", "--cores", "1"], ["gendeg", "resolve-params"]):
        done = run(command, root, env, ok=False)
        text = done.stdout + done.stderr
        assert done.returncode != 0 and "symbolic links that lead nowhere" in text, text[-2000:]
        assert all(name in text for name in names) and "(loops)" in text and "(is broken)" in text, text[-2000:]


@pytest.mark.parametrize("edit, message", [
    (("    gendeg:\n      image_size: 32\n", "    gendeg:\n      image_size: 7\n"),
     "gendeg.image_size: 7 is not a multiple of the codec factor"),
    (("swin: {width: 8}}\n      train:\n        steps: 10\n        batch_size: 4\n",
      "swin: {width: 8}}\n      train:\n        steps: 10\n        batch_size: 1000000\n"),
     "restorer.train.batch_size: 1000000 exceeds the"),
])
def test_sizes_no_job_can_use_fail_before_any_job(tmp_path_factory, edit, message):
    """`gendeg.image_size` 7 and `restorer.train.batch_size` 1000000 passed the dry run and the
    pre-flight, then failed in training without naming the key."""
    root, env = make_project(tmp_path_factory.mktemp("sizes"))
    params = root / "params.yaml"
    text = params.read_text()
    assert text.count(edit[0]) == 1, edit[0]
    params.write_text(text.replace(*edit))
    done = run(["gendeg", "resolve-params"], root, env, ok=False)
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    if "image_size" in message:  # found from params alone: the dry run too
        dry = run(["snakemake", "-n", "--cores", "1"], root, env, ok=False)
        assert dry.returncode != 0 and message in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-2000:]


def test_user_entries_prepare_would_refuse_fail_the_dry_run(tmp_path):
    """A nonexistent user folder or an unknown degradation passed `snakemake -n` and stopped in `prepare`."""
    import yaml

    from gendeg.pipeline.config import ConfigError, check_user_data, load_params

    (tmp_path / "user" / "haze").mkdir(parents=True)
    resolved = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    resolved["data"]["source"] = "user"
    resolved["degradations"] = ["haze"]
    resolved["data"]["user"] = yaml.safe_load(f"""
folder: {tmp_path / 'user'}
paired:
  - {{name: a, degradation: haze, degraded_dir: {tmp_path / 'user/haze'}, clean_dir: {tmp_path / 'user/missing'}}}
  - {{name: b, degradation: fog, degraded_dir: {tmp_path / 'user/haze'}, clean_dir: {tmp_path / 'user/haze'},
      split: test}}
""")
    with pytest.raises(ConfigError) as error:
        check_user_data(resolved, "params.yaml")
    assert "clean_dir is not an existing folder (data.user.paired[0].clean_dir)" in str(error.value)
    assert "unknown degradation 'fog'" in str(error.value) and "data.user.paired[1]" in str(error.value)


def test_a_job_marks_its_killed_predecessor_killed_under_a_bare_dvc_repro(tmp_path):
    """Under `dvc repro` (no start hook) a kill -9'd job's run stayed RUNNING after the rerun."""
    import signal

    import mlflow

    from gendeg.pipeline import tracking

    code = ("import time\nfrom gendeg.pipeline import tracking\nwith tracking.job_run('prepare', 'prepare') as run:\n"
            "    print(run.run_id, flush=True)\n    time.sleep(600)\n")
    job = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    run_id = job.stdout.readline().strip()
    job.send_signal(signal.SIGKILL)
    job.wait()
    client = mlflow.MlflowClient(tracking.tracking_uri())
    assert client.get_run(run_id).info.status == "RUNNING"
    done = subprocess.run([str(BIN / "gendeg"), "prepare", "--config", "missing.json", "--out", "data/prepared"],
                          cwd=tmp_path, capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 2, done.stderr
    assert client.get_run(run_id).info.status == "KILLED"


def test_jobs_creating_a_fresh_store_at_once_all_record_their_runs(tmp_path):
    """Two jobs creating a fresh MLflow store at once: one died with
    `table trace_info already exists` and "could not record the failure in MLflow"."""
    import mlflow

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "GENDEG_PROJECT_ROOT": str(tmp_path)}
    jobs = [subprocess.Popen([str(BIN / "gendeg"), "synthesize", "--config", "missing.json", "--prepared", "p",
                              "--model", "m", "--degradation", "haze", "--shard", str(k), "--out", f"out/{k}",
                              "--work", f"w/{k}"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for k in range(4)]
    outputs = [job.communicate()[0] for job in jobs]
    assert all(job.returncode == 2 for job in jobs), outputs
    assert not any("could not record" in text or "already exists" in text for text in outputs), outputs
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("gendeg")
    assert len(client.search_runs([experiment.experiment_id])) == 4


def test_a_dependency_rewritten_with_the_same_bytes_still_vouches(tmp_path):
    """Found by benchmarks/faults.py (damaged_output): `dvc commit` re-saves a file output (same bytes, new
    time), so a stage downstream of it was left out of dvc.lock on later runs as if its input had changed."""
    import time

    from gendeg.pipeline import built

    (tmp_path / "pairs.csv").write_text("a,b\n")
    built.record(["pairs.csv"], time.time_ns(), ["gendeg", "select-pairs"], tmp_path)
    started = time.time_ns()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights").write_bytes(b"w")
    built.record(["model"], started, ["gendeg", "train-restorer"], tmp_path)
    time.sleep(0.01)
    (tmp_path / "pairs.csv").write_text("a,b\n")  # re-saved: same bytes, new time
    assert built.vouched(["model"], ["pairs.csv"], tmp_path) is None
    (tmp_path / "pairs.csv").write_text("a,c\n")  # new bytes: the model was not built from them
    assert built.vouched(["model"], ["pairs.csv"], tmp_path) == "pairs.csv changed after the job started"


def test_recording_in_dvc_lock_leaves_every_output_file_as_it_was(tmp_path):
    """`dvc commit` re-copied file outputs from its cache (new modification time): after `dvc repro`, a
    following `snakemake` found the pairs list newer than the restorer trained on it and retrained."""
    import time

    from gendeg.pipeline import built
    from gendeg.pipeline.orchestration import commit_to_dvc

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  pairs:\n    cmd: echo a > pairs.csv\n    outs:\n      - pairs.csv\n")
    (tmp_path / "pairs.csv").write_text("a\n")
    built.record(["pairs.csv"], time.time_ns(), ["gendeg", "select-pairs"], tmp_path)
    before = (tmp_path / "pairs.csv").stat()
    time.sleep(0.01)
    committed, skipped = commit_to_dvc(tmp_path)
    assert committed == ["pairs"] and not skipped
    after = (tmp_path / "pairs.csv").stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert "pairs.csv" in (tmp_path / "dvc.lock").read_text()
