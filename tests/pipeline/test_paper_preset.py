"""The paper preset end to end on a tiny, randomly initialised Stable Diffusion folder.

Every setting comes from params.yaml's `paper` preset as gendeg.pipeline.config.load_params resolves
it (the stages' own path), so an edit there is what these tests run.  The folder (`tests/helpers/random_sd.py`) is in diffusers layout (unet/, vae/, text_encoder/,
tokenizer/, scheduler/, model_index.json), with a real CLIPTokenizer over a vocab.json and
merges.txt written offline, so GenDegModel goes through exactly the code a user's SD v1.5
folder goes through -- only smaller.  No download.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gendeg.diffusion import PAPER_CONFIG, GenDegModel, build_prompt, build_prompts, generate, training_loss
from gendeg.diffusion.model import SD_FOLDER_PLACEHOLDER
from helpers.random_sd import ARCHITECTURES, write_random_stable_diffusion
from gendeg.pipeline.config import load_params
from gendeg.stages.train_gendeg import gendeg_optimizer

torch.set_num_threads(1)

TOKEN_DIM = ARCHITECTURES["tiny"]["text"]["hidden_size"]
PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


@functools.cache
def paper_preset() -> dict:
    """params.yaml with `preset: paper`, resolved by load_params (a copy of the file: only that line differs)."""
    text, count = re.subn(r"^preset: *\S+", "preset: paper", PARAMS.read_text(), count=1, flags=re.MULTILINE)
    assert count == 1, f"{PARAMS}: no top-level `preset:` line"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "params.yaml"
        path.write_text(text)
        return load_params(path)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory) -> Path:
    return write_random_stable_diffusion(tmp_path_factory.mktemp("stable-diffusion-tiny"), "tiny")


def paper_config(folder: Path) -> dict:
    """The paper preset's GenDeg model exactly as params.yaml resolves it, pointed at `folder`."""
    config = copy.deepcopy(paper_preset()["gendeg"]["model"])
    assert config["unet"]["pretrained"] == SD_FOLDER_PLACEHOLDER  # the one value the user must set
    config["unet"]["pretrained"] = str(folder)
    config["noise_schedule"] = {"num_train_timesteps": 100}  # fewer steps: the same code, a shorter test
    return config


def paper_model(folder: Path) -> GenDegModel:
    torch.manual_seed(0)
    return GenDegModel.from_config(paper_config(folder))


def batch(size: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(size, 3, 16, 16, generator=g)
    degraded = (clean * 0.6 + 0.3).clamp(0, 1)
    ids = torch.arange(size) % 6
    mu, sigma = torch.linspace(0.05, 0.3, size), torch.linspace(0.02, 0.2, size)
    captions = ["a street at night", None, "", "a house"][:size]
    return clean, degraded, ids, mu, sigma, captions


def generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_the_paper_preset_resolves_to_the_papers_recipe():
    """What params.yaml's `paper` preset gives the stages: the paper's settings (arXiv 2411.17687)."""
    resolved = paper_preset()
    gendeg, train = resolved["gendeg"], resolved["gendeg"]["train"]
    model = gendeg["model"]
    assert (model["route"], model["intensity_encoding"], model["prediction_type"], model["residual"]) == (
        "cross_attention", "onehot", "epsilon", False)
    assert model["codec"]["type"] == "autoencoder_kl" and model["text_encoder"]["type"] == "clip"
    assert gendeg["image_size"] == 256
    assert (train["lr"], train["projection_lr"], train["ema_decay"], train["mixed_precision"]) == (1e-4, 1e-3, 0.9999, "bf16")
    assert train["batch_size"] * train["grad_accum"] == 128  # the paper's effective batch on one GPU
    assert train["dropout"] == {"text": 0.05, "text_and_image": 0.05, "image": 0.05}
    synthesis = resolved["synthesis"]
    assert (synthesis["sampler"], synthesis["steps"], synthesis["text_guidance"], synthesis["image_guidance"]) == (
        "euler_ancestral", 100, 7.5, 1.5)
    assert synthesis["image_size"] == 512 and resolved["structure_correction"]["enabled"] is True
    # PAPER_CONFIG (what benchmarks/gpu_throughput.py builds) says the same as the preset.
    assert {key: model[key] for key in PAPER_CONFIG} == PAPER_CONFIG


def test_the_sd15_architecture_is_stable_diffusion_v1_5():
    """The GPU benchmark's random folder has SD v1.5's networks: their published parameter counts."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    spec = ARCHITECTURES["sd15"]
    with torch.device("meta"):  # shapes only: no 4 GB of weights
        unet = UNet2DConditionModel(in_channels=4, out_channels=4, cross_attention_dim=768, **spec["unet"])
        vae = AutoencoderKL(latent_channels=4, **spec["vae"])
        text = CLIPTextModel(CLIPTextConfig(max_position_embeddings=77, **spec["text"]))
    counts = [sum(p.numel() for p in m.parameters()) for m in (unet, vae, text)]
    assert counts == [859_520_964, 83_653_863, 123_060_480]


# -- prompts -----------------------------------------------------------------------------

def test_prompts_are_caption_then_phrase():
    assert build_prompt("haze", "a street at night") == "a street at night, in hazy conditions"
    assert build_prompt(5, None) == "with raindrops in it"
    assert build_prompt("rain", float("nan")) == "in rainy conditions"  # pandas' missing caption
    assert build_prompt("snow", "  a house,  ") == "a house, in snowy conditions"
    prompts = build_prompts(torch.tensor([0, 4]), ["a house", "a street"], torch.tensor([False, True]))
    assert prompts == ["a house, in hazy conditions", ""]
    with pytest.raises(ValueError, match="captions: 1 for a batch of 2"):
        build_prompts(torch.tensor([0, 1]), ["a"])
    with pytest.raises(KeyError, match="fog"):
        build_prompt("fog")


# -- loading -----------------------------------------------------------------------------

def test_loads_unet_vae_and_clip_from_one_folder(sd_folder):
    from diffusers import UNet2DConditionModel

    model = paper_model(sd_folder)
    assert model.config["text_encoder"]["type"] == "clip" and model.config["text_encoder"]["path"] == str(sd_folder)
    assert model.config["codec"]["path"] == str(sd_folder) and model.config["codec"]["subfolder"] == "vae"
    assert model.codec.scaling_factor == pytest.approx(0.18215)  # from the VAE's config
    conv = model.unet.conv_in
    original = UNet2DConditionModel.from_pretrained(str(sd_folder), subfolder="unet", local_files_only=True).conv_in
    assert conv.in_channels == 8 and model.unet.config.in_channels == 8
    assert torch.equal(conv.weight[:, :4], original.weight) and torch.equal(conv.bias, original.bias)
    assert torch.count_nonzero(conv.weight[:, 4:]) == 0
    assert model.degradation_tokens is None and model.prompt_encoder.n_tokens == 77
    assert model.intensity.intensity_projection.out_features == 77
    frozen = [n for n, p in model.named_parameters() if n.startswith(("codec.", "prompt_encoder."))]
    assert frozen and not any(model.get_parameter(n).requires_grad for n in frozen)
    trainable = {id(p) for p in model.trainable_parameters()}
    assert not trainable & {id(model.get_parameter(n)) for n in frozen}


def test_null_prompt_and_null_intensity_when_text_is_dropped(sd_folder):
    model = paper_model(sd_folder).eval()
    ids = torch.tensor([0, 0, 3])
    drop = torch.tensor([False, True, True])
    tokens = model.text_tokens(ids, drop, ["a house", "a house", "a street"])
    assert tokens.shape == (3, 77, TOKEN_DIM)
    assert torch.equal(tokens[1], tokens[2])  # the empty prompt, whatever the caption and type
    assert torch.equal(tokens[1], model.prompt_encoder([""])[0])
    assert not torch.allclose(tokens[0], tokens[1])
    fresh = model.prompt_encoder._encode_uncached(["a house, in hazy conditions"])[0]
    assert torch.allclose(tokens[0], fresh, atol=1e-6)  # the cache gives what a fresh forward gives
    torch.nn.init.normal_(model.intensity.context_projection.weight, std=0.5)  # let mu/sigma show at once
    g = torch.Generator().manual_seed(1)
    noisy, image = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    t, two = torch.tensor([5, 50]), torch.tensor([0, 3])
    no, yes = torch.zeros(2, dtype=torch.bool), torch.ones(2, dtype=torch.bool)
    low, high = (torch.tensor([0.05, 0.1]), torch.tensor([0.02, 0.05])), (torch.tensor([0.4, 0.6]), torch.tensor([0.3, 0.35]))
    with torch.no_grad():
        kept = [model(noisy, t, image, two, *level, no, no, captions=["a", "b"]) for level in (low, high)]
        dropped = [model(noisy, t, image, two, *level, yes, no, captions=["a", "b"]) for level in (low, high)]
    assert not torch.allclose(kept[0], kept[1])  # mu/sigma reach the UNet through the tokens...
    assert torch.equal(dropped[0], dropped[1])  # ...and go to the null slot with the text


def test_missing_folder_errors_name_the_path(tmp_path, sd_folder):
    with pytest.raises(FileNotFoundError, match="unet.pretrained.*nowhere.*not a folder"):
        GenDegModel.from_config(paper_config(tmp_path / "nowhere"))
    partial = tmp_path / "no-clip"
    shutil.copytree(sd_folder, partial, ignore=shutil.ignore_patterns("text_encoder"))
    with pytest.raises(FileNotFoundError, match="no-clip.*text_encoder/"):
        GenDegModel.from_config(paper_config(partial))


# -- training ----------------------------------------------------------------------------

def test_paper_learning_rates_lower_the_loss_and_leave_frozen_weights(sd_folder):
    model = paper_model(sd_folder)
    frozen_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("codec.", "prompt_encoder."))}
    clean, degraded, ids, mu, sigma, captions = batch()
    # The preset's optimiser (the paper's two learning rates, 1e-4 and 10x for the projections),
    # on a fixed objective (same noise, timesteps and dropout every step) and without its
    # dropout, so the comparison is exact.
    optimizer = gendeg_optimizer(model, paper_preset()["gendeg"]["train"])
    assert [group["lr"] for group in optimizer.param_groups] == [1e-4, 1e-3]
    no_dropout = {"text": 0.0, "text_and_image": 0.0, "image": 0.0}
    losses = []
    for _ in range(25):
        loss = training_loss(model, clean, degraded, ids, mu, sigma, torch.Generator().manual_seed(0),
                             no_dropout, captions=captions)
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in model.projection_parameters())
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    for key, value in model.state_dict().items():
        if key in frozen_before:
            assert torch.equal(value, frozen_before[key]), key


def test_captions_reach_the_loss(sd_folder):
    model = paper_model(sd_folder)
    torch.nn.init.normal_(model.intensity.context_projection.weight, std=0.5)  # identity at init hides nothing, but be sure
    clean, degraded, ids, mu, sigma, _ = batch(2)
    no_dropout = {"text": 0.0, "text_and_image": 0.0, "image": 0.0}
    with torch.no_grad():
        a = training_loss(model, clean, degraded, ids, mu, sigma, torch.Generator().manual_seed(1), no_dropout,
                          captions=["a house", "a street"])
        b = training_loss(model, clean, degraded, ids, mu, sigma, torch.Generator().manual_seed(1), no_dropout,
                          captions=None)
    assert a != b


# -- sampling ----------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmsolver++"])
def test_generate_shapes_range_determinism(sd_folder, sampler):
    model = paper_model(sd_folder).eval()
    clean, _, ids, mu, sigma, captions = batch(3)
    synthesis = paper_preset()["synthesis"]  # the preset's guidance; fewer steps, both samplers
    kwargs = {"num_steps": 3, "sampler": sampler, "image_guidance": synthesis["image_guidance"],
              "text_guidance": synthesis["text_guidance"]}
    out = generate(model, clean, ids, mu, sigma, generators([7, 8, 9]), captions=captions, **kwargs)
    assert out.shape == clean.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, generate(model, clean, ids, mu, sigma, generators([7, 8, 9]), captions=captions, **kwargs))
    alone = generate(model, clean[1:2], ids[1:2], mu[1:2], sigma[1:2], generators([8]), captions=captions[1:2], **kwargs)
    assert torch.allclose(alone[0], out[1], atol=1e-4)
    recaptioned = generate(model, clean, ids, mu, sigma, generators([7, 8, 9]),
                           captions=["a house at night", None, ""], **kwargs)
    assert not torch.allclose(recaptioned[0], out[0], atol=1e-5) and torch.allclose(recaptioned[1:], out[1:], atol=1e-5)


# -- checkpoints -------------------------------------------------------------------------

def test_save_keeps_frozen_weights_out_and_reloads_from_the_folder(tmp_path, sd_folder):
    folder = tmp_path / "sd"
    shutil.copytree(sd_folder, folder)
    model = paper_model(folder).eval()
    with torch.no_grad():  # a trained-looking model: the reload must restore these, not the SD init
        model.intensity.intensity_projection.weight.add_(0.1)
        model.unet.conv_in.weight[:, 4:].fill_(0.01)
    model.save_pretrained(tmp_path / "gendeg")
    saved = load_file(str(tmp_path / "gendeg" / "model.safetensors"))
    assert not [k for k in saved if k.startswith(("codec.", "prompt_encoder.", "degradation_tokens."))]
    assert any(k.startswith("unet.") for k in saved) and any(k.startswith("intensity.") for k in saved)
    config = json.loads((tmp_path / "gendeg" / "config.json").read_text())
    assert config["unet"]["pretrained"] == config["codec"]["path"] == config["text_encoder"]["path"] == str(folder)

    loaded = GenDegModel.from_pretrained(tmp_path / "gendeg").eval()
    assert loaded.config == model.config
    clean, _, ids, mu, sigma, captions = batch(2)
    kwargs = {"num_steps": 2, "sampler": "euler_ancestral", "captions": captions[:2]}
    expected = generate(model, clean, ids, mu, sigma, generators([1, 2]), **kwargs)
    assert torch.equal(expected, generate(loaded, clean, ids, mu, sigma, generators([1, 2]), **kwargs))

    moved = tmp_path / "sd-moved"
    folder.rename(moved)
    with pytest.raises(FileNotFoundError, match=rf"config.json.*{folder.name}.*base_model"):
        GenDegModel.from_pretrained(tmp_path / "gendeg")
    relocated = GenDegModel.from_pretrained(tmp_path / "gendeg", base_model=moved).eval()
    assert relocated.config["codec"]["path"] == relocated.config["text_encoder"]["path"] == str(moved)
    assert torch.equal(expected, generate(relocated, clean, ids, mu, sigma, generators([1, 2]), **kwargs))


def test_time_embedding_route_on_a_pretrained_unet_starts_as_a_no_op(sd_folder):
    model = GenDegModel.from_config({**paper_config(sd_folder), "route": "time_embedding", "class_embedding_dim": 16})
    assert model.unet.config.class_embed_type == "projection"
    assert torch.count_nonzero(model.unet.class_embedding.linear_2.weight) == 0
    clean, degraded, ids, mu, sigma, captions = batch(2)
    loss = training_loss(model, clean, degraded, ids, mu, sigma, torch.Generator().manual_seed(0),
                         paper_preset()["gendeg"]["train"]["dropout"], captions=captions)
    loss.backward()
    assert loss.isfinite() and torch.count_nonzero(model.unet.class_embedding.linear_2.weight.grad) > 0
