"""Behaviour of the GenDeg diffusion model: conditioning, codecs, network, loss, sampler."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers.training_utils import compute_snr
from helpers.presets import TINY_GENDEG, preset_params

from gendeg.diffusion import (
    GenDegModel,
    PixelUnshuffleCodec,
    build_codec,
    draw_condition_dropout,
    encode_intensity,
    generate,
    merge_config,
    model_evaluations_per_image,
    training_loss,
)
from gendeg.diffusion.conditioning import CrossAttentionIntensity
from gendeg.diffusion.objective import snr_weights
from gendeg.diffusion.sampling import epsilon_from_sample
from gendeg.intensity.definition import NULL_SLOT, bin_index

torch.set_num_threads(1)

DEFAULT_MODEL = preset_params()["gendeg"]["model"]
DROPOUT = preset_params()["gendeg"]["train"]["dropout"]  # the condition dropout: params.yaml states it
TINY = TINY_GENDEG


def tiny_model(**overrides) -> GenDegModel:
    torch.manual_seed(0)  # diffusers initialises weights from the global RNG
    return GenDegModel.from_config({**TINY, **overrides})


def batch(size: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(size, 3, 16, 16, generator=g)
    degraded = (clean * 0.6 + 0.3).clamp(0, 1)
    ids = torch.arange(size) % 6
    mu = torch.linspace(0.05, 0.3, size)
    sigma = torch.linspace(0.02, 0.2, size)
    return clean, degraded, ids, mu, sigma


def generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


# -- conditioning ------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["onehot", "smoothed"])
def test_intensity_codes_have_129_slots_and_null_rows(encoding):
    mu, sigma = torch.tensor([0.0, 0.1, 0.69, 0.9]), torch.tensor([0.05, 0.2, 0.39, 0.01])
    drop = torch.tensor([False, True, False, False])
    mu_code, sigma_code = encode_intensity(mu, sigma, drop, encoding=encoding)
    assert mu_code.shape == sigma_code.shape == (4, 129)
    for code in (mu_code, sigma_code):
        assert torch.equal(code[1], torch.nn.functional.one_hot(torch.tensor(NULL_SLOT), 129).float())
        assert torch.all(code[[0, 2, 3], NULL_SLOT] == 0)
    kept = ~drop
    assert torch.equal(mu_code[kept, :128].argmax(1), bin_index(mu[kept], "mu"))
    assert torch.equal(sigma_code[kept, :128].argmax(1), bin_index(sigma[kept], "sigma"))


def test_onehot_is_one_hot_and_smoothed_shares_with_neighbours():
    mu, sigma = torch.tensor([0.2]), torch.tensor([0.1])
    onehot, _ = encode_intensity(mu, sigma, encoding="onehot")
    smoothed, _ = encode_intensity(mu, sigma, encoding="smoothed", smoothing_bins=4.0)
    assert onehot.sum() == 1
    peak = int(bin_index(0.2, "mu"))
    assert smoothed[0, peak + 3] > 0.5 and smoothed[0, peak - 3] > 0.5
    assert torch.all(smoothed[0, peak:127].diff() <= 0)  # decays away from the requested bin


def test_cross_attention_projection_is_identity_on_text_at_init():
    torch.manual_seed(0)
    layer = CrossAttentionIntensity(n_tokens=3, dim=8)
    tokens = torch.randn(2, 3, 8)
    mu_code, sigma_code = encode_intensity(torch.tensor([0.1, 0.3]), torch.tensor([0.05, 0.2]))
    assert torch.allclose(layer(tokens, mu_code, sigma_code), tokens, atol=1e-6)
    assert layer.context_projection.weight.shape == (8, 10)


@pytest.mark.parametrize("route", ["cross_attention", "time_embedding"])
def test_both_routes_run_and_intensity_drops_with_text(route):
    model = tiny_model(route=route).eval()
    if route == "cross_attention":  # at init the identity map hides mu/sigma; perturb it to see them
        torch.nn.init.normal_(model.intensity.context_projection.weight, std=0.5)
    g = torch.Generator().manual_seed(1)
    channels = model.codec.latent_channels
    noisy, image = torch.randn(2, channels, 4, 4, generator=g), torch.randn(2, channels, 4, 4, generator=g)
    t, ids = torch.tensor([5, 50]), torch.tensor([0, 4])
    no, yes = torch.zeros(2, dtype=torch.bool), torch.ones(2, dtype=torch.bool)
    with torch.no_grad():
        out_a = model(noisy, t, image, ids, torch.tensor([0.05, 0.1]), torch.tensor([0.02, 0.05]), no, no)
        out_b = model(noisy, t, image, ids, torch.tensor([0.4, 0.6]), torch.tensor([0.3, 0.35]), no, no)
        dropped_a = model(noisy, t, image, ids, torch.tensor([0.05, 0.1]), torch.tensor([0.02, 0.05]), yes, no)
        dropped_b = model(noisy, t, image, ids, torch.tensor([0.4, 0.6]), torch.tensor([0.3, 0.35]), yes, no)
    assert out_a.shape == (2, channels, 4, 4)
    assert not torch.allclose(out_a, out_b)  # intensity reaches the network...
    assert torch.equal(dropped_a, dropped_b)  # ...and is gone when the text is dropped


def test_projection_parameters_are_separate_from_the_rest():
    for route in ("cross_attention", "time_embedding"):
        model = tiny_model(route=route)
        projection, main = model.projection_parameters(), model.main_parameters()
        assert projection and {id(p) for p in projection}.isdisjoint(id(p) for p in main)
        assert len(projection) + len(main) == len(list(model.trainable_parameters()))


def test_config_errors_name_the_key():
    with pytest.raises(KeyError, match="bogus"):
        merge_config({"bogus": 1})
    with pytest.raises(ValueError, match="route"):
        merge_config({**DEFAULT_MODEL, "route": "sideways"})
    # Stated by params.yaml alone: no default to fall back on.
    without_route = {k: v for k, v in DEFAULT_MODEL.items() if k != "route"}
    with pytest.raises(KeyError, match=r"missing key\(s\) \['route'\]"):
        merge_config(without_route)
    unscaled = {k: v for k, v in DEFAULT_MODEL.items() if k != "residual_scale"}
    with pytest.raises(KeyError, match="residual_scale"):
        merge_config(unscaled)
    assert "residual_scale" not in merge_config({**unscaled, "residual": False})  # needed only with a residual


# -- codecs ------------------------------------------------------------------------------

def test_pixel_unshuffle_codec_is_exact():
    codec = PixelUnshuffleCodec(4)
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    latents = codec.encode(images)
    assert latents.shape == (2, 48, 4, 4) and latents.min() >= -1 and latents.max() <= 1
    assert torch.allclose(codec.decode(latents), images, atol=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        codec.encode(torch.rand(1, 3, 15, 16))


def test_autoencoder_kl_codec_loads_a_local_vae(tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8,
                        sample_size=16, scaling_factor=0.5)
    vae.save_pretrained(tmp_path / "vae")
    codec = build_codec({"type": "autoencoder_kl", "path": str(tmp_path), "subfolder": "vae"})
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    latents = codec.encode(images)
    assert latents.shape == (2, 4, 8, 8) and codec.latent_channels == 4 and codec.downsample == 2
    assert torch.equal(latents, codec.encode(images))
    decoded = codec.decode(latents)
    assert decoded.shape == images.shape and decoded.min() >= 0 and decoded.max() <= 1
    with pytest.raises(FileNotFoundError, match="config.json"):
        build_codec({"type": "autoencoder_kl", "path": str(tmp_path / "nowhere")})


# -- training ----------------------------------------------------------------------------

def test_dropout_rates_follow_the_config():
    rates = {"text": 0.1, "text_and_image": 0.2, "image": 0.3}
    drop_text, drop_image = draw_condition_dropout(200_000, torch.Generator().manual_seed(0), rates)
    assert abs((drop_text & ~drop_image).float().mean() - 0.1) < 0.005
    assert abs((drop_text & drop_image).float().mean() - 0.2) < 0.005
    assert abs((~drop_text & drop_image).float().mean() - 0.3) < 0.005
    with pytest.raises(ValueError, match="sum"):
        draw_condition_dropout(4, torch.Generator(), {"text": 0.6, "text_and_image": 0.0, "image": 0.6})
    with pytest.raises(KeyError, match="txt"):
        draw_condition_dropout(4, torch.Generator(), {**rates, "txt": 0.1})
    with pytest.raises(KeyError, match=r"missing key\(s\) \['image'\]"):  # no default to fall back on
        draw_condition_dropout(4, torch.Generator(), {"text": 0.1, "text_and_image": 0.2})


def test_residual_target_round_trips():
    model = tiny_model(residual=True, residual_scale=3.0)
    clean, degraded = torch.randn(2, 48, 4, 4), torch.randn(2, 48, 4, 4)
    target = model.diffusion_target(clean, degraded)
    assert torch.allclose(target, 3.0 * (degraded - clean))
    assert torch.allclose(model.degraded_latents(target, clean), degraded, atol=1e-6)


def test_loss_is_deterministic_given_the_generator():
    model = tiny_model()
    data = batch()
    first = training_loss(model, *data, generator=torch.Generator().manual_seed(3), dropout=DROPOUT)
    second = training_loss(model, *data, generator=torch.Generator().manual_seed(3), dropout=DROPOUT)
    assert first.ndim == 0 and torch.equal(first, second)


@pytest.mark.parametrize("prediction", ["sample", "epsilon", "v_prediction"])
@pytest.mark.parametrize("gamma, floor", [(5.0, None), (None, 2.0), (5.0, 2.0)])
def test_snr_weights_are_the_same_weight_on_x0_for_every_prediction_type(prediction, gamma, floor):
    """SNR clamped to [floor, gamma] on the x0 error, whatever the network predicts."""
    scheduler = tiny_model().noise_scheduler()
    timesteps = torch.tensor([0, 10, 50, 99])
    snr = compute_snr(scheduler, timesteps)
    weights = snr_weights(scheduler, timesteps, prediction, gamma=gamma, floor=floor)
    # An x0 error e is an epsilon error e * sqrt(SNR) and a v error e * sqrt(SNR + 1).
    to_x0 = {"sample": 1.0, "epsilon": snr, "v_prediction": snr + 1}[prediction]
    expected = snr.clone()
    if gamma is not None:
        expected = torch.minimum(expected, torch.tensor(gamma))
    if floor is not None:
        expected = torch.maximum(expected, torch.tensor(floor))
    assert torch.allclose(weights * to_x0, expected)
    assert snr[0] > 5 and snr[-1] < 2  # both sides of each clamp are exercised


def test_snr_weighting_changes_the_loss_and_none_keeps_the_plain_mean():
    model = tiny_model(prediction_type="sample")
    data = batch()

    def loss(**weighting):
        return training_loss(model, *data, generator=torch.Generator().manual_seed(3), dropout=DROPOUT, **weighting)

    plain = loss()
    assert torch.equal(plain, loss(snr_gamma=None, snr_floor=None))
    assert not torch.allclose(plain, loss(snr_gamma=5.0)) and not torch.allclose(plain, loss(snr_floor=1.0))
    for bad, message in (({"snr_gamma": 0.0}, "snr_gamma"), ({"snr_floor": -1.0}, "snr_floor"),
                         ({"snr_gamma": 1.0, "snr_floor": 2.0}, "must not exceed")):
        with pytest.raises(ValueError, match=message):
            loss(**bad)


@pytest.mark.parametrize("route, prediction", [("cross_attention", "epsilon"), ("time_embedding", "v_prediction"),
                                               ("time_embedding", "sample")])
def test_a_few_training_steps_lower_the_loss(route, prediction):
    model = tiny_model(route=route, prediction_type=prediction)
    data = batch(8)
    optimizer = torch.optim.AdamW([{"params": model.main_parameters(), "lr": 2e-3},
                                   {"params": model.projection_parameters(), "lr": 2e-2}])
    losses = []
    for _ in range(30):  # the same noise, timesteps and dropout every step: a fixed objective
        loss = training_loss(model, *data, generator=torch.Generator().manual_seed(0), dropout=DROPOUT)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


# -- sampling ----------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["dpmsolver++", "euler_ancestral"])
def test_generate_is_deterministic_and_per_sample(sampler):
    model = tiny_model().eval()
    clean, _, ids, mu, sigma = batch(3)
    kwargs = {"num_steps": 4, "sampler": sampler}
    out = generate(model, clean, ids, mu, sigma, generators([7, 8, 9]), **kwargs)
    assert out.shape == clean.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, generate(model, clean, ids, mu, sigma, generators([7, 8, 9]), **kwargs))
    alone = generate(model, clean[1:2], ids[1:2], mu[1:2], sigma[1:2], generators([8]), **kwargs)
    assert torch.allclose(alone[0], out[1], atol=1e-4)
    other_seed = generate(model, clean[1:2], ids[1:2], mu[1:2], sigma[1:2], generators([99]), **kwargs)
    assert not torch.allclose(other_seed[0], out[1], atol=1e-3)


def test_epsilon_from_sample_inverts_the_forward_process():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 12, 4, 4, generator=g), torch.randn(2, 12, 4, 4, generator=g)
    alpha_bar = torch.tensor(0.3)
    noisy = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
    assert torch.allclose(epsilon_from_sample(x0, noisy, alpha_bar), eps, atol=1e-5)


@pytest.mark.parametrize("sampler", ["dpmsolver++", "euler_ancestral"])
def test_an_exact_x0_prediction_samples_the_target(sampler, monkeypatch):
    """With x0 prediction every sampler (Euler-ancestral has no native "sample" mode) must land
    on the degraded image when the network predicts the true residual at every step."""
    model = tiny_model(prediction_type="sample").eval()
    clean, degraded, ids, mu, sigma = batch(2)
    target = model.diffusion_target(model.codec.encode(clean), model.codec.encode(degraded))
    monkeypatch.setattr(model, "forward", lambda sample, *args, **kwargs: target.repeat(3, 1, 1, 1))
    out = generate(model, clean, ids, mu, sigma, generators([1, 2]), num_steps=6, sampler=sampler)
    assert torch.allclose(out, degraded, atol=2e-3)


def test_generate_needs_one_generator_per_sample():
    model = tiny_model()
    clean, _, ids, mu, sigma = batch(2)
    with pytest.raises(ValueError, match="one torch.Generator per sample"):
        generate(model, clean, ids, mu, sigma, generators([1]), num_steps=2)


def test_three_guidance_branches_are_one_batched_call(monkeypatch):
    model = tiny_model().eval()
    clean, _, ids, mu, sigma = batch(2)
    calls = []
    original = model.unet.forward

    def counting_forward(sample, *args, **kwargs):
        calls.append(sample.shape[0])
        return original(sample, *args, **kwargs)

    monkeypatch.setattr(model.unet, "forward", counting_forward)
    generate(model, clean, ids, mu, sigma, generators([1, 2]), num_steps=5)
    assert calls == [6] * 5
    assert model_evaluations_per_image(5, "dpmsolver++") == 15 == len(calls) * 6 // 2


# -- checkpoints -------------------------------------------------------------------------

def test_save_and_load_round_trip(tmp_path):
    model = tiny_model(route="cross_attention", intensity_encoding="onehot").eval()
    model.save_pretrained(tmp_path / "gendeg")
    assert sorted(p.name for p in (tmp_path / "gendeg").iterdir()) == ["config.json", "model.safetensors"]
    loaded = GenDegModel.from_pretrained(tmp_path / "gendeg").eval()
    assert loaded.config == model.config
    clean, _, ids, mu, sigma = batch(2)
    a = generate(model, clean, ids, mu, sigma, generators([1, 2]), num_steps=3)
    b = generate(loaded, clean, ids, mu, sigma, generators([1, 2]), num_steps=3)
    assert torch.equal(a, b)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        GenDegModel.from_pretrained(tmp_path)
    tiny_model().save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["route"] = "cross_attention"
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model.safetensors"):
        GenDegModel.from_pretrained(tmp_path / "ckpt")
