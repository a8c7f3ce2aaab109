"""The GenDeg training loss, with the paper's condition dropout for classifier-free guidance."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gendeg.diffusion.model import GenDegModel

# Paper: 5% drop text+mu/sigma, 5% drop text+mu/sigma and the image, 5% drop the image only.
DEFAULT_DROPOUT = {"text": 0.05, "text_and_image": 0.05, "image": 0.05}


def draw_condition_dropout(
    batch_size: int, generator: torch.Generator, dropout: dict | None = None, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(drop_text, drop_image) boolean masks: the three cases are disjoint slices of one uniform draw."""
    rates = {**DEFAULT_DROPOUT, **(dropout or {})}
    unknown = set(rates) - set(DEFAULT_DROPOUT)
    if unknown:
        raise KeyError(f"unknown dropout keys {sorted(unknown)}; known: {sorted(DEFAULT_DROPOUT)}")
    p_text, p_both, p_image = (float(rates[k]) for k in ("text", "text_and_image", "image"))
    if min(p_text, p_both, p_image) < 0 or p_text + p_both + p_image > 1:
        raise ValueError(f"dropout probabilities must be >= 0 and sum to <= 1, got {rates}")
    u = torch.rand(batch_size, generator=generator, device=generator.device).to(device)
    drop_text = u < p_text + p_both
    drop_image = (u >= p_text) & (u < p_text + p_both + p_image)
    return drop_text, drop_image


def training_loss(
    model: GenDegModel,
    clean: torch.Tensor,
    degraded: torch.Tensor,
    degradation_ids: torch.Tensor,
    mu: torch.Tensor,
    sigma: torch.Tensor,
    generator: torch.Generator,
    dropout: dict | None = None,
) -> torch.Tensor:
    """Mean-squared diffusion loss for a batch of (clean, degraded) pairs, Bx3xHxW in [0, 1].

    Every random draw (dropout, timesteps, noise) comes from `generator`, so a run with the
    same seed and data is the same run.
    """
    if clean.shape != degraded.shape:
        raise ValueError(f"clean {tuple(clean.shape)} and degraded {tuple(degraded.shape)} differ in shape")
    batch = clean.shape[0]
    device = clean.device
    with torch.no_grad():
        clean_latents = model.codec.encode(clean)
        x0 = model.diffusion_target(clean_latents, model.codec.encode(degraded))
    scheduler = model.noise_scheduler()
    drop_text, drop_image = draw_condition_dropout(batch, generator, dropout, device)
    timesteps = torch.randint(
        0, scheduler.config.num_train_timesteps, (batch,), generator=generator, device=generator.device
    ).to(device)
    noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(device)
    noisy = scheduler.add_noise(x0, noise, timesteps)
    target = noise if model.config["prediction_type"] == "epsilon" else scheduler.get_velocity(x0, noise, timesteps)
    prediction = model(noisy, timesteps, clean_latents, degradation_ids, mu, sigma, drop_text, drop_image)
    return F.mse_loss(prediction.float(), target.float())
