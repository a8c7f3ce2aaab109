"""Stage `train_gendeg`: train the degradation-synthesis diffusion model on the existing pairs.

Output folder (atomic): model.safetensors + config.json (GenDegModel.save_pretrained),
train_summary.json (loss curve summary), preview.png (one clean image per row, each
degradation at a low and a high requested intensity).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gendeg import DEGRADATIONS
from gendeg.data.images import to_array, write_png
from gendeg.data.manifest import read_manifest
from gendeg.data.pairs import PairBank
from gendeg.diffusion import GenDegModel, generate, training_loss
from gendeg.diffusion.latent_cache import LatentCache, applies
from gendeg.diffusion.objective import latent_training_loss
from gendeg.diffusion.text import prompt_captions
from gendeg.pipeline import tracking
from gendeg.runtime.atomic import atomic_dir, write_json
from gendeg.runtime.devices import model_device
from gendeg.runtime.progress import progress
from gendeg.runtime.speed import to_device
from gendeg.runtime.training import (
    LossFn,
    clear_checkpoint,
    loss_summary,
    run_fingerprint,
    settings_from_config,
    step_generator,
    train,
)


def captions_of(bank: PairBank, indices: torch.Tensor) -> list[str]:
    """Scene captions for the prompt "<caption>, <phrase>" (used by the CLIP text encoder only)."""
    return prompt_captions(bank.frame.iloc[indices.tolist()])  # with each dataset's own phrase (data.user phrase:)


def preview(model: GenDegModel, bank: PairBank, seed: int, sampling: dict, count: int = 3) -> np.ndarray:
    """A grid: rows = clean images; columns = clean, then each degradation at low / high mu."""
    picks = torch.linspace(0, len(bank) - 1, count).long()
    clean = bank.tensors(picks)[1]
    levels = [(0.06, 0.05), (0.18, 0.12)]
    columns = [clean]
    for index, _ in enumerate(DEGRADATIONS):
        for mu, sigma in levels:
            ids = torch.full((count,), index, dtype=torch.long)
            generators = [step_generator(seed, 10_000 + i) for i in range(count)]
            columns.append(generate(model, clean, ids, torch.full((count,), mu), torch.full((count,), sigma),
                                    generators, num_steps=sampling["steps"], image_guidance=sampling["image_guidance"],
                                    text_guidance=sampling["text_guidance"], sampler=sampling["sampler"],
                                    captions=captions_of(bank, picks)))
    rows = [np.concatenate([to_array(column[r]) for column in columns], axis=1) for r in range(count)]
    return np.concatenate(rows, axis=0)


def gendeg_optimizer(model: GenDegModel, train_cfg: dict, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW with the paper's two learning rates: the intensity projections train at `projection_lr`.

    `fused` (None: on CUDA) updates all tensors in one kernel; the CPU keeps PyTorch's default
    update, which its recorded results were made with."""
    fused = torch.cuda.is_available() if fused is None else fused
    groups = [
        {"params": list(model.main_parameters()), "lr": train_cfg["lr"]},
        {"params": list(model.projection_parameters()), "lr": train_cfg["projection_lr"]},
    ]
    return torch.optim.AdamW(groups, weight_decay=train_cfg["weight_decay"], fused=True if fused else None)


def gendeg_loss(bank: PairBank, train_cfg: dict, image_size: int, latents: LatentCache | None = None) -> LossFn:
    """GenDeg's diffusion loss on a batch drawn on the CPU (balanced, cropped, flipped) and moved to the model;
    with `latents`, the batch's latents come from the cache (the same draws, no VAE encoding)."""
    def loss_fn(net, step: int, generator: torch.Generator) -> torch.Tensor:
        indices = bank.sample_indices(train_cfg["batch_size"], generator, train_cfg["balance"])
        if latents is not None:
            device = model_device(net)
            clean, degraded = (to_device(x, device) for x in latents.batch(indices, generator))
            return latent_training_loss(net, clean, degraded, bank.degradation[indices],  # on the host: prompts
                                        to_device(bank.mu[indices], device), to_device(bank.sigma[indices], device),
                                        generator, train_cfg["dropout"], captions=captions_of(bank, indices),
                                        snr_gamma=train_cfg["snr_gamma"], snr_floor=train_cfg["snr_floor"])
        batch = bank.batch(indices, train_cfg.get("crop", image_size), generator).to(model_device(net))
        return training_loss(net, batch.clean, batch.degraded, batch.degradation, batch.mu, batch.sigma,
                             generator, train_cfg["dropout"], captions=captions_of(bank, indices),
                             snr_gamma=train_cfg["snr_gamma"], snr_floor=train_cfg["snr_floor"])
    return loss_fn


def cached_latents(model: GenDegModel, bank: PairBank, train_cfg: dict, image_size: int,
                   checkpoint_dir: Path | None) -> LatentCache | None:
    """The pairs' VAE latents, encoded once (kept with the checkpoint, so a resumed job reuses them),
    when the codec is a VAE and batches are whole images; None otherwise (the CPU default)."""
    if not applies(model.codec, train_cfg.get("crop", image_size), image_size):
        return None
    from accelerate import PartialState  # the device this process trains on (one per process under accelerate launch)

    device = PartialState(cpu=not torch.cuda.is_available()).device
    return LatentCache.build(bank, model.codec, device, folder=checkpoint_dir, progress=progress)


def train_gendeg(config: dict, prepared_dir: Path, out_dir: Path, checkpoint_dir: Path | None) -> dict:
    cfg = config["gendeg"]
    train_cfg = cfg["train"]
    torch.manual_seed(config["seed"])  # model initialisation
    model = GenDegModel.from_config(cfg["model"])
    bank = PairBank(read_manifest(Path(prepared_dir) / "train.csv"), size=cfg["image_size"], description="loading pairs")
    optimizer = gendeg_optimizer(model, train_cfg)
    loss_fn = gendeg_loss(bank, train_cfg, cfg["image_size"], cached_latents(model, bank, train_cfg, cfg["image_size"],
                                                                             checkpoint_dir))
    with tracking.job_run("train_gendeg", "train_gendeg", config) as run:
        run.log_params({"model.parameters": sum(p.numel() for p in model.parameters()), "train.pairs": len(bank)})
        settings = settings_from_config(train_cfg, config["seed"], checkpoint_dir, "train GenDeg",
                                        run_fingerprint(config, Path(prepared_dir) / "train.csv"))
        # The trained state is checkpointed before the preview (100 sampling steps at the paper's
        # settings): if the preview fails, the rerun resumes after the last step, not from scratch.
        settings.checkpoint_final = True
        result = train(model, optimizer, loss_fn, settings, tracker=run)
        if not result.main_process:  # multi-process job: the main process writes the outputs
            return {}
        summary = {"steps": train_cfg["steps"], "pairs": len(bank), "image_size": cfg["image_size"],
                   **loss_summary(result.losses)}
        run.log_metrics({k: v for k, v in summary.items() if k.startswith("loss")})
        with torch.no_grad():
            grid = preview(model, bank, config["seed"], cfg["preview"])
        with atomic_dir(out_dir) as tmp:
            model.save_pretrained(tmp)
            write_json(summary, tmp / "train_summary.json")
            write_png(grid, tmp / "preview.png")
        run.log_image(grid, "preview.png")
    clear_checkpoint(checkpoint_dir)
    return summary
