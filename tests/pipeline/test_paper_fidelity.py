"""GenDeg and S: where the paper preset departed from the paper and the released code
(sudraj2002/GenDeg at dc22c1e), each now matched or a documented setting (docs/paper-fidelity.md).

Tiny randomly initialised models only; nothing is downloaded.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import stage_workspace
from PIL import Image
from helpers.presets import TINY_GENDEG as TINY
from test_paper_preset import paper_config, paper_model, paper_preset

from gendeg.data.pairs import PairBank, load_image, load_square
from gendeg.diffusion import GenDegModel, merge_config
from helpers.random_sd import write_random_stable_diffusion
from gendeg.diffusion.structure_correction import StructureCorrection
from gendeg.intensity.definition import mu_sigma
from gendeg.pipeline.config import resolve, stage_config
from gendeg.restorers import build_restorer, count_parameters
from gendeg.runtime import training as training_module
from gendeg.runtime.training import TrainSettings, settings_from_config, train
from gendeg.stages import synthesize as synthesis_stage
from gendeg.stages import train_structure_correction as correction_stage

torch.set_num_threads(1)
PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def default_params() -> dict:
    """params.yaml with the CPU default preset, resolved."""
    return resolve({**yaml.safe_load(PARAMS.read_text()), "preset": "default"})


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory) -> Path:
    return write_random_stable_diffusion(tmp_path_factory.mktemp("stable-diffusion-tiny"), "tiny")


# -- 1. the clean image's latent enters the UNet unscaled ----------------------------------

def conv_in_input(model: GenDegModel, clean: torch.Tensor) -> torch.Tensor:
    """What the UNet's first conv receives for `clean` (noisy half, then the image half)."""
    seen = []
    handle = model.unet.conv_in.register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    latents = model.codec.encode(clean)
    batch = clean.shape[0]
    off = torch.zeros(batch, dtype=torch.bool)
    with torch.no_grad():
        model(torch.zeros_like(latents), torch.full((batch,), 10), latents, torch.zeros(batch, dtype=torch.long),
              torch.full((batch,), 0.1), torch.full((batch,), 0.05), off, off)
    handle.remove()
    return seen[0]


def test_the_clean_image_latent_is_the_unscaled_posterior_mode(sd_folder):
    """InstructPix2Pix / ddpm_edit.py L743: concat the VAE's mode itself; the target latent keeps the factor."""
    model = paper_model(sd_folder).eval()
    assert model.codec.scaling_factor == pytest.approx(0.18215)
    clean = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    mode = model.codec.vae.encode(clean * 2 - 1).latent_dist.mode()
    image_half = conv_in_input(model, clean)[:, model.codec.latent_channels:]
    torch.testing.assert_close(image_half, mode, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.codec.encode(clean), mode * 0.18215)  # the diffused latent: scaled


def test_scaled_condition_is_a_setting_and_old_checkpoints_keep_it(sd_folder, tmp_path):
    config = paper_config(sd_folder)
    config["codec"] = {**config["codec"], "condition_latent": "scaled"}
    torch.manual_seed(0)
    model = GenDegModel.from_config(config).eval()
    clean = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(conv_in_input(model, clean)[:, 4:], model.codec.encode(clean))
    # A checkpoint saved before the setting existed was trained on the scaled latent: it loads so.
    model.save_pretrained(tmp_path / "old")
    saved = json.loads((tmp_path / "old" / "config.json").read_text())
    del saved["codec"]["condition_latent"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(saved))
    assert GenDegModel.from_pretrained(tmp_path / "old").codec.condition_scale == 1.0
    with pytest.raises(ValueError, match="condition_latent"):
        GenDegModel.from_config({**config, "codec": {**config["codec"], "condition_latent": "half"}})


def test_the_cpu_default_config_is_unchanged():
    """The CPU default's codec has no scaling factor and its config (config.json bytes) gains no key."""
    resolved = merge_config(default_params()["gendeg"]["model"])
    assert resolved == merge_config(copy.deepcopy(resolved))
    assert "intensity_columns_init" not in resolved and "condition_latent" not in resolved["codec"]
    assert GenDegModel.from_config(TINY).codec.condition_scale == 1.0


# -- 10. projection init, EMA scope, clipping -----------------------------------------------

def test_intensity_columns_keep_the_default_init_in_the_paper_preset(sd_folder):
    """ddpm_edit.py L495-499: identity on the text part, zero bias, the (mu, sigma) columns as nn.Linear drew them."""
    assert paper_preset()["gendeg"]["model"]["intensity_columns_init"] == "default"
    projection = paper_model(sd_folder).intensity.context_projection
    dim = projection.out_features
    torch.testing.assert_close(projection.weight[:, :dim], torch.eye(dim))
    assert not projection.bias.any()
    columns = projection.weight[:, dim:]
    bound = 1 / (dim + 2) ** 0.5  # PyTorch's Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert columns.abs().max() <= bound and columns.abs().min() > 0 and columns.std() > bound / 4
    zero = GenDegModel.from_config({**paper_config(sd_folder), "intensity_columns_init": "zero"})
    assert not zero.intensity.context_projection.weight[:, dim:].any()


def test_paper_preset_trains_gendeg_as_released():
    """Uniform draws over pairs, no gradient clipping, EMA over the UNet only."""
    train_cfg = paper_preset()["gendeg"]["train"]
    assert train_cfg["balance"] == "none"
    settings = settings_from_config(train_cfg, 0, None, "paper")
    assert settings.max_grad_norm is None and settings.ema_scope == "unet"
    default = settings_from_config(default_params()["gendeg"]["train"], 0, None, "default")  # unchanged
    assert default.max_grad_norm == 1.0 and default.ema_scope == "all"


def test_ema_over_the_unet_leaves_the_projections_raw():
    """ema_scope unet: after training the UNet holds its average, the projections their last weights."""
    results = {}
    for scope in ("all", "unet"):
        torch.manual_seed(0)
        model = GenDegModel.from_config(TINY)
        assert len(training_module.ema_parameters(model, scope)) == (
            len(list(model.trainable_parameters())) if scope == "all" else len(list(model.unet.parameters())))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        target = torch.linspace(-1, 1, 8)

        def loss_fn(net, step, generator, model=model):
            out = net.unet.conv_in.weight.flatten()[:8] + net.intensity.mu_projection.weight.flatten()[:8]
            return ((out - target) ** 2).sum()

        train(model, optimizer, loss_fn, TrainSettings(steps=5, seed=0, ema_decay=0.5, ema_scope=scope,
                                                       log_every=5))
        results[scope] = {k: v.clone() for k, v in model.state_dict().items()}
    unet = [k for k in results["all"] if k.startswith("unet.conv_in.weight")]
    projection = [k for k in results["all"] if k.startswith("intensity.mu_projection.weight")]
    assert all(torch.equal(results["all"][k], results["unet"][k]) for k in unet)  # averaged both times
    assert not any(torch.equal(results["all"][k], results["unet"][k]) for k in projection)  # raw under "unet"
    with pytest.raises(ValueError, match="ema_scope"):
        training_module.ema_parameters(torch.nn.Linear(2, 2), "unet")


def test_ema_steps_once_per_optimiser_step(monkeypatch):
    """grad_accum micro-batches make one optimiser step and one EMA step (the released LitEma steps per batch)."""
    from diffusers.training_utils import EMAModel

    calls = []
    original = EMAModel.step
    monkeypatch.setattr(EMAModel, "step", lambda self, params: (calls.append(1), original(self, params)))
    model = torch.nn.Linear(2, 1)
    train(model, torch.optim.SGD(model.parameters(), lr=0.1), lambda net, step, g: net(torch.ones(1, 2)).pow(2).sum(),
          TrainSettings(steps=3, seed=0, grad_accum=4, ema_decay=0.9, log_every=1))
    assert len(calls) == 3


def test_a_final_checkpoint_resumes_at_the_end(tmp_path):
    """checkpoint_final (train_gendeg sets it): a job that fails after training reruns no step."""
    def run(steps_seen):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 1)

        def loss_fn(net, step, generator):
            steps_seen.append(step)
            return net(torch.ones(1, 2)).pow(2).sum()

        train(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn,
              TrainSettings(steps=3, seed=0, ema_decay=0.9, checkpoint_dir=tmp_path, checkpoint_every=2, log_every=1,
                            checkpoint_final=True))
        return model.weight.detach().clone()

    first, second = [], []
    weights = run(first)
    assert json.loads((tmp_path / "last" / "state.json").read_text())["step"] == 3
    assert torch.equal(run(second), weights) and first == [0, 1, 2] and second == []


# -- 5. S is the released S, trained at the size it corrects, on captioned inputs ----------

def test_paper_s_is_the_released_nafnet():
    """run_parallel_mu_sigma.py L139: width 64, [2,2,4,8] / 12 / [2,2,2,2] over 6 channels: 115,984,643 parameters
    (counted on the released NAFNet_arch.py too)."""
    cfg = paper_preset()["structure_correction"]["model"]
    with torch.device("meta"):  # shapes only
        assert count_parameters(build_restorer(cfg)) == 115_984_643
    narrow = build_restorer({**cfg, "width": 4}, seed=0)  # the same blocks, narrow: it runs on a CPU
    x = torch.rand(1, 6, 32, 32)
    out = narrow(x)
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


def test_s_trains_at_the_size_synthesis_samples_at(tmp_path):
    resolved = paper_preset()
    assert resolved["structure_correction"]["image_size"] == resolved["synthesis"]["image_size"] == 512
    (tmp_path / "train_summary.json").write_text(json.dumps({"image_size": 256}))
    assert correction_stage.correction_size(resolved["structure_correction"], tmp_path) == 512
    assert correction_stage.correction_size({"image_size": None}, tmp_path) == 256  # the CPU default: GenDeg's size
    s = StructureCorrection(torch.nn.Identity(), ("haze",), image_size=256)
    image = torch.rand(1, 3, 512, 512)
    with pytest.raises(ValueError, match="structure_correction.image_size"):
        s.apply(image, image, "haze")
    assert s.apply(image, image, "rain") is image  # not covered: untouched whatever the size


def write_rgb(path: Path, width: int, height: int, seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return str(path)


def test_s_inputs_are_generated_with_the_pairs_captions(tmp_path, monkeypatch):
    frame = pd.DataFrame({
        "image_path": [write_rgb(tmp_path / f"d{i}.png", 16, 16, i) for i in range(3)],
        "target_path": [write_rgb(tmp_path / f"c{i}.png", 16, 16, 10 + i) for i in range(3)],
        "dataset": "x", "degradation": "haze", "split": "train", "mu": 0.1, "sigma": 0.05,
        "caption": ["a street at night", "", "a house"]})
    bank = PairBank(frame, size=16)
    seen = []

    def fake_generate(model, clean, *args, captions=None, **kwargs):
        seen.extend(captions)
        return clean

    monkeypatch.setattr(correction_stage, "generate", fake_generate)
    correction_stage.generate_inputs(None, bank, [0, 1, 2], {"batch_size": 2, "steps": 1, "image_guidance": 1.5,
                                                             "text_guidance": 7.5, "sampler": "dpmsolver++"},
                                     tmp_path / "cache", "train")
    assert seen == ["a street at night", "", "a house"]


# -- 6. generated pairs are pixel-aligned with their targets ---------------------------------

@pytest.fixture(scope="module")
def workdir(tmp_path_factory, smoke_params):
    with stage_workspace(tmp_path_factory.mktemp("aligned")) as root:
        yield root, smoke_params


def test_an_identity_degradation_gives_exactly_aligned_pairs(workdir, prepared, monkeypatch):
    """Sources of 1280x720 and 620x460 (and one already at the generator's size, the CPU default's
    case) through synthesis with GenDeg replaced by the identity: each pair, read back as restorers
    read it (as stored, or resized to any size), is the same image twice."""
    _, params = workdir
    size = 32
    pool = Path("prepared_aligned")
    pool.mkdir()
    for item in Path(prepared).iterdir():
        (pool / item.name).symlink_to(item.resolve())
    (pool / "clean_pool.csv").unlink()
    sources = [write_rgb(Path("sources/wide.png"), 1280, 720, 1), write_rgb(Path("sources/odd.png"), 620, 460, 2),
               write_rgb(Path("sources/ready.png"), size, size, 3)]
    pd.DataFrame({"image_path": sources, "degradation": "rain", "dataset": "Rain13K", "scene": ["a", "b", "c"],
                  "caption": ""}).to_csv(pool / "clean_pool.csv", index=False)
    torch.manual_seed(0)
    GenDegModel.from_config(TINY).save_pretrained(Path("models/tiny"))
    config = stage_config(params, "synthesize")
    config["synthesis"].update(per_degradation=3, batch_size=3, image_size=size, shards=[0], oracle=True,
                               calibration={**config["synthesis"]["calibration"], "enabled": False},
                               colour_range={**config["synthesis"]["colour_range"], "enabled": False})
    monkeypatch.setattr(synthesis_stage, "_degrade", lambda model, clean, rows, degradation, cfg: clean.clone())
    out = Path("synthetic/haze/shard-0")
    synthesis_stage.synthesize(config, pool, Path("models/tiny"), "haze", out, Path("work/haze"))
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    by_source = {Path(s).name: row for s, row in zip(manifest["target_path"], manifest.itertuples(), strict=True)}
    for frame in (manifest, pd.read_csv(out / "oracle.csv", keep_default_na=False)):
        for row in frame.itertuples():
            if frame is manifest:
                as_stored = load_image(row.image_path, None), load_image(row.target_path, None)
                assert np.array_equal(*as_stored) and as_stored[0].shape == (size, size, 3)
                assert np.array_equal(load_square(row.image_path, 24), load_square(row.target_path, 24))
                mu, sigma = mu_sigma(as_stored[1] / 255.0, as_stored[0] / 255.0)
                assert mu == 0 and sigma == 0
            else:
                assert load_image(row.image_path, None).shape == load_image(row.target_path, None).shape
    assert "ready.png" in by_source  # already at the generator's size: its own target, no copy
    assert sorted(p.name for p in (out / "targets").iterdir()) == sorted(
        Path(p).name for p in manifest["target_path"] if "targets" in p)
    assert len(list((out / "targets").iterdir())) == 2
