"""Stage `structure_correction`: the paper's structure-correction network S, trained on its own.

Why: the latent codec and the few-step sampler distort scene structure (edges move, texture
smears), so a generated "degraded" image can disagree with its clean image in more than the
degradation.  S is a NAFNet that reads [clean, generated] (6 channels) and predicts a
residual added to the generated image; the synthesis stage applies it to every generated
chunk of the degradations it covers.

Training recipe (the paper did not release one; this is ours):
  1. freeze GenDeg (eval mode, no gradients);
  2. take the real training pairs (prepared/train.csv) of the degradations S covers
     (default haze, motion_blur, raindrop - the released code meant these three, but a typo
     disabled raindrop; we do not copy that bug), at most `max_pairs_per_degradation` each
     (seeded subset);
  3. generate GenDeg's output from each pair's clean image with the pair's REAL (mu, sigma)
     and its caption (prompted as synthesis prompts), at `image_size` (null: GenDeg's training
     size), which must be the size synthesis samples at: S corrects images of that size
     (the paper preset: 512; the synthesis stage refuses an S trained at another size);
     one seed per pair (hash of seed, split and row), batched, once; the images are cached
     as uint8 in chunks under the checkpoint folder, so a resumed job does not regenerate them;
  4. train S with the same loop as every model (gendeg.runtime.training.train) to map
     [clean, generated] -> the real degraded image, L1, on random crops.
The number that says whether S helps: L1 / PSNR of generated vs real, before and after S,
on the in-distribution test split (same generators, unseen draws), or on a seeded 20% of
the selected training pairs held out when the test split has none of S's degradations.
Caveat, measured honestly: GenDeg's output is stochastic and the real degraded image is
one draw, so part of what an L1-trained S gains is a pull towards the conditional mean;
`mu_abs_error` (before / after) shows whether S also shifts the degradation intensity, and
`diversity.kept` (seed-to-seed variation of two GenDeg samples after S / before S) whether
S still uses GenDeg's output or regresses the degradation from the clean image alone.

Gate: S is applied (by the synthesis stage) only to the degradations where it measurably
helps - PSNR gain above `min_psnr_gain` (params.yaml: 0) and `diversity.kept` at least
`min_diversity_kept` (params.yaml: 0.5) on the held-out pairs; config.json lists those, and
train_summary.json says why any other was left out.  A GenDeg whose output is far from the
real pairs teaches S to ignore it, and an S that erases GenDeg's variation would undo the
diversity synthesis is for.

Output folder (atomic):
  config.json          {"enabled", "degradations" (applied, after the gate), "trained_on",
                       "image_size"}; enabled false when the
                       stage is switched off (then nothing else is trained, but the folder
                       exists, so the DAG never depends on parameters)
  model/               S (gendeg.restorers.save_restorer: model.safetensors + config.json)
  train_summary.json   losses first/last; before/after L1, PSNR, mu error and diversity kept,
                       overall and per degradation
  samples.png          rows of held-out pairs: clean | GenDeg | GenDeg+S | real
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from gendeg import DEGRADATIONS
from gendeg.data.images import to_array, write_png
from gendeg.data.manifest import read_manifest
from gendeg.data.pairs import PairBank
from gendeg.diffusion import GenDegModel, generate
from gendeg.diffusion.structure_correction import CONFIG_FILE, MODEL_DIR, correct
from gendeg.diffusion.text import prompt_captions
from gendeg.intensity.definition import mu_sigma_torch
from gendeg.measure.metrics import psnr
from gendeg.pipeline import tracking
from gendeg.pipeline.config import ConfigError
from gendeg.restorers import build_restorer, save_restorer
from gendeg.runtime.atomic import atomic_dir, atomic_path, write_json, write_text
from gendeg.runtime.devices import compute_device, model_device
from gendeg.runtime.progress import progress
from gendeg.runtime.training import clear_checkpoint, loss_summary, run_fingerprint, settings_from_config, train

SECTION = "structure_correction"
REQUIRED_KEYS = ("degradations", "max_pairs_per_degradation", "model", "train")
HELD_OUT_FRACTION = 0.2
GRID_ROWS_PER_DEGRADATION = 2


# --------------------------------------------------------------------------- configuration

def section_config(config: dict) -> dict:
    """The `structure_correction` section, checked (its settings, sampling included, all come from params.yaml)."""
    if SECTION not in config:
        raise ConfigError(f"{SECTION} stage config: missing section {SECTION!r} (have {sorted(config)})")
    cfg = dict(config[SECTION])
    if not isinstance(cfg.get("enabled"), bool):
        raise ConfigError(f"{SECTION}.enabled: expected true or false, got {cfg.get('enabled')!r}")
    if not cfg["enabled"]:
        return cfg
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ConfigError(f"{SECTION}: missing key(s) {missing}")
    names = cfg["degradations"]
    if not isinstance(names, list) or not names:
        raise ConfigError(f"{SECTION}.degradations: expected a non-empty list, got {names!r}")
    unknown = sorted(set(names) - set(DEGRADATIONS))
    if unknown:
        raise ConfigError(f"{SECTION}.degradations: unknown name(s) {unknown}; expected some of {list(DEGRADATIONS)}")
    cap = cfg["max_pairs_per_degradation"]
    if cap is not None and (not isinstance(cap, int) or cap < 2):
        raise ConfigError(f"{SECTION}.max_pairs_per_degradation: expected an integer >= 2 or null (all), got {cap!r}")
    model = cfg["model"]
    if model.get("arch") != "nafnet" or model.get("in_channels") != 6:
        raise ConfigError(f"{SECTION}.model: S is a NAFNet over [clean, generated]; expected arch nafnet and "
                          f"in_channels 6, got arch {model.get('arch')!r}, in_channels {model.get('in_channels')!r}")
    size = cfg.get("image_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 8):
        raise ConfigError(f"{SECTION}.image_size: expected an integer >= 8 or null (GenDeg's training size), "
                          f"got {size!r}")
    for key in ("min_psnr_gain", "min_diversity_kept"):
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{SECTION}.{key}: expected a number or null (no test), got {value!r}")
    return cfg


def pair_seed(seed: int, split: str, row: int) -> int:
    """Seed of one pair's GenDeg sample: independent of which other pairs are selected."""
    digest = hashlib.sha256(f"{seed}:{SECTION}:{split}:{row}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


# --------------------------------------------------------------------------- pair selection

def _subset(frame: pd.DataFrame, cap: int | None, seed: int, tag: str) -> pd.DataFrame:
    if cap is None or len(frame) <= cap:
        return frame
    rng = np.random.default_rng(pair_seed(seed, tag, -1))
    return frame.iloc[np.sort(rng.permutation(len(frame))[:cap])]


def correction_pairs(config: dict, cfg: dict, prepared_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, str, list[str]]:
    """(train pairs, evaluation pairs, evaluation split name, covered degradations).

    Frames keep the manifest's row numbers as index (they seed each pair's sample).
    Degradations with no training pair (e.g. user data without raindrops) or not in the
    pipeline's `degradations:` are left out.
    """
    seed, cap = config["seed"], cfg["max_pairs_per_degradation"]
    train_all = read_manifest(Path(prepared_dir) / "train.csv").reset_index(drop=True)
    test_path = Path(prepared_dir) / "test.csv"
    test_all = read_manifest(test_path).reset_index(drop=True) if test_path.exists() else train_all.iloc[:0]
    pipeline = config["degradations"]  # nothing else is synthesised, so nothing else corrected
    covered = [d for d in cfg["degradations"] if d in pipeline and (train_all["degradation"] == d).any()]
    if not covered:
        raise ConfigError(f"{SECTION}.degradations: none of {cfg['degradations']} is both in degradations: "
                          f"{list(pipeline)} and in {prepared_dir}/train.csv; name degradations your data has, "
                          f"or set {SECTION}.enabled: false")
    test = test_all[test_all["degradation"].isin(covered)]
    train_parts, eval_parts = [], []
    split = "test" if not test.empty else "held_out_train"
    for name in covered:
        rows = _subset(train_all[train_all["degradation"] == name], cap, seed, f"train:{name}")
        if split == "test":
            train_parts.append(rows)
            eval_parts.append(_subset(test[test["degradation"] == name], cap, seed, f"test:{name}"))
        else:
            order = np.random.default_rng(pair_seed(seed, f"holdout:{name}", -1)).permutation(len(rows))
            count = math.ceil(len(rows) * HELD_OUT_FRACTION) if len(rows) > 1 else 0
            eval_parts.append(rows.iloc[np.sort(order[:count])])
            train_parts.append(rows.iloc[np.sort(order[count:])])
    evaluation = pd.concat(eval_parts)
    if evaluation.empty:
        raise ConfigError(f"{SECTION}: no pair left to measure S on ({prepared_dir}/test.csv has none of {covered} "
                          "and each has a single training pair)")
    return pd.concat(train_parts), evaluation, split, covered


# --------------------------------------------------------------------------- GenDeg inputs

class GeneratedInputs:
    """GenDeg's outputs for a bank's pairs, kept in the chunk files `generate_inputs` wrote and read a
    batch's rows at a time: S's training inputs never sit in memory whole (the paper preset's
    ~115k pairs at 256 px would hold 22 GB)."""

    def __init__(self, paths: list[Path], chunk: int, count: int, temporary: tempfile.TemporaryDirectory | None = None):
        self.paths, self.chunk, self.count, self._temporary = paths, chunk, count, temporary

    def __len__(self) -> int:
        return self.count

    def rows(self, indices) -> torch.Tensor:
        """uint8 n x 3 x H x W, in the order of `indices`."""
        indices = [int(i) for i in indices]
        found: dict[int, torch.Tensor] = {}
        for part in sorted({i // self.chunk for i in indices}):
            with safe_open(str(self.paths[part]), framework="pt") as handle:
                stored = handle.get_slice("generated")
                for i in (i for i in indices if i // self.chunk == part):
                    found[i] = stored[i % self.chunk:i % self.chunk + 1]
        return torch.cat([found[i] for i in indices])


def generate_inputs(model: GenDegModel, bank: PairBank, seeds: list[int], sampling: dict, cache_dir: Path | None,
                    tag: str) -> GeneratedInputs:
    """GenDeg's output for every pair of `bank` at its real (mu, sigma), as uint8 chunks on disk.

    Chunks already in `cache_dir` (from an interrupted run with the same fingerprint) are
    kept instead of generated again; without a folder they go to a temporary one.
    """
    temporary = None
    if cache_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="gendeg-structure-correction-")
        cache_dir = Path(temporary.name)
    chunk, paths = sampling["batch_size"], []
    for start in progress(range(0, len(bank), chunk), desc=f"{SECTION}: generating ({tag})"):
        path = cache_dir / f"{tag}_{start:06d}.safetensors"
        paths.append(path)
        if path.exists():
            continue
        rows = slice(start, start + chunk)
        clean = bank.tensors(range(len(bank))[rows])[1]
        with torch.no_grad():
            out = generate(model, clean, bank.degradation[rows], bank.mu[rows], bank.sigma[rows],
                           [torch.Generator().manual_seed(s) for s in seeds[rows]], num_steps=sampling["steps"],
                           image_guidance=sampling["image_guidance"], text_guidance=sampling["text_guidance"],
                           sampler=sampling["sampler"], captions=pair_captions(bank, rows))
        # Quantised as the synthesis stage's PNGs are: S trains on what it will be given.
        with atomic_path(path) as tmp:
            save_file({"generated": (out.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).contiguous()}, str(tmp))
    return GeneratedInputs(paths, chunk, len(bank), temporary)


def pair_captions(bank: PairBank, rows: slice) -> list:
    """The pairs' captions (blank: none), so S's inputs are prompted as synthesis prompts its outputs."""
    return prompt_captions(bank.frame.iloc[rows])  # with each dataset's own phrase (data.user phrase:)


def correction_size(cfg: dict, gendeg_dir: Path) -> int:
    """The size S trains at: `structure_correction.image_size`, or GenDeg's training size when it is
    null (the CPU default, whose synthesis samples at that size too).  It must be the size synthesis
    samples at, which S corrects (the paper preset: 512 for both)."""
    return cfg.get("image_size") or json.loads((gendeg_dir / "train_summary.json").read_text())["image_size"]


def _cache_dir(checkpoint_dir: Path | None, stamp: str) -> Path | None:
    """checkpoint_dir/generated, emptied when it holds samples of another configuration."""
    if checkpoint_dir is None:
        return None
    cache = Path(checkpoint_dir) / "generated"
    marker = cache / "fingerprint.txt"
    if cache.exists() and (not marker.exists() or marker.read_text() != stamp):
        for path in cache.iterdir():
            path.unlink()
    cache.mkdir(parents=True, exist_ok=True)
    write_text(stamp, marker)
    return cache


# --------------------------------------------------------------------------- training and measuring

def crop_triplets(images: list[torch.Tensor], crop: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The same random crop and flip for each of clean / generated / real (float, [0, 1])."""
    size = images[0].shape[-1]
    count = images[0].shape[0]
    if crop < size:
        top = torch.randint(size - crop + 1, (count,), generator=generator)
        left = torch.randint(size - crop + 1, (count,), generator=generator)
        images = [torch.stack([im[:, y:y + crop, x:x + crop] for im, y, x in zip(batch, top, left, strict=True)])
                  for batch in images]
    mirror = torch.rand(count, generator=generator) < 0.5
    for batch in images:
        batch[mirror] = batch[mirror].flip(-1)
    return images


def _fidelity(pred: torch.Tensor, real: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """L1, PSNR to the real degraded image, and |mu(pred) - mu(real)| (intensity kept or not)."""
    mu_error = (mu_sigma_torch(clean, pred)[0] - mu_sigma_torch(clean, real)[0]).abs()
    values = psnr(pred, real)
    return {"l1": float((pred - real).abs().mean()), "psnr": float(values[torch.isfinite(values)].mean()),
            "mu_abs_error": float(mu_error.mean())}


def _diversity(first: torch.Tensor, second: torch.Tensor) -> float:
    """Mean |a - b| between two samples of the same request: what varies from seed to seed."""
    return float((first - second).abs().mean())


def measure(clean: torch.Tensor, generated: torch.Tensor, corrected: torch.Tensor, real: torch.Tensor,
            names: list[str], generated_2: torch.Tensor, corrected_2: torch.Tensor) -> dict:
    """Before (GenDeg) and after (GenDeg + S) fidelity to the real pair, overall and per degradation.

    `generated_2` is a second GenDeg sample of each request (another seed): `diversity_kept`
    = seed-to-seed variation after S / before S.  Near 0 means S ignores GenDeg's output and
    regresses the degradation from the clean image alone - a fidelity gain bought with the
    diversity synthesis exists for.
    """
    def block(rows) -> dict:
        before = _diversity(generated[rows], generated_2[rows])
        after = _diversity(corrected[rows], corrected_2[rows])
        return {"before": _fidelity(generated[rows], real[rows], clean[rows]),
                "after": _fidelity(corrected[rows], real[rows], clean[rows]),
                "diversity": {"before": before, "after": after, "kept": after / before if before > 0 else None}}

    names_array = np.array(names)
    result = block(slice(None))
    result["per_degradation"] = {name: {"pairs": int((names_array == name).sum()),
                                        **block(torch.from_numpy(np.flatnonzero(names_array == name)))}
                                 for name in dict.fromkeys(names)}
    result["psnr_gain"] = result["after"]["psnr"] - result["before"]["psnr"]
    return result


def gate(measured: dict, covered: list[str], cfg: dict) -> tuple[list[str], dict[str, str]]:
    """Degradations S will be applied to: those where, on the held-out pairs, it raised PSNR by
    more than `min_psnr_gain` and kept at least `min_diversity_kept` of GenDeg's seed-to-seed
    variation (null switches a test off).  Returns (applied, {left out: why})."""
    min_gain, min_kept = cfg["min_psnr_gain"], cfg["min_diversity_kept"]
    applied, left_out = [], {}
    for name in covered:
        per = measured["per_degradation"][name]
        gain, kept = per["after"]["psnr"] - per["before"]["psnr"], per["diversity"]["kept"]
        if min_gain is not None and not gain > min_gain:
            left_out[name] = f"PSNR gain {gain:.2f} dB is not above min_psnr_gain {min_gain}"
        elif min_kept is not None and (kept is None or kept < min_kept):
            left_out[name] = f"diversity kept {kept if kept is None else round(kept, 3)} is below min_diversity_kept {min_kept}"
        else:
            applied.append(name)
    return applied, left_out


def sample_grid(clean: torch.Tensor, generated: torch.Tensor, corrected: torch.Tensor, real: torch.Tensor,
                names: list[str]) -> np.ndarray:
    """Rows of held-out pairs (a few per degradation): clean | GenDeg | GenDeg+S | real."""
    picks, seen = [], {}
    for i, name in enumerate(names):
        if seen.get(name, 0) < GRID_ROWS_PER_DEGRADATION:
            picks.append(i)
            seen[name] = seen.get(name, 0) + 1
    rows = [np.concatenate([to_array(t[i]) for t in (clean, generated, corrected, real)], axis=1) for i in picks]
    return np.concatenate(rows, axis=0)


def _write_disabled(config: dict, out_dir: Path) -> dict:
    summary = {"enabled": False}
    with tracking.job_run(SECTION, SECTION, config) as run:
        run.set_tags({"gendeg.structure_correction": "disabled"})
        with atomic_dir(out_dir) as tmp:
            write_json({"enabled": False, "degradations": [], "trained_on": []}, tmp / CONFIG_FILE)
            write_json(summary, tmp / "train_summary.json")
    return summary


def train_structure_correction(config: dict, prepared_dir: Path, gendeg_dir: Path, out_dir: Path,
                               checkpoint_dir: Path | None) -> dict:
    """Train S on frozen-GenDeg outputs of real pairs; write the output folder; return the summary."""
    cfg = section_config(config)
    prepared_dir, gendeg_dir, out_dir = Path(prepared_dir), Path(gendeg_dir), Path(out_dir)
    if not cfg["enabled"]:
        clear_checkpoint(checkpoint_dir)
        return _write_disabled(config, out_dir)
    train_cfg, sampling, seed = cfg["train"], cfg["sampling"], config["seed"]
    train_frame, eval_frame, eval_split, covered = correction_pairs(config, cfg, prepared_dir)
    image_size = correction_size(cfg, gendeg_dir)
    gendeg_model = GenDegModel.from_pretrained(gendeg_dir).eval().requires_grad_(False).to(compute_device())

    inputs = [prepared_dir / "train.csv", prepared_dir / "test.csv", gendeg_dir]
    generation_key = {"seed": seed, "degradations": covered, "cap": cfg["max_pairs_per_degradation"],
                      "sampling": sampling, "image_size": image_size}
    cache = _cache_dir(checkpoint_dir, run_fingerprint(generation_key, *inputs))
    train_bank = PairBank(train_frame, size=image_size, description=f"{SECTION}: loading train pairs")
    eval_bank = PairBank(eval_frame, size=image_size, description=f"{SECTION}: loading {eval_split} pairs")
    train_generated = generate_inputs(gendeg_model, train_bank, [pair_seed(seed, "train", int(i)) for i in train_frame.index],
                                      sampling, cache, "train")
    eval_source = "train" if eval_split == "held_out_train" else "test"
    eval_generated = generate_inputs(gendeg_model, eval_bank, [pair_seed(seed, eval_source, int(i)) for i in eval_frame.index],
                                     sampling, cache, "eval")
    eval_generated_2 = generate_inputs(gendeg_model, eval_bank,  # a second seed: does S keep GenDeg's diversity?
                                       [pair_seed(seed, f"{eval_source}:second", int(i)) for i in eval_frame.index],
                                       sampling, cache, "eval_second")
    del gendeg_model

    model = build_restorer(cfg["model"], seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"],
                                  betas=(0.9, 0.9))
    crop = min(train_cfg["crop"], image_size)

    def loss_fn(net, step: int, generator: torch.Generator) -> torch.Tensor:
        indices = train_bank.sample_indices(train_cfg["batch_size"], generator, train_cfg["balance"])
        real, clean = train_bank.tensors(indices)
        clean, generated, real = crop_triplets([clean, train_generated.rows(indices).float() / 255.0, real], crop,
                                               generator)
        device = model_device(net)
        return F.l1_loss(net(torch.cat([clean, generated], dim=1).to(device)), real.to(device))

    with tracking.job_run(SECTION, SECTION, config) as run:
        run.log_params({"pairs.train": len(train_bank), "pairs.eval": len(eval_bank), "eval_split": eval_split,
                        "covered": covered, "image_size": image_size,
                        "model.parameters": sum(p.numel() for p in model.parameters())})
        settings = settings_from_config(train_cfg, seed, checkpoint_dir, "train structure correction",
                                        run_fingerprint(config, *inputs))
        result = train(model, optimizer, loss_fn, settings, tracker=run)
        if not result.main_process:  # multi-process job: the main process writes the outputs
            return {}

        real, clean = eval_bank.tensors()
        generated = eval_generated.rows(range(len(eval_generated))).float() / 255.0
        generated_2 = eval_generated_2.rows(range(len(eval_generated_2))).float() / 255.0
        corrected, corrected_2 = correct(model, clean, generated), correct(model, clean, generated_2)
        names = list(eval_frame["degradation"])
        measured = measure(clean, generated, corrected, real, names, generated_2, corrected_2)
        applied, left_out = gate(measured, covered, cfg)
        summary = {"enabled": True, "degradations": applied, "trained_on": covered, "left_out": left_out,
                   "image_size": image_size, "steps": train_cfg["steps"],
                   "eval_split": eval_split,
                   "pairs": {d: int((train_frame["degradation"] == d).sum()) for d in covered},
                   "eval_pairs": {d: int((eval_frame["degradation"] == d).sum()) for d in covered},
                   **loss_summary(result.losses), **measured}
        run.log_metrics({k: v for k, v in summary.items() if k.startswith("loss")})
        run.set_tags({"gendeg.structure_correction.applied": ",".join(applied) or "none"})
        blocks = {"": measured, **{f".{name}": per for name, per in measured["per_degradation"].items()}}
        run.log_metrics({f"{when}.{k}{suffix}": v for suffix, per in blocks.items()
                         for when in ("before", "after") for k, v in per[when].items()})
        run.log_metrics({f"diversity_kept{suffix}": per["diversity"]["kept"] for suffix, per in blocks.items()
                         if per["diversity"]["kept"] is not None})
        grid = sample_grid(clean, generated, corrected, real, names)
        with atomic_dir(out_dir) as tmp:
            save_restorer(model, cfg["model"], tmp / MODEL_DIR)
            write_json({"enabled": True, "degradations": applied, "trained_on": covered, "image_size": image_size},
                       tmp / CONFIG_FILE)
            write_json(summary, tmp / "train_summary.json")
            write_png(grid, tmp / "samples.png")
        run.log_image(grid, "structure_correction_samples.png")
    clear_checkpoint(checkpoint_dir)
    return summary
