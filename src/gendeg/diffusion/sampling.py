"""Sampling GenDeg with the paper's dual classifier-free guidance.

eps = e(0,0) + sT [e(img,txt) - e(img,0)] + sI [e(img,0) - e(0,0)]; the three branches
go through the UNet as one batch of 3B.  Each sample owns a torch.Generator (initial
noise and, for Euler-ancestral, the per-step noise), so one sample can be regenerated
from its seed alone, whatever batch it was first made in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler
from diffusers.utils.torch_utils import randn_tensor

from gendeg.diffusion.model import GenDegModel
from gendeg.runtime.devices import model_device

SAMPLERS = ("dpmsolver++", "euler_ancestral")

# Sampler settings come from params.yaml (`synthesis`, `gendeg.preview`, `structure_correction.sampling`);
# why the CPU default samples with 10 DPM-Solver++ steps: docs/design.md.
GUIDANCE_BRANCHES = 3


def build_sampler(model: GenDegModel, sampler: str):
    """A fresh sampler on the model's noise schedule.  "trailing" spacing makes the first
    step start from t = T-1 (pure noise), which is what the initial latents are; the
    training schedule's "leading" spacing would start at 900 of 1000 with 10 steps."""
    config = model.noise_scheduler().config
    if config.prediction_type == "sample":  # the guided x0 is handed to the sampler as epsilon (`epsilon_from_sample`)
        config = {**config, "prediction_type": "epsilon"}
    if sampler == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing"
        )
    if sampler == "euler_ancestral":
        return EulerAncestralDiscreteScheduler.from_config(config, timestep_spacing="trailing")
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")


def epsilon_from_sample(x0: torch.Tensor, model_input: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """The noise implied by an x0 prediction at the DDPM-scaled input x_t = sqrt(ab) x0 + sqrt(1-ab) eps.

    Lets an x0-predicting model ("sample") drive every sampler, Euler-ancestral included,
    which diffusers implements for epsilon and v only."""
    return (model_input - alpha_bar.sqrt() * x0) / (1.0 - alpha_bar).sqrt()


def model_evaluations_per_image(num_steps: int, sampler: str = "dpmsolver++") -> int:
    """UNet evaluations one image costs: both samplers take one per step, times three guidance branches."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    return GUIDANCE_BRANCHES * int(num_steps)


@torch.no_grad()
def generate(
    model: GenDegModel,
    clean: torch.Tensor,
    degradation_ids: torch.Tensor,
    mu: torch.Tensor,
    sigma: torch.Tensor,
    generators: list[torch.Generator],
    num_steps: int = 20,
    image_guidance: float = 1.5,
    text_guidance: float = 7.5,
    sampler: str = "dpmsolver++",
    captions: Sequence[object] | None = None,
) -> torch.Tensor:
    """Degraded versions (Bx3xHxW in [0, 1]) of `clean` (Bx3xHxW in [0, 1]) at the requested (mu, sigma).

    `captions` (one per image; None or blank for none) complete the CLIP prompt
    "<caption>, <degradation phrase>"; the prompts are encoded once, not at every step.
    Runs on the model's device; the images come back on `clean`'s.
    """
    batch = clean.shape[0]
    if len(generators) != batch:
        raise ValueError(f"generate needs one torch.Generator per sample: {batch} images, {len(generators)} generators")
    device, output_device = model_device(model), clean.device
    clean = clean.to(device)
    scheduler = build_sampler(model, sampler)
    scheduler.set_timesteps(num_steps, device=device)
    clean_latents = model.codec.encode(clean)
    latents = randn_tensor(clean_latents.shape, generator=generators, device=device, dtype=clean_latents.dtype)
    latents = latents * scheduler.init_noise_sigma

    # Branch order: (img, txt), (img, 0), (0, 0).
    false, true = torch.zeros(batch, dtype=torch.bool, device=device), torch.ones(batch, dtype=torch.bool, device=device)
    drop_text = torch.cat([false, true, true])
    drop_image = torch.cat([false, false, true])
    image_latents = clean_latents.repeat(3, 1, 1, 1)
    ids, mus, sigmas = degradation_ids.to(device).repeat(3), mu.to(device).float().repeat(3), sigma.to(device).float().repeat(3)
    tokens = model.text_tokens(ids, drop_text, None if captions is None else list(captions) * 3)

    predicts_sample = model.config["prediction_type"] == "sample"
    alphas_cumprod = scheduler.alphas_cumprod.to(device)  # the training schedule's, built from the same betas
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents.repeat(3, 1, 1, 1), t)
        timesteps = t.expand(3 * batch).to(device)
        full, image_only, unconditional = model(
            model_input, timesteps, image_latents, ids, mus, sigmas, drop_text, drop_image, tokens=tokens
        ).chunk(3)
        guided = unconditional + text_guidance * (full - image_only) + image_guidance * (image_only - unconditional)
        if predicts_sample:
            guided = epsilon_from_sample(guided, model_input[:batch], alphas_cumprod[int(t)])
        latents = scheduler.step(guided, t, latents, generator=generators).prev_sample
    return model.codec.decode(model.degraded_latents(latents, clean_latents)).to(output_device)
