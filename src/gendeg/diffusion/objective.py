"""The GenDeg training loss, with the paper's condition dropout for classifier-free guidance.

One statement per setting: the dropout rates are params.yaml's ``gendeg.train.dropout`` (every preset
sets all three, the schema requires them), so they have no default here and a missing one is an error
that names it; outside the pipeline take them from
``gendeg.pipeline.config.load_params()["gendeg"]["train"]["dropout"]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers.training_utils import compute_snr

from gendeg.diffusion.model import GenDegModel
from gendeg.runtime.speed import to_device

# The probabilities of dropping text+mu/sigma only, text+mu/sigma and the image, the image only (the
# paper's 5% each).  The training recipe (steps, learning rates, EMA, dropout) is read from params.yaml
# (`gendeg.train`) only; why the CPU default's values: docs/design.md.
DROPOUT_KEYS = ("text", "text_and_image", "image")


def draw_condition_dropout(
    batch_size: int, generator: torch.Generator, dropout: dict, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(drop_text, drop_image) boolean masks: the three cases are disjoint slices of one uniform draw.

    `dropout` holds the probability of each of DROPOUT_KEYS (gendeg.train.dropout)."""
    unknown = sorted(set(dropout) - set(DROPOUT_KEYS))
    if unknown:
        raise KeyError(f"unknown dropout keys {unknown}; known: {list(DROPOUT_KEYS)}")
    missing = [key for key in DROPOUT_KEYS if key not in dropout]
    if missing:
        raise KeyError(f"dropout: missing key(s) {missing} (no default: params.yaml states them under "
                       f"gendeg.train.dropout)")
    p_text, p_both, p_image = (float(dropout[k]) for k in DROPOUT_KEYS)
    if min(p_text, p_both, p_image) < 0 or p_text + p_both + p_image > 1:
        raise ValueError(f"dropout probabilities must be >= 0 and sum to <= 1, got {dropout}")
    u = to_device(torch.rand(batch_size, generator=generator, device=generator.device), device)
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
    dropout: dict,
    captions: Sequence[object] | None = None,
    snr_gamma: float | None = None,
    snr_floor: float | None = None,
) -> torch.Tensor:
    """Mean-squared diffusion loss for a batch of (clean, degraded) pairs, Bx3xHxW in [0, 1].

    `captions` (one per pair; None or blank for none) make the CLIP prompt
    "<caption>, <degradation phrase>"; the learned-token preset ignores them.
    Every random draw (dropout, timesteps, noise) comes from `generator`, so a run with the
    same seed and data is the same run.  `snr_gamma` / `snr_floor` weight each sample's loss
    (`snr_weights`); both None keep the plain mean.  `model` may come wrapped by accelerate
    (DDP on several GPUs): its forward goes through the wrapper (gradient sync), the rest
    through the GenDegModel inside.
    """
    if clean.shape != degraded.shape:
        raise ValueError(f"clean {tuple(clean.shape)} and degraded {tuple(degraded.shape)} differ in shape")
    core: GenDegModel = getattr(model, "module", model)
    with torch.no_grad():
        clean_latents, degraded_latents = core.codec.encode(clean), core.codec.encode(degraded)
    return latent_training_loss(model, clean_latents, degraded_latents, degradation_ids, mu, sigma, generator, dropout,
                                captions, snr_gamma, snr_floor)


def latent_training_loss(
    model: GenDegModel,
    clean_latents: torch.Tensor,
    degraded_latents: torch.Tensor,
    degradation_ids: torch.Tensor,
    mu: torch.Tensor,
    sigma: torch.Tensor,
    generator: torch.Generator,
    dropout: dict,
    captions: Sequence[object] | None = None,
    snr_gamma: float | None = None,
    snr_floor: float | None = None,
) -> torch.Tensor:
    """`training_loss` from the codec's latents of the pair (gendeg.diffusion.latent_cache): the same
    random draws in the same order, so cached and on-the-fly training are the same run."""
    core: GenDegModel = getattr(model, "module", model)
    batch = clean_latents.shape[0]
    device = clean_latents.device
    with torch.no_grad():
        x0 = core.diffusion_target(clean_latents, degraded_latents)
    scheduler = core.noise_scheduler()
    host_text, host_image = draw_condition_dropout(batch, generator, dropout, "cpu")
    drop_text, drop_image = to_device(host_text, device), to_device(host_image, device)
    tokens = None
    if core.prompt_encoder is not None and degradation_ids.device.type == "cpu":
        tokens = core.text_tokens(degradation_ids, host_text, captions)  # prompts from host values: no read-back
    degradation_ids = to_device(degradation_ids, device)
    timesteps = to_device(torch.randint(
        0, scheduler.config.num_train_timesteps, (batch,), generator=generator, device=generator.device
    ), device)
    noise = to_device(torch.randn(x0.shape, generator=generator, device=generator.device), device)
    scheduler.alphas_cumprod = to_device(scheduler.alphas_cumprod, device)  # add_noise would copy it (a sync)
    noisy = scheduler.add_noise(x0, noise, timesteps)
    kind = core.config["prediction_type"]
    target = {"epsilon": noise, "sample": x0}.get(kind)
    if target is None:
        target = scheduler.get_velocity(x0, noise, timesteps)
    prediction = model(noisy, timesteps, clean_latents, degradation_ids, mu, sigma, drop_text, drop_image,
                       tokens=tokens, captions=captions)
    if snr_gamma is None and snr_floor is None:
        return F.mse_loss(prediction.float(), target.float())
    weights = snr_weights(scheduler, timesteps, kind, gamma=snr_gamma, floor=snr_floor)
    return (weights * per_sample_mse(prediction, target)).mean()


def per_sample_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(prediction.float(), target.float(), reduction="none").flatten(1).mean(1)


def snr_weights(scheduler, timesteps: torch.Tensor, prediction_type: str, gamma: float | None = None,
                floor: float | None = None) -> torch.Tensor:
    """Per-sample loss weights equal to SNR clamped to [floor, gamma] on the x0 error.

    gamma alone is Min-SNR (Hang et al. 2023), floor alone truncated SNR (Salimans & Ho
    2022).  A plain x0 loss weighs every noise level the same, so its gradient is dominated
    by the high-noise steps, whose best answer is a blur; a weight above 1 where SNR > 1
    moves effort to the steps where fine structure (blur, streaks) takes shape.  Expressed
    for the prediction type: an x0 error e is an epsilon error e * sqrt(SNR) and a v error
    e * sqrt(SNR + 1), so the weight is divided by SNR or SNR + 1.
    """
    for name, value in (("snr_gamma", gamma), ("snr_floor", floor)):
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    if gamma is not None and floor is not None and floor > gamma:
        raise ValueError(f"snr_floor ({floor}) must not exceed snr_gamma ({gamma})")
    snr = compute_snr(scheduler, timesteps)
    on_x0 = torch.clamp(snr, min=floor, max=gamma)
    return {"sample": on_x0, "epsilon": on_x0 / snr, "v_prediction": on_x0 / (snr + 1)}[prediction_type]
