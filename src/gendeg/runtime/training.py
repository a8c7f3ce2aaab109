"""One training loop for every model of the pipeline (GenDeg, restorers, structure correction).

Written out plainly in the style of diffusers' example scripts: accelerate for devices,
mixed precision and gradient accumulation; optional EMA; a progress bar; metric curves to
MLflow; periodic checkpoints.  Every random draw of step k comes from a generator seeded by
(seed, k), so a job killed after checkpoint k and resumed produces the same bytes as a job
that never stopped.  Launched on several processes (``accelerate launch``), process r draws
from (seed, k, r): each sees its own batches, DDP averages the gradients, and only the main
process checkpoints (`gendeg.runtime.distributed`).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

from gendeg.runtime.atomic import atomic_dir
from gendeg.runtime.progress import progress

LossFn = Callable[[torch.nn.Module, int, torch.Generator], torch.Tensor]


@dataclass
class TrainSettings:
    steps: int
    seed: int
    checkpoint_dir: Path | None = None
    checkpoint_every: int = 100
    log_every: int = 10
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0  # null: no clipping (the released GenDeg code does not clip)
    ema_decay: float | None = None
    ema_scope: str = "all"  # "all" trainable parameters, or "unet": model.unet's only (the released GenDeg's LitEma)
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    mixed_precision: str = "no"
    description: str = "train"
    fingerprint: str = ""  # what the run is made of; a checkpoint of another run is never resumed
    # Also checkpoint after the last step: a job that fails after training (GenDeg's preview)
    # resumes at the end instead of losing the model.
    checkpoint_final: bool = False


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0
    main_process: bool = True  # False on the other processes of a multi-process job: they write nothing


def run_fingerprint(config: dict, *inputs: str | Path) -> str:
    """Hash of a job's configuration and inputs (files by content, folders by name/size/mtime)."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for item in map(Path, inputs):
        if item.is_file():
            digest.update(item.read_bytes())
        elif item.is_dir():
            for path in sorted(p for p in item.rglob("*") if p.is_file()):
                stat = path.stat()
                digest.update(f"{path.relative_to(item)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        else:
            digest.update(str(item).encode())
    return digest.hexdigest()


def step_generator(seed: int, step: int, device: str | torch.device = "cpu", process: int = 0) -> torch.Generator:
    """The generator for step `step` (of process `process`): independent of what ran before, so
    resume is exact; process 0 draws what a single-process run draws."""
    key = f"{seed}:{step}" if process == 0 else f"{seed}:{step}:{process}"
    digest = hashlib.sha256(key.encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _frozen(model) -> tuple[str, ...]:
    """State-dict prefixes of frozen pretrained parts (SD's VAE and CLIP): reloaded, never checkpointed."""
    return tuple(getattr(model, "FROZEN_PREFIXES", ()))


def save_checkpoint(directory: Path, model, optimizer, ema: EMAModel | None, step: int, losses: list[float],
                    fingerprint: str = "") -> None:
    """safetensors + JSON only (never pickle), written atomically."""
    frozen = _frozen(model)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()
               if not (frozen and k.startswith(frozen))}
    optimizer_tensors, optimizer_meta = _optimizer_tensors(optimizer)
    tensors.update(optimizer_tensors)
    if ema is not None:
        tensors.update({f"ema.{i}": p.detach().cpu().contiguous() for i, p in enumerate(ema.shadow_params)})
    meta = {"step": step, "losses": losses, "optimizer": optimizer_meta, "fingerprint": fingerprint,
            "ema_optimization_step": ema.optimization_step if ema is not None else None}
    with atomic_dir(directory) as tmp:
        save_file(tensors, tmp / "state.safetensors")
        (tmp / "state.json").write_text(json.dumps(meta))


def set_aside_if_unreadable(directory: Path, description: str) -> Path | None:
    """A checkpoint that cannot be read (a truncated safetensors file: "incomplete metadata", or bad JSON)
    failed every retry.  Rename it to <name>.corrupt (kept for inspection, never resumed) and say so;
    only the last checkpoint is kept, so training starts over.  Returns where it went, or None if readable."""
    from safetensors import safe_open

    try:
        json.loads((directory / "state.json").read_text())
        with safe_open(str(directory / "state.safetensors"), "pt") as tensors:
            tensors.keys()
    except Exception as error:  # noqa: BLE001 - any reader error: safetensors raises its own type
        aside = directory.with_name(directory.name + ".corrupt")
        shutil.rmtree(aside, ignore_errors=True)
        directory.rename(aside)
        print(f"{description}: checkpoint {directory} cannot be read ({type(error).__name__}: {error}); set aside as "
              f"{aside}; no earlier checkpoint is kept, so training starts over from step 0", file=sys.stderr)
        return aside
    return None


def load_checkpoint(directory: Path, model, optimizer, ema: EMAModel | None) -> tuple[int, list[float]]:
    tensors = load_file(directory / "state.safetensors")
    meta = json.loads((directory / "state.json").read_text())
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    frozen = _frozen(model)
    if unexpected or [k for k in missing if not (frozen and k.startswith(frozen))]:
        raise ValueError(f"checkpoint {directory} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    _restore_optimizer(optimizer, tensors, meta["optimizer"])
    if ema is not None:
        for i, shadow in enumerate(ema.shadow_params):
            shadow.data.copy_(tensors[f"ema.{i}"])
        ema.optimization_step = meta["ema_optimization_step"]
    return meta["step"], meta["losses"]


def train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, settings: TrainSettings,
          tracker=None, on_checkpoint: Callable[[int], None] | None = None) -> TrainResult:
    """Run `settings.steps` optimisation steps of `loss_fn`, resuming from a checkpoint if present.

    `loss_fn(model, step, generator)` draws its batch and noise from `generator`.  After the
    call the model holds the EMA weights when EMA is on (what the pipeline ships).
    """
    accelerator = Accelerator(mixed_precision=settings.mixed_precision, gradient_accumulation_steps=settings.grad_accum,
                              cpu=not torch.cuda.is_available())
    averaged = ema_parameters(model, settings.ema_scope)
    # One fused update over all tensors on a GPU (SD v1.5 on an H200: 3.7 -> 4.3 steps/s); per tensor
    # on the CPU, whose recorded figures it produced (the fused update differs in the last bit).
    foreach = accelerator.device.type == "cuda"
    ema = EMAModel(averaged, decay=settings.ema_decay, foreach=foreach) if settings.ema_decay else None
    scheduler = get_scheduler(settings.lr_schedule, optimizer, num_warmup_steps=settings.warmup_steps,
                              num_training_steps=settings.steps)
    result = TrainResult()
    checkpoint = settings.checkpoint_dir / "last" if settings.checkpoint_dir else None
    if checkpoint is not None and (checkpoint / "state.json").exists():
        set_aside_if_unreadable(checkpoint, settings.description)
    if checkpoint is not None and (checkpoint / "state.json").exists():
        if json.loads((checkpoint / "state.json").read_text()).get("fingerprint") != settings.fingerprint:
            print(f"{settings.description}: checkpoint {checkpoint} belongs to another configuration; starting afresh")
            shutil.rmtree(checkpoint)
    if checkpoint is not None and (checkpoint / "state.json").exists():
        result.resumed_from, result.losses = load_checkpoint(checkpoint, model, optimizer, ema)
        # Said in the log and MLflow, never in an output file: a resumed job writes the same bytes.
        print(f"{settings.description}: resumed from step {result.resumed_from} ({checkpoint})", file=sys.stderr)
        if tracker is not None:
            tracker.set_tags({"gendeg.resumed_from": str(result.resumed_from)})
        with warnings.catch_warnings():  # fast-forwarding the schedule, not training
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(result.resumed_from):
                scheduler.step()
    model, optimizer = accelerator.prepare(model, optimizer)
    if ema is not None:
        ema.to(accelerator.device)
    model.train()
    # The step's losses stay on the device until they are read (log_every, a checkpoint, the
    # end): reading one is a host-device synchronisation, which every step would otherwise pay.
    pending: list[torch.Tensor] = []
    bar = progress(range(result.resumed_from, settings.steps), desc=settings.description, initial=result.resumed_from,
                    total=settings.steps)
    for step in bar:
        for micro in range(settings.grad_accum):
            generator = step_generator(settings.seed, step * settings.grad_accum + micro,
                                       process=accelerator.process_index)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss = loss_fn(model, step, generator)
                accelerator.backward(loss)
                if accelerator.sync_gradients and settings.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            pending.append(loss.detach())
        scheduler.step()
        if ema is not None:  # once per optimiser step, after the grad_accum micro-batches
            ema.step(averaged)
        checkpoint_due = checkpoint is not None and (step + 1) % settings.checkpoint_every == 0
        if (step + 1) % settings.log_every == 0 or step + 1 == settings.steps or checkpoint_due:
            result.losses.extend(read_losses(pending, step, settings))  # raises on a non-finite loss
            pending.clear()
        if (step + 1) % settings.log_every == 0 or step + 1 == settings.steps:
            recent = result.losses[-settings.log_every:]
            mean = sum(recent) / len(recent)
            bar.set_postfix(loss=f"{mean:.4f}")
            if tracker is not None:
                tracker.log_metrics({"loss": mean, "lr": scheduler.get_last_lr()[0]}, step=step + 1)
        last = step + 1 == settings.steps
        if checkpoint is not None and (((step + 1) % settings.checkpoint_every == 0 and not last)
                                       or (last and settings.checkpoint_final)):
            if accelerator.is_main_process:
                save_checkpoint(checkpoint, accelerator.unwrap_model(model), optimizer, ema, step + 1, result.losses,
                                settings.fingerprint)
                if on_checkpoint is not None:
                    on_checkpoint(step + 1)
            accelerator.wait_for_everyone()
    bar.close()
    accelerator.wait_for_everyone()
    result.main_process = accelerator.is_main_process
    model = accelerator.unwrap_model(model)
    if ema is not None:
        ema.copy_to(averaged)
    model.eval()
    return result


EMA_SCOPES = ("all", "unet")


def ema_parameters(model: torch.nn.Module, scope: str) -> list[torch.nn.Parameter]:
    """The parameters EMA averages: every trainable one ("all"), or those of `model.unet` ("unet": the
    released GenDeg averages its UNet only, not the intensity projections)."""
    if scope not in EMA_SCOPES:
        raise ValueError(f"train.ema_scope must be one of {EMA_SCOPES}, got {scope!r}")
    if scope == "unet":
        if not isinstance(getattr(model, "unet", None), torch.nn.Module):
            raise ValueError(f"train.ema_scope 'unet': {type(model).__name__} has no `unet` to average")
        model = model.unet
    return [p for p in model.parameters() if p.requires_grad]  # frozen codecs / text encoders stay out


def read_losses(pending: list[torch.Tensor], last_step: int, settings: TrainSettings) -> list[float]:
    """Per-step mean losses of the micro-batch losses in `pending` (steps ending at `last_step`),
    read back in one transfer; a non-finite one names its step."""
    values = torch.stack([loss.float() for loss in pending]).tolist()
    first_step = last_step + 1 - len(values) // settings.grad_accum
    for index, value in enumerate(values):
        if not math.isfinite(value):
            raise FloatingPointError(f"{settings.description}: loss is {value} at step "
                                     f"{first_step + index // settings.grad_accum}")
    return [sum(values[i:i + settings.grad_accum]) / settings.grad_accum for i in range(0, len(values), settings.grad_accum)]


def settings_from_config(train_cfg: dict, seed: int, checkpoint_dir: Path | None, description: str,
                         fingerprint: str = "") -> TrainSettings:
    """TrainSettings from a `train:` section of params.yaml (keys as in TrainSettings)."""
    known = {k: train_cfg[k] for k in TrainSettings.__dataclass_fields__ if k in train_cfg}
    return TrainSettings(seed=seed, checkpoint_dir=checkpoint_dir, description=description, fingerprint=fingerprint,
                         **{k: v for k, v in known.items() if k not in {"seed", "checkpoint_dir", "description"}})


def clear_checkpoint(checkpoint_dir: Path | None) -> None:
    """Called once the stage's output is safely written: the checkpoint has served."""
    if checkpoint_dir is not None and Path(checkpoint_dir).exists():
        shutil.rmtree(checkpoint_dir)


def loss_summary(losses: list[float], fraction: float = 0.1) -> dict[str, float]:
    """First and last tenth of the loss curve: the figure 'training lowered the loss' rests on."""
    if not losses:
        return {}
    count = max(1, math.ceil(len(losses) * fraction))
    return {"loss_first": sum(losses[:count]) / count, "loss_last": sum(losses[-count:]) / count}
