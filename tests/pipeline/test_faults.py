"""Faults that must never end in a silent wrong result (docs/orchestration.md).

Each test builds the smallest state that shows the fault on a copy of the project (smoke
preset); the long kill and partial-run scenarios run end to end in benchmarks/faults.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, smoke_project

BIN = Path(sys.executable).parent


def make_project(root: Path) -> tuple[Path, dict]:
    """A git + DVC repository with the project's files and the smoke preset selected."""
    env = smoke_project(root, exclude=("tests/", "benchmarks/"))
    if not (root / ".dvc").is_dir():
        subprocess.run(["dvc", "init", "-q"], cwd=root, env=env, check=True)
    return root, env


def run(command: list[str], cwd: Path, env: dict, ok: bool = True, timeout: int = 600):
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if ok and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
    return done


def set_restorer_lr(root: Path, value: str) -> None:
    """restorer.train.lr (the first `lr: 2.0e-3` after the top-level `restorer:`; other sections have one too)."""
    params = root / "params.yaml"
    text = params.read_text()
    start = text.index("\nrestorer:\n")
    tail, count = re.subn(r"(?m)^(    lr: )2\.0e-3$", rf"\g<1>{value}", text[start:], count=1)
    assert count == 1, "restorer.train.lr not found in params.yaml"
    params.write_text(text[:start] + tail)


def hold_dvc_lock(root: Path, env: dict) -> subprocess.Popen:
    """A process holding DVC's repository lock, as `dvc repro` does for its whole run."""
    code = ("import sys, time\nfrom dvc.repo import Repo\nrepo = Repo('.')\nrepo.lock.lock()\n"
            "print('locked', flush=True)\ntime.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("faults"))


def test_a_dry_run_writes_nothing_yet_lists_what_a_real_run_would_do(project):
    """`snakemake -n` used to rewrite resolved_params/ (the inputs of running jobs)."""
    root, env = project
    shutil.rmtree(root / "resolved_params", ignore_errors=True)
    dry = run(["snakemake", "-n", "--cores", "1"], root, env)
    assert not (root / "resolved_params").exists(), "a dry run wrote resolved_params/"
    run(["gendeg", "resolve-params"], root, env)
    config = root / "resolved_params" / "train_restorer.json"
    before, stamp = config.read_text(), config.stat().st_mtime_ns
    set_restorer_lr(root, "1.0e-3")
    try:
        for command in (["snakemake", "-n", "--cores", "1"], ["snakemake", "--summary", "--cores", "1"],
                        ["snakemake", "--unlock"]):
            dry = run(command, root, env)
            assert config.read_text() == before and config.stat().st_mtime_ns == stamp, command
            assert not (root / "resolved_params" / ".changed").exists()
        assert "resolved_params/{train_restorer}.json" in dry.stdout + dry.stderr  # says what a run would rewrite
    finally:
        subprocess.run(["git", "checkout", "-q", "params.yaml"], cwd=root, check=True)


def test_unlock_works_as_the_lock_message_says(project):
    """`threads: workflow.cores` made `snakemake --unlock` fail ("requires a total number of cores")."""
    root, env = project
    done = run(["snakemake", "--unlock"], root, env, ok=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_snakemake_refuses_to_start_while_dvc_holds_the_project(project):
    """A running `dvc repro` (DVC's repository lock) keeps snakemake out
    before it writes anything, and the message says why."""
    root, env = project
    shutil.rmtree(root / "resolved_params", ignore_errors=True)
    holder = hold_dvc_lock(root, env)
    try:
        done = run(["snakemake", "--cores", "1", "data/prepared"], root, env, ok=False, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode != 0
    assert "one pipeline run at a time" in done.stdout + done.stderr, done.stdout + done.stderr
    assert not (root / "resolved_params").exists(), "a refused run wrote resolved_params/"
    assert not (root / "data" / "prepared").exists()


def test_dvc_repro_refuses_to_start_while_snakemake_runs(project):
    """The other way round: the lock the Snakefile holds while it runs jobs keeps `dvc repro` out."""
    root, env = project
    code = ("import time\nfrom gendeg.pipeline.orchestration import hold_project_lock\nhold_project_lock('.')\n"
            "print('locked', flush=True)\ntime.sleep(600)\n")
    snakemake = subprocess.Popen([sys.executable, "-c", code], cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert snakemake.stdout.readline().strip() == "locked"
        done = run(["dvc", "repro"], root, env, ok=False, timeout=120)
    finally:
        snakemake.kill()
        snakemake.wait()
    assert done.returncode != 0 and "Unable to acquire lock" in done.stderr, done.stderr
    assert "Running stage" not in done.stdout


def test_a_failed_dvc_commit_is_an_error_with_its_reason(project):
    """The old hook printed "`dvc commit` failed" with an empty reason and exited 0."""
    from gendeg.pipeline import orchestration

    root, env = project
    run(["gendeg", "resolve-params"], root, env)
    holder = hold_dvc_lock(root, env)
    previous = os.environ["PATH"]
    os.environ["PATH"] = env["PATH"]
    try:
        with pytest.raises(orchestration.DvcCommitError, match="Unable to acquire lock"):
            orchestration.commit_to_dvc(root)
    finally:
        os.environ["PATH"] = previous
        holder.kill()
        holder.wait()


def test_a_second_copy_of_a_job_cannot_write_the_same_output(project):
    """Beside an orphaned job (its orchestrator killed) a second copy must not start."""
    root, env = project
    run(["gendeg", "resolve-params"], root, env)
    code = ("import time\nfrom gendeg.pipeline.orchestration import job_lock\nwith job_lock('data/prepared'):\n"
            "    print('locked', flush=True)\n    time.sleep(600)\n")
    orphan = subprocess.Popen([sys.executable, "-c", code], cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert orphan.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        done = run(["gendeg", "prepare", "--config", "resolved_params/prepare.json", "--out", "data/prepared"],
                   root, env, ok=False)
        assert time.perf_counter() - started < 60, "the second copy did work before refusing"
    finally:
        orphan.kill()
        orphan.wait()
    assert done.returncode == 2 and "a job writing data/prepared" in done.stderr, done.stderr
    assert not (root / "data" / "prepared").exists()


def test_a_jobs_thread_count_comes_from_its_config(project):
    """The thread count is a recorded parameter; a contradicting --threads is refused."""
    root, env = project
    run(["gendeg", "resolve-params"], root, env)
    config = json.loads((root / "resolved_params" / "train_gendeg.json").read_text())
    params = run([sys.executable, "-c", "import yaml; print(yaml.safe_load(open('params.yaml'))['threads'])"],
                 root, env).stdout
    assert config["threads"] == eval(params)["train_gendeg"]  # noqa: S307 - a dict literal we printed
    done = run(["gendeg", "--threads", str(config["threads"] + 1), "train-gendeg", "--config",
                "resolved_params/train_gendeg.json", "--prepared", "data/prepared", "--out", "models/gendeg"],
               root, env, ok=False)
    assert done.returncode == 2 and "contradicts threads" in done.stderr, done.stderr


def placeholder_outputs(root: Path, env: dict, skip: set[str]) -> None:
    """Stand-ins for every declared output not built yet: enough for `snakemake --touch`."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        outs = [out.def_path for stage in repo.index.stages for out in stage.outs if stage.name != "resolve_params"]
    for out in outs:
        path = root / out
        if out in skip or path.exists():
            continue
        if path.suffix in (".csv", ".json"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}\n" if path.suffix == ".json" else "a\n")
        else:
            path.mkdir(parents=True)
            (path / "placeholder").write_text("stand-in\n")


def test_a_partial_target_does_not_vouch_for_stale_models(project):
    """After an lr edit, `snakemake -f <one training set>` made dvc.lock list the new lr's
    config as the input of models trained with the old one (`dvc status`: up to date)."""
    root, env = project
    shutil.rmtree(root / "resolved_params", ignore_errors=True)
    run(["snakemake", "--cores", "1", "data/training_sets/existing.csv"], root, env)
    placeholder_outputs(root, env, skip=set())
    # A finished pipeline, as both tools see it (--touch has no jobs to run, so no onsuccess hook).
    run(["snakemake", "--cores", "1", "--touch"], root, env)
    run(["dvc", "commit", "--force"], root, env)
    assert "up to date" in run(["dvc", "status"], root, env).stdout
    set_restorer_lr(root, "1.0e-3")
    try:
        # The dry run writes nothing, yet lists the restorer jobs (and what follows) the edit re-runs.
        config = root / "resolved_params" / "train_restorer.json"
        stamp = config.stat().st_mtime_ns
        dry = run(["snakemake", "-n", "--cores", "1"], root, env).stdout
        assert config.stat().st_mtime_ns == stamp
        assert re.search(r"(?m)^\s*train_restorer\s+2$", dry) and re.search(r"(?m)^\s*report\s+1$", dry), dry[-3000:]
        built = run(["snakemake", "--cores", "1", "-f", "data/training_sets/existing.csv"], root, env)
        assert "left" in built.stdout + built.stderr
        status = run(["dvc", "status"], root, env).stdout
        for stage in ("train_restorer@nafnet-existing-0", "train_restorer@nafnet-gends-0"):
            assert stage in status, status
        assert "select_pairs@existing" not in status, status
        lock = (root / "dvc.lock").read_text()
        current = subprocess.run(["md5sum", "resolved_params/train_restorer.json"], cwd=root, capture_output=True,
                                 text=True, check=True).stdout.split()[0]
        assert current not in lock, "dvc.lock lists the new restorer config as the input of old models"
        dry = run(["snakemake", "-n", "--cores", "1"], root, env).stdout
        assert re.search(r"(?m)^\s*train_restorer\s+2$", dry), dry[-3000:]
    finally:
        subprocess.run(["git", "checkout", "-q", "params.yaml"], cwd=root, check=True)


def test_every_file_of_a_user_folder_is_used_or_listed_with_its_reason(tmp_path):
    """Valid .ppm and .gif pairs were in neither train.csv nor problems.csv."""
    import numpy as np
    from PIL import Image

    from gendeg.data.ingest import ingest_paired

    rng = np.random.default_rng(0)

    def image(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(path)
        return path

    hazy, clear = tmp_path / "hazy", tmp_path / "clear"
    for stem, suffix in (("a", ".png"), ("b", ".ppm"), ("c", ".gif")):
        image(hazy / f"{stem}{suffix}"), image(clear / f"{stem}{suffix}")
    (clear / "d.heic").write_bytes(b"not decodable here")
    spec = {"name": "mine", "degradation": "haze", "degraded_dir": str(hazy), "clean_dir": str(clear)}
    result = ingest_paired(spec, "skip")
    used = set(result.train["image_path"]) | set(result.train["target_path"])
    listed = {problem.path: problem.reason for problem in result.problems}
    every_file = {p.as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert every_file - used - set(listed) == set(), "files neither used nor reported"
    assert (hazy / "b.ppm").as_posix() in used  # 8-bit RGB: used as any PNG
    assert "palette" in listed[(hazy / "c.gif").as_posix()]  # GIF is indexed colour: listed, with why
    assert "not an image file" in listed[(clear / "d.heic").as_posix()]


def test_changed_added_or_removed_user_files_rerun_prepare_in_both_tools(project, tmp_path):
    """With data.source: user, overwriting an image or adding a pair changed nothing."""
    import numpy as np
    from PIL import Image

    root, env = project
    user = tmp_path / "user"
    rng = np.random.default_rng(1)

    def image(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(path)

    for stem in ("a", "b"):
        image(user / "hazy" / f"{stem}.png"), image(user / "clear" / f"{stem}.png")
    for folder in ("rainy", "rain_clear", "test_hazy", "test_clear"):
        image(user / folder / "a.png")
    params = root / "params.yaml"
    paired = (f"[{{name: mine, degradation: haze, degraded_dir: {user / 'hazy'}, clean_dir: {user / 'clear'}}}, "
              f"{{name: rainy, degradation: rain, degraded_dir: {user / 'rainy'}, clean_dir: {user / 'rain_clear'}}}, "
              f"{{name: held_out, degradation: haze, split: test, degraded_dir: {user / 'test_hazy'}, "
              f"clean_dir: {user / 'test_clear'}}}]")
    text = params.read_text().replace("  source: builtin ", "  source: user ", 1).replace(
        "    paired: []", f"    paired: {paired}", 1).replace("    folder: data/user ", f"    folder: {user} ", 1)
    text, count = re.subn(r"(?m)^degradations:\n(- .*\n)+", "degradations: [haze, rain]\n", text)
    assert count == 1
    params.write_text(text)
    try:
        run(["gendeg", "resolve-params"], root, env)
        shutil.rmtree(root / "data" / "prepared", ignore_errors=True)
        (root / "data" / "prepared").mkdir(parents=True)
        (root / "data" / "prepared" / "placeholder").write_text("built from a and b\n")
        for product in ("logs/prepare.log", "logs/benchmarks/prepare.tsv"):  # Snakemake counts the benchmark
            (root / product).parent.mkdir(parents=True, exist_ok=True)
            (root / product).touch()
        run(["dvc", "commit", "--force", "resolve_params", "prepare"], root, env)
        target = ["snakemake", "-n", "--cores", "1", "data/prepared"]
        assert "Nothing to be done" in run(target, root, env).stdout
        assert "up to date" in run(["dvc", "status", "prepare"], root, env).stdout
        for change in ("overwrite", "add", "remove"):
            if change == "overwrite":
                image(user / "hazy" / "a.png")
            elif change == "add":
                image(user / "hazy" / "c.png"), image(user / "clear" / "c.png")
            else:
                (user / "clear" / "b.png").unlink()
            dry = run(target, root, env).stdout
            assert re.search(r"(?m)^\s*prepare\s+1$", dry), (change, dry[-2000:])
            status = run(["dvc", "status", "prepare"], root, env).stdout  # a bare `dvc repro` sees it: no helper ran
            assert re.search(rf"modified:\s+{re.escape(str(user))}$", status, re.M), (change, status)
            run(["dvc", "commit", "--force", "prepare"], root, env)
        run(["gendeg", "resolve-params"], root, env)  # what DVC's resolve_params stage (and `gendeg track`) runs
        status = run(["dvc", "status", "prepare"], root, env).stdout
        assert "resolved_params/user_data.json" in status, status
        # The documented limit (docs/orchestration.md): new bytes of the same size with the old time put back
        # (as archive tools do) are missed by both tools; giving the files a new time forces a re-hash.
        run(["dvc", "commit", "--force", "resolve_params", "prepare"], root, env)
        victim = user / "hazy" / "a.png"
        stamp, data = victim.stat(), bytearray(victim.read_bytes())
        data[-20] ^= 0xFF
        victim.write_bytes(bytes(data))
        os.utime(victim, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        assert "user_data.json" not in run(["gendeg", "resolve-params"], root, env).stdout  # Snakemake's fingerprint
        assert "up to date" in run(["dvc", "status", "prepare"], root, env).stdout
        subprocess.run(f"find {user} -type f -exec touch {{}} +", shell=True, check=True)  # docs/orchestration.md
        assert "updated resolved_params/user_data.json" in run(["gendeg", "resolve-params"], root, env).stdout
        assert "modified" in run(["dvc", "status", "prepare"], root, env).stdout
    finally:
        subprocess.run(["git", "checkout", "-q", "params.yaml"], cwd=root, check=True)
        shutil.rmtree(root / "data" / "prepared", ignore_errors=True)


@pytest.mark.parametrize("edit, message", [
    (("    residual_scale: 3.0\n", "    residual_scale: 3.0\n    class_embeding_dim: 16\n"),
     "gendeg.model: unknown GenDeg model config key 'class_embeding_dim'"),
    (("    nafnet: {width: 16}", "    nafnet: {width: 16, middle_block: 1}"),
     "restorer.model.nafnet: restorer arch='nafnet': unknown"),
    (("    crop_size: 64\n", "    crop_size: 64\n    scene_scal: 2.0\n"),
     "data.builtin: builtin data config: unknown key(s) ['scene_scal']"),
    (("    route: time_embedding ", "    rout: time_embedding "), "gendeg.model: 'route' is a required property"),
    (("  source: builtin ", "  source: user "), "data.user.paired is empty"),
])
def test_setups_that_would_fail_hours_in_fail_before_any_job(project, edit, message):
    """Typos under gendeg.model / restorer.model.<arch> / data.builtin and an empty
    data.user passed `snakemake -n` and `dvc repro`'s first stage, then failed in a job.
    (A typo of a key params.yaml must state, such as `rout`, is the schema's missing key.)"""
    root, env = project
    params = root / "params.yaml"
    text = params.read_text()
    assert text.count(edit[0]) == 1, edit[0]
    params.write_text(text.replace(*edit))
    try:
        done = run(["gendeg", "resolve-params"], root, env, ok=False)  # DVC's first stage
        assert done.returncode == 2 and message in done.stderr, done.stderr
        if "user" in edit[1]:  # the cheap checks run in dry runs too
            dry = run(["snakemake", "-n", "--cores", "1"], root, env, ok=False)
            assert dry.returncode != 0 and message in dry.stdout + dry.stderr
    finally:
        subprocess.run(["git", "checkout", "-q", "params.yaml"], cwd=root, check=True)


def test_user_data_must_cover_every_degradation_and_a_test_split(tmp_path, monkeypatch):
    """Data for some degradations only failed in synthesize (KeyError); no split: test in train_classifier."""
    import yaml

    from gendeg.pipeline.config import ConfigError, resolve
    from gendeg.pipeline.orchestration import preflight

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)  # the pre-flight also checks that the entries' folders exist
    for folder in ("a", "b"):
        (tmp_path / "data" / "user" / folder).mkdir(parents=True)
    params["data"]["source"] = "user"
    params["degradations"] = ["haze", "rain", "low_light"]
    entry = {"degraded_dir": "data/user/a", "clean_dir": "data/user/b"}
    params["data"]["user"]["paired"] = [{**entry, "name": "h", "degradation": "haze"},
                                        {**entry, "name": "r", "degradation": "rain"}]
    with pytest.raises(ConfigError, match=r"no split: train dataset for degradation\(s\) \['low_light'\]"):
        preflight(resolve(params), components=False)
    params["data"]["user"]["paired"].append({**entry, "name": "l", "degradation": "low_light"})
    with pytest.raises(ConfigError, match="no dataset with split: test"):
        preflight(resolve(params), components=False)
    params["data"]["user"]["paired"].append({**entry, "name": "t", "degradation": "haze", "split": "test"})
    preflight(resolve(params), components=False)


def test_user_paths_must_lie_under_the_folder_dvc_watches(tmp_path):
    """DVC's prepare stage hashes data.user.folder; a path outside it, or behind a symlinked
    sub-folder (DVC does not look inside one), would change without a bare `dvc repro` seeing it."""
    import yaml

    from gendeg.pipeline.config import ConfigError, resolve
    from gendeg.pipeline.orchestration import preflight

    user, elsewhere = tmp_path / "user", tmp_path / "elsewhere"
    for folder in (user / "hazy", user / "clear", user / "test_hazy", elsewhere):
        folder.mkdir(parents=True)
    (user / "linked").symlink_to(elsewhere)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["degradations"] = ["haze", "rain"]
    params["data"]["source"] = "user"
    params["data"]["user"]["folder"] = str(user)
    train = {"name": "h", "degradation": "haze", "degraded_dir": str(user / "hazy"), "clean_dir": str(user / "clear")}
    test = {"name": "t", "degradation": "haze", "split": "test", "degraded_dir": str(elsewhere),
            "clean_dir": str(user / "linked")}
    params["data"]["user"]["paired"] = [train, test, {**train, "name": "r", "degradation": "rain"}]
    with pytest.raises(ConfigError, match="outside data.user.folder") as error:
        preflight(resolve(params), components=False)
    named = [line.strip() for line in str(error.value).splitlines() if line.startswith("  ")]
    assert named == [f"data.user.paired[1].degraded_dir: {elsewhere}", f"data.user.paired[1].clean_dir: {user / 'linked'}"]
    params["data"]["user"]["paired"][1] = {**test, "degraded_dir": str(user / "test_hazy"), "clean_dir": str(user / "clear")}
    preflight(resolve(params), components=False)

    params["data"]["user"]["folder"] = str(tmp_path / "missing")
    with pytest.raises(ConfigError, match=f"data.user.folder: {tmp_path / 'missing'} is not a folder"):
        preflight(resolve(params), components=False)
    params["data"]["user"]["folder"] = str(user)
    params["presets"]["smoke"]["data"]["user"] = {"folder": str(user)}
    with pytest.raises(ConfigError, match="presets.smoke.data.user.folder: set data.user.folder at the top level"):
        resolve(params)


def test_skip_mode_says_how_many_were_skipped_and_summary_holds_no_nan(tmp_path, monkeypatch, capsys, smoke_params):
    """Skipped files showed only in problems.csv; an empty split wrote NaN into summary.json."""
    import copy

    import numpy as np
    from PIL import Image

    from gendeg.pipeline.config import stage_config
    from gendeg.stages.prepare import prepare

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(2)
    for i in range(3):
        clean = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Path("user/clean").mkdir(parents=True, exist_ok=True)
        Path("user/hazy").mkdir(parents=True, exist_ok=True)
        Image.fromarray(clean).save(f"user/clean/{i}.png")
        Image.fromarray((clean * 0.6 + 90).astype(np.uint8)).save(f"user/hazy/{i}.png")
    Path("user/hazy/7.png").write_bytes(b"truncated")  # bad, and without a clean counterpart
    config = copy.deepcopy(stage_config(smoke_params, "prepare"))
    config["data"]["source"] = "user"
    config["data"]["user"] = {"on_bad_input": "skip", "clean": [], "ood": [],
                              "paired": [{"name": "h", "degradation": "haze", "degraded_dir": "user/hazy",
                                          "clean_dir": "user/clean"}]}
    prepare(config, Path("prepared"))
    said = capsys.readouterr().out
    assert "skipped 1 bad input file(s)" in said and "prepared/problems.csv" in said, said
    text = Path("prepared/summary.json").read_text()
    assert "NaN" not in text, "summary.json is not valid JSON"
    summary = json.loads(text)
    assert summary["skipped_inputs"]["count"] == 1 and summary["test"]["mu_mean"] is None


def test_runs_of_a_killed_invocation_are_marked_killed_by_the_next(tmp_path):
    """Runs of a kill -9'd job stayed RUNNING forever."""
    import signal

    import mlflow

    from gendeg.pipeline import tracking
    from gendeg.pipeline.orchestration import reap_dead_runs

    code = ("import time\nfrom gendeg.pipeline import tracking\nwith tracking.job_run('train_restorer', 'killed-job') as run:\n"
            "    print(run.run_id, flush=True)\n    time.sleep(600)\n")
    job = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    run_id = job.stdout.readline().strip()
    alive = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    alive_id = alive.stdout.readline().strip()
    try:
        job.send_signal(signal.SIGKILL)
        job.wait()
        client = mlflow.MlflowClient(tracking.tracking_uri())
        assert client.get_run(run_id).info.status == "RUNNING"
        assert run_id in reap_dead_runs()
        assert client.get_run(run_id).info.status == "KILLED"
        assert client.get_run(alive_id).info.status == "RUNNING", "a run whose job still runs was ended"
    finally:
        alive.kill()
        alive.wait()


def test_a_job_that_fails_before_its_run_opens_still_gets_a_failed_run(tmp_path):
    """Failing synthesize jobs of a bad user-data run had no MLflow run at all."""
    import mlflow

    from gendeg.pipeline import tracking

    done = subprocess.run([str(BIN / "gendeg"), "--log", "logs/s.log", "synthesize", "--config", "missing.json",
                           "--prepared", "p", "--model", "m", "--degradation", "haze", "--out", "data/synthetic/haze",
                           "--work", "w"], cwd=tmp_path, capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 2
    client = mlflow.MlflowClient(tracking.tracking_uri())
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "attributes.run_name = 'synthesize:haze'")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "missing.json" in runs[0].data.tags["gendeg.error"]


def test_a_touch_is_told_apart_from_a_run():
    """`snakemake --touch` builds nothing: the Snakefile must not `dvc commit` after it.  The mode is
    Snakemake's own parse of its command line: every spelling it accepts."""
    from snakemake.cli import get_argument_parser

    from gendeg.pipeline.orchestration import NO_JOB_MODES

    parser = get_argument_parser()
    defaults = parser.parse_args([])
    assert [name for name in NO_JOB_MODES if not hasattr(defaults, name)] == [], "Snakemake renamed a mode"
    for argv in (["--touch"], ["-t"], ["-pt"], ["--tou"]):
        assert parser.parse_args(["--cores", "1", *argv]).touch, argv
    for argv in (["-n"], ["--summ"], ["--detailed"], ["-pn"], ["--dry-run"]):
        args = parser.parse_args(["--cores", "1", *argv])
        assert any(getattr(args, name) for name in NO_JOB_MODES), argv
    assert not any(getattr(parser.parse_args(["--cores", "1", "-p"]), name) for name in NO_JOB_MODES)
