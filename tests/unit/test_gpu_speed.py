"""The paper-scale speed levers, on the CPU with the tiny random Stable Diffusion folder.

FLOP counting and the MFU study's code (benchmarks/gpu_mfu.py), the VAE latent cache
(same loss as encoding on the fly, invalidated by data and VAE), batch planning to a card's
memory, bf16 sampling and channels-last.  Timing is measured by the benchmark, never tested.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers.paper_gendeg import build_model, paper_gendeg_config, random_pairs
from helpers.studies import load_study

from gendeg.diffusion import GenDegModel, generate
from gendeg.diffusion.latent_cache import LatentCache, applies, cache_key
from helpers.random_sd import write_random_stable_diffusion
from gendeg.runtime.speed import AutocastForward, apply_unet_speedups, memory_model, plan_batch
from gendeg.runtime.training import TrainSettings, step_generator, train
from gendeg.stages.train_gendeg import gendeg_loss, gendeg_optimizer

ROOT = Path(__file__).resolve().parents[2]
gpu_mfu = load_study("gpu_mfu")

SIZE = 32


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory) -> Path:
    return write_random_stable_diffusion(tmp_path_factory.mktemp("sd") / "sd", "tiny")


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return random_pairs(6, SIZE, tmp_path_factory.mktemp("pairs"))


def paper_model(folder: Path) -> GenDegModel:
    return build_model(paper_gendeg_config(), folder, torch.device("cpu"))


def paper_train_cfg(batch_size: int = 3) -> dict:
    return {**paper_gendeg_config()["train"], "batch_size": batch_size, "crop": SIZE}


def test_the_benchmark_reads_the_paper_preset_as_the_pipeline_resolves_it():
    assert gpu_mfu.paper_gendeg_config() == paper_gendeg_config()


@pytest.mark.parametrize("name, tflops", [("NVIDIA H200", 989.4), ("NVIDIA H200 NVL", 835.5),
                                          ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.5),
                                          ("NVIDIA A100-SXM4-80GB", 312.0), ("CPU (x86_64)", None),
                                          ("NVIDIA GeForce GTX 1080", None)])
def test_peak_is_looked_up_by_device_name_and_never_guessed(name, tflops):
    peak = gpu_mfu.peak_bf16(name)
    assert peak["tflops"] == tflops
    assert peak["source"]


def test_flop_counter_counts_forward_and_the_backward_that_runs():
    """A linear layer on an input without gradient: 2*B*I*O forward, 2*B*I*O for the weight gradient."""
    layer = torch.nn.Linear(8, 5, bias=False)
    x = torch.randn(4, 8)
    flops = gpu_mfu.count_flops(layer, lambda net, step, generator: net(x).square().sum(), None)
    assert flops == 2 * (2 * 4 * 8 * 5)
    assert layer.weight.grad is None  # counting leaves no gradients behind


def test_model_flops_per_image_do_not_depend_on_the_batch_and_the_vae_adds_to_them(sd_folder, bank):
    model = paper_model(sd_folder)
    cache = LatentCache.build(bank, model.codec)

    def per_image(batch, latents):
        return gpu_mfu.count_flops(model, gendeg_loss(bank, paper_train_cfg(batch), SIZE, latents), None) / batch

    cached = per_image(2, cache)
    assert cached > 0 and cached == pytest.approx(per_image(4, cache), rel=1e-9)
    assert per_image(2, None) > cached  # encoding both images on the fly is extra work


def test_cached_latents_give_the_loss_of_encoding_on_the_fly(sd_folder, bank):
    model = paper_model(sd_folder)
    assert applies(model.codec, SIZE, SIZE) and not applies(model.codec, SIZE // 2, SIZE)
    cache = LatentCache.build(bank, model.codec)
    cfg = paper_train_cfg(4)
    for step in range(4):  # several steps: mirrored and plain pairs both drawn
        on_the_fly = gendeg_loss(bank, cfg, SIZE)(model, step, step_generator(0, step))
        cached = gendeg_loss(bank, cfg, SIZE, cache)(model, step, step_generator(0, step))
        assert float(cached) == pytest.approx(float(on_the_fly), rel=1e-5, abs=1e-7)


def test_training_from_cached_latents_is_the_same_run(sd_folder, bank):
    cfg = paper_train_cfg(3)
    runs = []
    for cache in (None, "cached"):
        model = paper_model(sd_folder)
        latents = LatentCache.build(bank, model.codec) if cache else None
        settings = TrainSettings(steps=3, seed=0, log_every=3, ema_decay=cfg["ema_decay"])
        runs.append(train(model, gendeg_optimizer(model, cfg), gendeg_loss(bank, cfg, SIZE, latents), settings).losses)
    assert runs[1] == pytest.approx(runs[0], rel=1e-4)


def test_the_latent_cache_is_kept_by_its_key_and_invalidated_by_data_and_vae(sd_folder, bank, tmp_path, monkeypatch):
    model = paper_model(sd_folder)
    first = LatentCache.build(bank, model.codec, folder=tmp_path)
    stem = f"latents-{first.key[:24]}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{stem}.bin", f"{stem}.json"]
    monkeypatch.setattr(model.codec, "encode", lambda images: pytest.fail("re-encoded a cached dataset"))
    again = LatentCache.build(bank, model.codec, folder=tmp_path)
    assert torch.equal(again.rows(range(len(bank))), first.rows(range(len(bank))))
    monkeypatch.undo()

    rewritten = Path(bank.frame["target_path"][0])
    rewritten.write_bytes(rewritten.read_bytes())  # same bytes, new modification time: encoded afresh
    assert cache_key(bank, model.codec, torch.device("cpu")) != first.key
    key = cache_key(bank, model.codec, torch.device("cpu"))
    with torch.no_grad():
        next(model.codec.vae.parameters()).view(-1)[0] += 1e-3
    assert cache_key(bank, model.codec, torch.device("cpu")) != key


def test_a_truncated_latent_cache_is_refused_by_name(sd_folder, bank, tmp_path):
    model = paper_model(sd_folder)
    cache = LatentCache.build(bank, model.codec, folder=tmp_path)
    with open(cache.path, "r+b") as handle:
        handle.truncate(cache.path.stat().st_size - 4)
    with pytest.raises(ValueError, match=cache.path.name):
        LatentCache.build(bank, model.codec, folder=tmp_path)


def test_train_gendeg_caches_latents_only_for_a_vae_and_whole_images(sd_folder, bank, tmp_path):
    from gendeg.stages.train_gendeg import cached_latents

    paper = paper_model(sd_folder)
    cache = cached_latents(paper, bank, paper_train_cfg(), SIZE, tmp_path / "checkpoint")
    assert isinstance(cache, LatentCache) and len(cache) == len(bank)
    assert (tmp_path / "checkpoint" / f"latents-{cache.key[:24]}.bin").is_file()  # a resumed job reuses it
    assert cached_latents(paper, bank, {**paper_train_cfg(), "crop": SIZE // 2}, SIZE, None) is None
    default = GenDegModel.from_config(yaml.safe_load((ROOT / "params.yaml").read_text())["gendeg"]["model"])
    assert cached_latents(default, bank, paper_train_cfg(), SIZE, None) is None  # pixel-unshuffle: nothing to save


def test_the_cache_draws_the_flips_the_pair_bank_draws(sd_folder, bank):
    """Same generator, same mirrored pairs: the cached latents are the latents of bank.batch's images."""
    model = paper_model(sd_folder)
    cache = LatentCache.build(bank, model.codec)
    indices = torch.arange(len(bank))
    clean, _ = cache.batch(indices, torch.Generator().manual_seed(3))
    images = bank.batch(indices, SIZE, torch.Generator().manual_seed(3))
    torch.testing.assert_close(clean, model.codec.encode(images.clean), rtol=1e-4, atol=1e-5)


def test_plan_batch_fills_memory_and_keeps_the_effective_batch():
    gib = 2**30
    plan = plan_batch(128, 80 * gib, fixed_bytes=20 * gib, bytes_per_sample=1 * gib)  # 48 fit: 32 divides 128
    assert (plan.micro_batch, plan.grad_accum) == (32, 4)
    assert plan.micro_batch * plan.grad_accum * plan.processes == 128
    assert plan_batch(128, 141 * gib, 20 * gib, 0.5 * gib).micro_batch == 128  # all of it in one step
    two = plan_batch(128, 80 * gib, 20 * gib, 1 * gib, processes=2)
    assert two.micro_batch * two.grad_accum == 64
    assert plan_batch(128, 141 * gib, 20 * gib, 0.5 * gib, max_micro_batch=48).micro_batch == 32
    with pytest.raises(ValueError, match="not even one sample fits"):
        plan_batch(128, 16 * gib, 20 * gib, 1 * gib)
    with pytest.raises(ValueError, match="not divisible"):
        plan_batch(128, 80 * gib, 20 * gib, 1 * gib, processes=3)


def test_memory_model_separates_fixed_and_per_sample_memory():
    fixed, per_sample = memory_model([(16, 20e9 + 16 * 0.6e9), (32, 20e9 + 32 * 0.6e9)])
    assert fixed == pytest.approx(20e9) and per_sample == pytest.approx(0.6e9)
    with pytest.raises(ValueError, match="two or more"):
        memory_model([(16, 30e9)])


def test_adamw_is_fused_only_when_asked_or_on_cuda(sd_folder):
    model = paper_model(sd_folder)
    cfg = paper_train_cfg()
    default = gendeg_optimizer(model, cfg)
    assert default.defaults["fused"] is (True if torch.cuda.is_available() else None)
    assert gendeg_optimizer(model, cfg, fused=True).defaults["fused"] is True


def test_bf16_sampling_and_channels_last_keep_the_samples(sd_folder):
    model = paper_model(sd_folder).eval()
    clean = torch.rand(2, 3, SIZE, SIZE)
    ids, mu, sigma = torch.tensor([0, 3]), torch.full((2,), 0.1), torch.full((2,), 0.08)

    def sample(net):
        generators = [torch.Generator().manual_seed(i) for i in range(2)]
        return generate(net, clean, ids, mu, sigma, generators, num_steps=3, text_guidance=7.5,
                        sampler="euler_ancestral", captions=["a street", "a house"])

    reference = sample(model)
    wrapped = AutocastForward(model)
    assert wrapped.codec is model.codec and wrapped.config is model.config
    assert (sample(wrapped) - reference).abs().max() < 0.1  # bf16 rounding of a random network, not another sample
    state = apply_unet_speedups(model, channels_last=True)
    assert state["attention"] == ["AttnProcessor2_0"]
    assert model.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(sample(model), reference, rtol=1e-4, atol=1e-4)


def test_a_non_finite_loss_names_its_step_although_losses_are_read_only_at_log_every(tmp_path):
    layer = torch.nn.Linear(2, 1)
    x = torch.ones(1, 2)

    def loss_fn(net, step, generator):
        value = net(x).square().mean()
        return value * float("nan") if step == 3 else value

    settings = TrainSettings(steps=10, seed=0, log_every=5, grad_accum=2)
    with pytest.raises(FloatingPointError, match="at step 3"):
        train(layer, torch.optim.SGD(layer.parameters(), lr=0.1), loss_fn, settings)


def test_the_benchmark_runs_on_a_cpu_and_reports_no_mfu(sd_folder, tmp_path):
    out = tmp_path / "mfu.json"
    gpu_mfu.main(["--architecture", "tiny", "--sd-folder", str(sd_folder), "--size", str(SIZE), "--pairs", "4",
                  "--micro-batch", "2", "--effective-batch", "4", "--steps", "1", "--precision", "no",
                  "--sample-size", str(SIZE), "--sample-batches", "2", "--sample-steps", "2", "2", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["device"].startswith("CPU") and report["peak"]["tflops"] is None
    assert report["threads"] == torch.get_num_threads() and report["source_sha256"]
    train_section = report["train"]
    assert train_section["flops_per_image"]["with_vae_encoding"] > train_section["flops_per_image"]["model_from_cached_latents"] > 0
    assert {"vae_on_the_fly", "cached_latents", "cached_latents_loss_read_every_step", "planned",
            "planned_channels_last"} <= set(train_section["variants"])
    for figures in train_section["variants"].values():
        assert figures["mfu"] is None and figures["model_tflops_per_s"] > 0 and figures["images_per_s"] > 0
    assert train_section["variants"]["planned"]["micro_batch"] * train_section["variants"]["planned"]["grad_accum"] == 4
    samples = report["sample"]["variants"]
    assert set(samples) == {"fp32_batch2", "bf16_batch2", "bf16_batch2_channels_last"}
    assert samples["bf16_batch2"]["euler_ancestral_2"]["vs_fp32_max_abs"] < 0.1
    counted = report["sample"]["flops"]
    assert min(counted.values()) > 0
    assert report["sample"]["flops_per_image"]["euler_ancestral_2"] == (2 * counted["per_step"] + counted["vae_encode"]
                                                                        + counted["vae_decode"])
    assert all(entry["mfu"] is None and entry["model_tflops_per_s"] > 0 for variant in samples.values()
               for entry in variant.values() if isinstance(entry, dict))
    assert all(entry["images_per_s"] > 0 for variant in samples.values() for key, entry in variant.items()
               if isinstance(entry, dict))
