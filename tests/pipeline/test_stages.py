"""Stage functions on the smoke configuration: declared outputs only, same bytes for the same
seed, user data through `prepare`, and a killed training job resuming to the same model."""

from __future__ import annotations

import copy
import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import needs_torchvision, stage_workspace, tree_digest
from PIL import Image

from gendeg.synthesis.colour_range import ColourRange, constrain_colour
from gendeg.data.images import read_image
from gendeg.data.ingest import IngestError
from gendeg.data.manifest import GENDS_COLUMNS, read_manifest
from gendeg.data.pairs import PairBank, load_square
from gendeg.synthesis.mu_calibration import MuCalibration
from gendeg.pipeline.config import stage_config
from gendeg.stages import train_gendeg as train_gendeg_stage
from gendeg.stages.evaluate import evaluate
from gendeg.stages.merge import intensity_filter, merge
from gendeg.stages.prepare import prepare
from gendeg.stages.report import distance_table, report, restorer_jobs
from gendeg.stages.select_pairs import first_generated, select_pairs
from gendeg.stages.synthesize import synthesize
from gendeg.stages.train_classifier import train_classifier
from gendeg.stages.train_restorer import augment, train_restorer


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, smoke_params):
    """Stages write relative paths, as they do under the orchestrators."""
    with stage_workspace(tmp_path_factory.mktemp("stages")) as root:
        yield root, smoke_params


def test_prepare_writes_its_outputs_and_is_byte_deterministic(workdir, prepared):
    _, params = workdir
    for name in ("train.csv", "test.csv", "ood.csv", "clean_pool.csv", "summary.json"):
        assert (prepared / name).exists(), name
    assert list((prepared / "stats").rglob("Mu_*.json")), "no intensity histograms written"
    train = read_manifest(prepared / "train.csv")
    assert list(train.columns[: len(GENDS_COLUMNS)]) == GENDS_COLUMNS
    assert train["mu"].between(0, 0.7).all() and (train["category"] == "Real").all()
    ood_scenes = set(read_manifest(prepared / "ood.csv")["scene"])
    assert ood_scenes and not ood_scenes & set(train["scene"]), "OOD scenes leaked into training"
    prepare(stage_config(params, "prepare"), Path("again/prepared"))
    first, second = tree_digest(prepared), tree_digest(Path("again/prepared"))
    second_csvs = {k: v for k, v in second.items() if not k.endswith(".csv")}
    assert {k: v for k, v in first.items() if not k.endswith(".csv")} == second_csvs
    for name in ("train.csv", "ood.csv"):  # same rows once the folder name is taken out
        text = (Path("again/prepared") / name).read_text().replace("again/prepared", "data/prepared")
        assert text == (prepared / name).read_text()


def test_gendeg_loss_passes_the_snr_weighting_from_the_config(workdir, prepared, monkeypatch):
    """gendeg.train.snr_gamma / snr_floor reach the loss (a key the loss never saw would be a silent no-op)."""
    seen = {}
    monkeypatch.setattr(train_gendeg_stage, "training_loss", lambda *args, **kwargs: seen.update(kwargs) or torch.zeros(()))
    _, params = workdir
    train_cfg = {**stage_config(params, "train_gendeg")["gendeg"]["train"], "snr_gamma": 5.0, "snr_floor": 1.0}
    bank = PairBank(read_manifest(prepared / "train.csv"), size=32, description="pairs")
    train_gendeg_stage.gendeg_loss(bank, train_cfg, 32)(torch.nn.Linear(1, 1), 0, torch.Generator().manual_seed(0))
    assert (seen["snr_gamma"], seen["snr_floor"]) == (5.0, 1.0)


def test_synthesis_is_deterministic_and_resumes_after_a_kill(workdir, prepared, gendeg_model, monkeypatch):
    _, params = workdir
    assert (gendeg_model / "model.safetensors").exists() and not Path("checkpoints/g").exists()
    config = stage_config(params, "synthesize")
    config["synthesis"].update(per_degradation=8, batch_size=4)  # two chunks
    synthesize(config, prepared, gendeg_model, "haze", Path("data/synthetic/haze"), Path("work/haze"))
    frame = read_manifest("data/synthetic/haze/manifest.csv")
    assert len(frame) == 8 and (frame["category"] == "Synthetic").all() and (frame["degradation"] == "haze").all()
    haze_sets = set(read_manifest(prepared / "train.csv").query("degradation == 'haze'")["dataset"])
    assert not set(frame["dataset"]) & haze_sets, "synthesis degraded the haze datasets' own scenes"
    assert (frame["sample_seed"] >= 0).all() and frame["requested_mu"].notna().all()
    assert not Path("work/haze").exists(), "work folder left after a finished job"
    # Calibrated (the smoke preset keeps it on): the map is written, and each request went through it.
    calibration = json.loads(Path("data/synthetic/haze/calibration.json").read_text())
    assert len(calibration["conditioning_mu"]) == config["synthesis"]["calibration"]["levels"]
    expected = MuCalibration.from_dict(calibration).conditioning_for(frame["requested_mu"])
    np.testing.assert_allclose(frame["conditioning_mu"], expected, rtol=1e-6)
    np.testing.assert_allclose(frame["conditioning_sigma"] / frame["requested_sigma"],
                               frame["conditioning_mu"] / frame["requested_mu"], rtol=1e-6)
    oracle = read_manifest("data/synthetic/haze/oracle.csv")  # the physics generator on the same inputs
    assert oracle["target_path"].tolist() == frame["target_path"].tolist()
    assert (oracle["category"] == "Oracle").all() and all(Path(p).exists() for p in oracle["image_path"])
    assert (oracle["mu"] > 0).all(), "the oracle left an image unchanged"

    import gendeg.stages.synthesize as stage

    real_chunk, calls = stage._run_chunk, []

    class Killed(Exception):
        pass

    def dies_on_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return real_chunk(*args, **kwargs)

    monkeypatch.setattr(stage, "_run_chunk", dies_on_second_chunk)
    with pytest.raises(Killed):
        synthesize(config, prepared, gendeg_model, "haze", Path("again/haze"), Path("work/again"))
    assert not Path("again/haze").exists() and len(list(Path("work/again").glob("chunk_*.csv"))) == 1
    calls.clear()
    synthesize(config, prepared, gendeg_model, "haze", Path("again/haze"), Path("work/again"))
    assert len(calls) == 1, "the finished chunk was generated again"
    images = [{k: v for k, v in tree_digest(Path(d)).items() if k.startswith("images/")}
              for d in ("again/haze", "data/synthetic/haze")]
    assert images[0] == images[1] and len(images[0]) == 8
    assert (Path("again/haze/calibration.json").read_bytes() == Path("data/synthetic/haze/calibration.json").read_bytes())

    monkeypatch.undo()
    off = copy.deepcopy(config)
    off["synthesis"]["calibration"]["enabled"] = False
    synthesize(off, prepared, gendeg_model, "haze", Path("uncalibrated/haze"), Path("work/uncalibrated"))
    plain = read_manifest("uncalibrated/haze/manifest.csv")
    assert not Path("uncalibrated/haze/calibration.json").exists()
    assert (plain["conditioning_mu"] == plain["requested_mu"]).all()
    assert (Path("again/haze/manifest.csv").read_text().replace("again/haze", "data/synthetic/haze")
            == Path("data/synthetic/haze/manifest.csv").read_text())


def test_synthesis_holds_generated_colour_within_the_real_pairs_range(workdir, prepared, gendeg_model):
    """synthesis.colour_range: each output is GenDeg's image scaled into the real pairs' gain range."""
    _, params = workdir
    config = stage_config(params, "synthesize")
    config["synthesis"].update(per_degradation=4, calibration={**config["synthesis"]["calibration"], "enabled": False})
    off = copy.deepcopy(config)
    off["synthesis"]["colour_range"]["enabled"] = False
    synthesize(config, prepared, gendeg_model, "motion_blur", Path("ranged/motion_blur"), Path("work/ranged"))
    synthesize(off, prepared, gendeg_model, "motion_blur", Path("unranged/motion_blur"), Path("work/unranged"))
    assert not Path("unranged/motion_blur/colour_range.json").exists()
    fitted = json.loads(Path("ranged/motion_blur/colour_range.json").read_text())
    real = read_manifest(prepared / "train.csv").query("degradation == 'motion_blur'")
    assert fitted["pairs"] == min(len(real), config["synthesis"]["colour_range"]["max_pairs"])
    colour_range = ColourRange(tuple(fitted["low"]), tuple(fitted["high"]), fitted["pairs"])
    frame = read_manifest("ranged/motion_blur/manifest.csv")
    size = Image.open(frame["image_path"].iloc[0]).size[0]
    as_tensor = lambda paths: torch.stack([torch.from_numpy(read_image(p)).permute(2, 0, 1) for p in paths])  # noqa: E731
    clean = torch.stack([torch.from_numpy(load_square(p, size)).permute(2, 0, 1) for p in frame["target_path"]]) / 255
    expected, factors = constrain_colour(clean, as_tensor(read_manifest("unranged/motion_blur/manifest.csv")["image_path"]),
                                         colour_range)
    assert (factors != 1).any(), "no sample was outside the range: the test shows nothing"
    # The same generation, scaled; the only difference is where 8-bit rounding happened.
    assert (expected - as_tensor(frame["image_path"])).abs().max() <= 2.5 / 255


def test_synthesis_samples_at_its_own_size(workdir, prepared, gendeg_model):
    """synthesis.image_size (the paper samples at 512 from a model trained at 256)."""
    _, params = workdir
    config = stage_config(params, "synthesize")
    config["synthesis"].update(image_size=48, per_degradation=2)
    synthesize(config, prepared, gendeg_model, "rain", Path("data/synthetic48/rain"), Path("work/rain48"))
    images = sorted(Path("data/synthetic48/rain/images").glob("*.png"))
    assert len(images) == 2 and all(Image.open(p).size == (48, 48) for p in images)


def test_merge_filters_and_links_generated_images(workdir, prepared, gendeg_model):
    _, params = workdir
    config = stage_config(params, "merge")
    config["degradations"] = ["haze"]
    synthesize(stage_config(params, "synthesize"), prepared, gendeg_model, "haze", Path("data/synthetic/haze"),
               Path("work/haze"))
    summary = merge(config, prepared, [Path("data/synthetic/haze")], Path("data/gends"))
    gends = read_manifest("data/gends/manifest.csv")
    assert summary["existing_pairs"] == len(read_manifest(prepared / "train.csv"))
    assert summary["total_pairs"] == len(gends)
    synthetic = gends[gends["category"] == "Synthetic"]
    assert all(Path(p).exists() and p.startswith("data/gends/") for p in synthetic["image_path"])
    oracle = read_manifest("data/gends/oracle.csv")
    assert len(oracle) == summary["existing_pairs"] + 4 and set(oracle["category"]) == {"Real", "Oracle"}


def test_intensity_filter_rule():
    frame = pd.DataFrame({"mu": [0.10, 0.30, 0.02, 0.10], "requested_mu": [0.11, 0.29, 0.04, 0.30]})
    cfg = {"enabled": True, "mu_tolerance": 0.5, "mu_abs_tolerance": 0.03, "mu_cap": 0.28}
    assert intensity_filter(frame, cfg).tolist() == [True, False, True, False]
    assert intensity_filter(frame, {**cfg, "enabled": False}).all()


@pytest.fixture(scope="module")
def existing_pairs(workdir, prepared):
    select_pairs("existing", prepared, Path("data/training_sets/existing.csv"))
    return Path("data/training_sets/existing.csv")


def test_select_pairs_hashes_every_image(workdir, prepared, existing_pairs):
    frame = read_manifest(existing_pairs)
    assert len(frame) == len(read_manifest(prepared / "train.csv"))
    assert frame["image_sha1"].str.len().eq(40).all() and frame["target_sha1"].str.len().eq(40).all()
    with pytest.raises(ValueError, match="generated_per_degradation needs a training set with generated pairs"):
        select_pairs("existing", prepared, Path("x.csv"), generated_per_degradation=2)


def test_first_generated_keeps_real_pairs_and_a_nested_prefix_per_degradation():
    frame = pd.DataFrame({"category": ["Real", "Synthetic", "Synthetic", "Real", "Synthetic", "Synthetic", "Synthetic"],
                          "degradation": ["haze", "haze", "rain", "rain", "haze", "rain", "haze"]})
    one, two = first_generated(frame, 1), first_generated(frame, 2)
    assert one.index.tolist() == [0, 1, 2, 3]
    assert two.index.tolist() == [0, 1, 2, 3, 4, 5]
    assert set(one.index) <= set(two.index) and first_generated(frame, 0).index.tolist() == [0, 3]


def test_restorer_training_is_byte_deterministic(workdir, existing_pairs):
    _, params = workdir
    config = stage_config(params, "train_restorer")
    train_restorer(config, "nafnet", "existing", existing_pairs, Path("models/r1"), Path("checkpoints/r1"))
    train_restorer(config, "nafnet", "existing", existing_pairs, Path("models/r2"), Path("checkpoints/r2"))
    assert (Path("models/r1/model.safetensors").read_bytes() == Path("models/r2/model.safetensors").read_bytes())
    assert json.loads(Path("models/r1/train_summary.json").read_text())["arch"] == "nafnet"


def test_restorer_augmentations_are_off_by_default_and_do_what_they_say():
    generator = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    degraded, clean = torch.rand(8, 3, 4, 4, generator=generator()), torch.rand(8, 3, 4, 4, generator=generator()) * 0.5
    off = {"identity_fraction": 0.0, "colour_augment": 0.0}
    g = generator()
    same = augment(degraded, clean, off, g)
    assert same[0] is degraded and same[1] is clean
    assert torch.equal(g.get_state(), generator().get_state()), "disabled augmentations must draw nothing"
    shown_clean, _ = augment(degraded, clean, {**off, "identity_fraction": 1.0}, generator())
    assert torch.equal(shown_clean, clean)
    tinted_degraded, tinted_clean = augment(degraded, clean, {**off, "colour_augment": 0.2}, generator())
    gain = tinted_clean / clean  # clean <= 0.5: never clamped
    assert torch.allclose(gain, gain[..., :1, :1].expand_as(gain), atol=1e-5)
    assert float((gain - 1).abs().max()) <= 0.2 + 1e-6 and not torch.allclose(gain, torch.ones_like(gain))
    assert torch.allclose(tinted_degraded, (degraded * gain).clamp(0, 1), atol=1e-6)


def test_an_architecture_without_settings_is_named_in_the_error(workdir, existing_pairs):
    _, params = workdir
    config = stage_config(params, "train_restorer")
    del config["restorer"]["model"]["swin"]
    with pytest.raises(ValueError, match=r"restorer.model has no entry for architecture 'swin'"):
        train_restorer(config, "swin", "existing", existing_pairs, Path("models/x"), None)


def test_classifier_evaluation_and_report(workdir, prepared, existing_pairs):
    """train_classifier is deterministic; evaluate writes distances for restorer and input; report renders them."""
    _, params = workdir
    classifier_config = stage_config(params, "train_classifier")
    summary = train_classifier(classifier_config, prepared, Path("models/classifier"))
    train_classifier(classifier_config, prepared, Path("again/classifier"))
    assert tree_digest(Path("models/classifier")) == tree_digest(Path("again/classifier"))
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["feature_dim"] > 0
    if not Path("models/r1/model.safetensors").exists():
        train_restorer(stage_config(params, "train_restorer"), "nafnet", "existing", existing_pairs, Path("models/r1"), None)

    config = stage_config(params, "evaluate")
    metrics = evaluate(config, "nafnet-existing", Path("models/r1"), Path("models/classifier"), prepared,
                       Path("metrics/nafnet/existing.json"), Path("metrics/nafnet/existing_per_set.csv"))
    ood = metrics["ood"]
    for key in ("kid", "fid", "swd", "input_kid", "input_fid", "input_swd"):
        assert ood[f"mean_{key}"] is not None and ood["pooled"][key] is not None, key
        assert all(s[key] is not None for s in ood["per_set"].values()), key
    assert metrics["restorer"] == {"arch": "nafnet", "train_set": "existing", "seed": params["seed"],
                                   "pairs": len(read_manifest(existing_pairs)), "generated_pairs": 0}
    for section in (ood, *ood["per_degradation"].values(), metrics["in_distribution"]):
        prefix = "mean_" if section is ood else ""
        gain, matched = section[f"{prefix}psnr_gain"], section[f"{prefix}mean_matched_gain"]
        assert math.isclose(gain, section[f"{prefix}psnr"] - section[f"{prefix}input_psnr"], abs_tol=1e-4)
        assert math.isclose(matched, section[f"{prefix}mean_matched_psnr"] - section[f"{prefix}input_mean_matched_psnr"],
                            abs_tol=1e-4)
        assert section[f"{prefix}colour_shift"] >= 0 and section[f"{prefix}input_colour_shift"] >= 0
    table = pd.read_csv("metrics/nafnet/existing_per_set.csv")
    assert {"kid", "fid", "swd", "input_kid", "psnr", "ssim"} <= set(table.columns) and set(table["split"]) == {"ood", "test"}
    first = Path("metrics/nafnet/existing.json").read_bytes()
    evaluate(config, "nafnet-existing", Path("models/r1"), Path("models/classifier"), prepared,
             Path("metrics/nafnet/existing.json"), Path("metrics/nafnet/existing_per_set.csv"))
    assert Path("metrics/nafnet/existing.json").read_bytes() == first, "evaluation is not deterministic"

    # The report on two "training sets" x two seeds that are one model (GenDS's seed 1 scored 1 dB higher),
    # plus a two-point scaling curve.
    scored = json.loads(first)
    better = {**scored, "ood": {**scored["ood"], "mean_psnr": scored["ood"]["mean_psnr"] + 1.0}}
    for name in ("existing", "gends"):
        Path(f"metrics/nafnet/{name}").mkdir(parents=True, exist_ok=True)
        Path(f"metrics/nafnet/{name}/seed-0.json").write_bytes(first)
        Path(f"metrics/nafnet/{name}/seed-1.json").write_text(json.dumps(better if name == "gends" else scored))
        for seed in (0, 1):
            link = Path(f"models/restorer/nafnet/{name}/seed-{seed}")
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(Path("models/r1").resolve())
    Path("metrics/scaling").mkdir(parents=True, exist_ok=True)
    for n in (0, 4):
        Path(f"metrics/scaling/{n}.json").write_bytes(first)
    report_config = {**stage_config(params, "report"), "scaling_counts": [0, 4], "seeds": [0, 1]}
    jobs = restorer_jobs(report_config, Path("metrics"), Path("models/restorer"))
    assert [(j["job"], j["seed"]) for j in jobs] == [("nafnet-existing", 0), ("nafnet-existing", 1),
                                                    ("nafnet-gends", 0), ("nafnet-gends", 1)]
    summary = report(report_config, jobs, {n: Path(f"metrics/scaling/{n}.json") for n in (0, 4)}, prepared,
                     Path("reports"))
    text = Path("reports/report.md").read_text()
    assert "- unrestored input: OOD" in text and "Does it restore?" in text
    for heading in ("Out-of-distribution PSNR / SSIM / KID", "Distributional distances", "In distribution vs out",
                    "Per degradation", "Data scaling", "nafnet / gends", "Across seeds", "(mean over 2 seeds)"):
        assert heading in text, heading
    for name in ("ood_psnr.png", "ood_per_degradation.png", "scaling.png", "samples.png", "summary.json"):
        assert (Path("reports") / name).exists(), name
    # Seed means, and GenDS - existing paired by seed: 0 and +1 dB -> mean 0.5, sd 0.71.
    assert summary["seeds"] == [0, 1]
    assert math.isclose(summary["mean_ood_psnr"]["nafnet-gends"], scored["ood"]["mean_psnr"] + 0.5)
    assert summary["gain_db_per_seed"]["nafnet"] == pytest.approx({"0": 0.0, "1": 1.0})
    assert math.isclose(summary["gain_db"]["nafnet"], 0.5) and math.isclose(summary["gain_db_sd"]["nafnet"], 0.5 ** 0.5)
    assert json.loads(Path("reports/metrics.json").read_text())["gain_db_sd"] == {"nafnet": 0.7071}
    digest = tree_digest(Path("reports"))
    report(report_config, jobs, {n: Path(f"metrics/scaling/{n}.json") for n in (0, 4)}, prepared, Path("reports"))
    assert tree_digest(Path("reports")) == digest, "report bytes differ between two runs"


@needs_torchvision
def test_evaluate_adds_lpips_and_inception_distances_with_the_perceptual_extra(workdir, prepared, existing_pairs,
                                                                              random_torch_home):
    _, params = workdir
    if not Path("models/classifier/classifier.safetensors").exists():
        train_classifier(stage_config(params, "train_classifier"), prepared, Path("models/classifier"))
    if not Path("models/r1/model.safetensors").exists():
        train_restorer(stage_config(params, "train_restorer"), "nafnet", "existing", existing_pairs, Path("models/r1"), None)
    config = copy.deepcopy(stage_config(params, "evaluate"))
    config["evaluate"]["perceptual"] = {"torch_home": str(random_torch_home)}
    metrics = evaluate(config, "nafnet-existing", Path("models/r1"), Path("models/classifier"), prepared,
                       Path("metrics/perceptual.json"), Path("metrics/perceptual_per_set.csv"))
    ood = metrics["ood"]
    for key in ("lpips", "input_lpips", "inception_fid", "inception_kid", "input_inception_fid"):
        assert ood[f"mean_{key}"] is not None and all(s[key] is not None for s in ood["per_set"].values()), key
        assert metrics["in_distribution"][key] is not None, key
    assert all(s["input_lpips"] > 0 for s in ood["per_set"].values())
    table = pd.read_csv("metrics/perceptual_per_set.csv")
    assert {"lpips", "inception_fid", "inception_kid"} <= set(table.columns)
    job = {"job": "nafnet-existing", "arch": "nafnet", "train_set": "existing"}
    report_table = distance_table([job], {"nafnet-existing": metrics})
    assert {"LPIPS (mean over sets)", "Inception FID (pooled)"} <= set(report_table.columns)


def test_a_killed_restorer_job_resumes_from_its_checkpoint(workdir, existing_pairs):
    """SIGKILL the real CLI after its first checkpoint, run it again: same bytes as uninterrupted."""
    _, params = workdir
    config = stage_config(params, "train_restorer")
    config["restorer"]["train"].update(steps=60, checkpoint_every=5)
    Path("resolved_params").mkdir(exist_ok=True)
    Path("resolved_params/kill.json").write_text(json.dumps(config))
    command = [sys.executable, "-m", "gendeg.cli", "--threads", "1", "train-restorer", "--config",
               "resolved_params/kill.json", "--arch", "nafnet", "--train-set", "existing", "--pairs", str(existing_pairs)]
    subprocess.run(command + ["--out", "models/whole", "--checkpoints", "checkpoints/whole"], check=True,
                   capture_output=True)
    job = subprocess.Popen(command + ["--out", "models/killed", "--checkpoints", "checkpoints/killed"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = Path("checkpoints/killed/last/state.json")
    deadline = time.time() + 300
    while not state.exists() and time.time() < deadline and job.poll() is None:
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert state.exists(), "no checkpoint appeared before the job ended"
    assert not Path("models/killed").exists(), "a killed job left a finished-looking output"
    saved_step = json.loads(state.read_text())["step"]
    done = subprocess.run(command + ["--out", "models/killed", "--checkpoints", "checkpoints/killed"], check=True,
                          capture_output=True, text=True)
    resumed = re.search(r"resumed from step (\d+)", done.stderr)
    assert resumed and int(resumed.group(1)) >= saved_step > 0, done.stderr[-2000:]
    for name in ("model.safetensors", "train_summary.json", "config.json"):  # every output byte, the summary too
        assert (Path("models/killed") / name).read_bytes() == (Path("models/whole") / name).read_bytes(), name


def test_a_two_process_job_shares_the_work_and_writes_once(workdir, existing_pairs):
    """Two CPU processes (torchrun, as `accelerate launch --multi_gpu` starts them on GPUs; gloo
    DDP) run the same CLI as one process:
    the second process draws its own batches (the weights differ from a one-process run of
    the same steps) and only the main process logs an MLflow run and writes the outputs."""
    import mlflow

    _, params = workdir
    config = stage_config(params, "train_restorer")
    config["restorer"]["train"].update(steps=6, checkpoint_every=3)
    Path("resolved_params").mkdir(exist_ok=True)
    Path("resolved_params/ddp.json").write_text(json.dumps(config))
    stage = ["-m", "gendeg.cli", "--threads", "1", "--log-file", "logs/ddp.log", "--benchmark", "logs/ddp.tsv",
             "train-restorer", "--config", "resolved_params/ddp.json", "--arch", "nafnet", "--train-set", "existing",
             "--pairs", str(existing_pairs), "--job", "ddp-test"]
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"]
    done = subprocess.run(launch + stage + ["--out", "models/ddp", "--checkpoints", "checkpoints/ddp"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert Path("logs/ddp.log.rank1").exists() and Path("logs/ddp.tsv").exists()
    assert not Path("checkpoints/ddp").exists(), "the finished job left its checkpoint behind"
    runs = mlflow.MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("gendeg").experiment_id], "attributes.run_name = 'ddp · test'")
    assert len(runs) == 1, f"{len(runs)} MLflow runs for one job"
    subprocess.run([sys.executable] + stage + ["--out", "models/one", "--checkpoints", "checkpoints/one"], check=True,
                   capture_output=True)
    assert Path("models/ddp/model.safetensors").read_bytes() != Path("models/one/model.safetensors").read_bytes()


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_prepare_ingests_user_folders_and_reports_bad_files(workdir):
    root, params = workdir
    rng = np.random.default_rng(0)
    for i in range(4):
        clean = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
        _write(Path(f"user/clean/{i}.png"), clean)
        _write(Path(f"user/hazy/{i}_0.8.png"), (clean * 0.6 + 90).astype(np.uint8))
        _write(Path(f"user/ood_gt/{i}.png"), clean[::-1].copy())
        _write(Path(f"user/ood_in/{i}.png"), (clean[::-1] * 0.5).astype(np.uint8))
    _write(Path("user/hazy/9_0.8.png"), rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))  # no clean counterpart
    config = copy.deepcopy(stage_config(params, "prepare"))
    config["data"]["source"] = "user"
    config["data"]["user"] = {
        "on_bad_input": "fail",
        "paired": [{"name": "MyHaze", "degradation": "haze", "degraded_dir": "user/hazy", "clean_dir": "user/clean",
                    "key_regex": r"^(?P<key>[^_]+)"}],
        "clean": [], "ood": [{"name": "MyOOD", "degradation": "haze", "degraded_dir": "user/ood_in",
                              "clean_dir": "user/ood_gt"}],
    }
    with pytest.raises(IngestError, match="9_0.8.png"):
        prepare(config, Path("user_prepared"))
    assert not Path("user_prepared").exists(), "a failed prepare left an output"
    config["data"]["user"]["on_bad_input"] = "skip"
    summary = prepare(config, Path("user_prepared"))
    assert summary["train"]["pairs"] == 4 and summary["ood"]["pairs"] == 4
    assert "9_0.8.png" in Path("user_prepared/problems.csv").read_text()
    train = read_manifest("user_prepared/train.csv")
    assert train["mu"].between(0.05, 0.5).all()  # computed by prepare, as the paper defines it
    assert (Path("user_prepared/stats/haze/Mu_MyHaze.json")).exists()


def test_one_seed_reports_its_own_numbers_exactly():
    """With `seeds: [0]` the report's seed means are the seed's own values, bit for bit (ints stay ints)."""
    from gendeg.stages.report import mean_over_seeds, spread

    tree = {"ood": {"mean_psnr": 21.183741, "n": 24, "per_set": {"a": {"psnr": 0.1 + 0.2}}}, "job": "nafnet-gends"}
    assert json.dumps(mean_over_seeds([tree])) == json.dumps(tree)
    two = mean_over_seeds([tree, {**tree, "ood": {**tree["ood"], "mean_psnr": 22.0}}])
    assert two["ood"]["n"] == 24 and math.isclose(two["ood"]["mean_psnr"], (21.183741 + 22.0) / 2)
    assert spread([1.0]) is None and math.isclose(spread([0.0, 1.0]), 0.5 ** 0.5)
