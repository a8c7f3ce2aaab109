"""Which tiny-GenDeg settings learn intensity control on a CPU in the default step budget?

SUPERSEDED (see benchmarks/README.md).  Its recorded figures, now in
benchmarks/results/archive/gendeg_tuning.json and archive/gendeg_tuning_parts/, were made
when GenDegModel's DEFAULT_CONFIG predicted v on a pixel_unshuffle(4) latent.  The variants
below are differences from today's DEFAULT_CONFIG (x0-prediction, pixel_unshuffle(2)), so a
re-run measures other models and does not reproduce the archived file; it writes a new
benchmarks/results/gendeg_tuning.json.

Trains the tiny GenDeg model for a fixed number of steps on ~1000 physics-degraded pairs
(the six `gendeg.degradations` generators on 64x64 crops of scikit-image's bundled
photos), then asks it to degrade crops of two held-out photos at the (mu, sigma) of real
physics pairs made on them, and measures per degradation:

* r_mu:   Pearson r between requested and realised mu (does intensity control work?)
* ratio:  median realised / requested mu (does it hit the level, or overshoot?)
* r_sigma
* type_accuracy: a degradation classifier (gendeg.measure.classifier, trained on the physics
  pairs only) recognises the requested degradation in the generated image.

Usage (each variant runs in its own process; one torch thread each):

    python benchmarks/gendeg_tuning.py run --variant default [--steps 800] [--lr 1e-3] [--name NAME]
    python benchmarks/gendeg_tuning.py sweep --name default   # sampler steps / guidance of a trained run
    python benchmarks/gendeg_tuning.py speed      # seconds per step / per image, one thread
    python benchmarks/gendeg_tuning.py merge      # -> benchmarks/results/gendeg_tuning.json

Trained runs are kept in /tmp/gendeg_tuning_models/<name> (for `sweep`).  Seconds per
training step and per sampled image are recorded too; on a shared machine (several runs
and other jobs on 2 cores) they are indicative only, `speed` measures them alone.
The pairs' (mu, sigma) are measured at 64x64, not after the paper's resize to 256.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

import numpy as np
import skimage
import torch
from PIL import Image

from gendeg import DEGRADATIONS
from gendeg.diffusion import GenDegModel, generate, training_loss
from gendeg.measure.classifier import fit_classifier, predict
from gendeg.runtime.atomic import write_json

RESULTS = Path(__file__).parent / "results"
PARTS = RESULTS / "gendeg_tuning_parts"
MODELS = Path("/tmp/gendeg_tuning_models")  # trained variants, kept out of the repository
PHOTOS = Path(skimage.__file__).parent / "data"
TRAIN_PHOTOS = ["astronaut.png", "chelsea.png", "motorcycle_left.png", "ihc.png", "retina.jpg",
                "hubble_deep_field.jpg", "motorcycle_right.png"]
HELD_OUT_PHOTOS = ["coffee.png", "rocket.jpg"]
SIZE = 64

# Candidate model configs (differences from GenDegModel's DEFAULT_CONFIG).
VARIANTS: dict[str, dict] = {
    "default": {},  # time_embedding + smoothed + residual x3 + v_prediction
    "onehot": {"intensity_encoding": "onehot"},
    "no_residual": {"residual": False},
    "cross_attention": {"route": "cross_attention"},
    "paper": {"route": "cross_attention", "intensity_encoding": "onehot", "residual": False,
              "prediction_type": "epsilon"},
    "residual_x1": {"residual_scale": 1.0},
}
TRAINING = {"batch_size": 16, "lr": 1e-3, "projection_lr": 1e-2, "ema_decay": 0.995, "seed": 0}
SAMPLING = {"num_steps": 10, "image_guidance": 1.5, "sampler": "dpmsolver++"}
TEXT_GUIDANCES = (3.0, 7.5)


def photo(name: str, short_side: int) -> np.ndarray:
    with Image.open(PHOTOS / name) as image:
        image = image.convert("RGB")
        scale = short_side / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        return np.asarray(image, dtype=np.float32) / 255.0


def make_pairs(photos: list[str], per_degradation: int, seed: int) -> dict[str, np.ndarray]:
    """Random 64x64 crops (from photos resized to a random short side) and their physics degradations."""
    rng = np.random.default_rng(seed)
    sides = (96, 128, 192)
    library = {(name, side): photo(name, side) for name in photos for side in sides}
    clean, degraded, ids = [], [], []
    for index, name in enumerate(DEGRADATIONS):
        apply = importlib.import_module(f"gendeg.degradations.{name}").apply
        for _ in range(per_degradation):
            source = library[(photos[rng.integers(len(photos))], sides[rng.integers(len(sides))])]
            y, x = rng.integers(source.shape[0] - SIZE + 1), rng.integers(source.shape[1] - SIZE + 1)
            crop = np.ascontiguousarray(source[y:y + SIZE, x:x + SIZE])
            clean.append(crop)
            degraded.append(apply(crop, rng, float(rng.uniform(0.05, 1.0))))
            ids.append(index)
    clean, degraded = np.stack(clean), np.stack(degraded)
    difference = np.abs(clean - degraded).reshape(len(clean), -1)
    return {"clean": clean, "degraded": degraded, "ids": np.array(ids),
            "mu": difference.mean(1), "sigma": difference.std(1)}


def tensors(pairs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {"clean": torch.from_numpy(pairs["clean"]).permute(0, 3, 1, 2).contiguous(),
            "degraded": torch.from_numpy(pairs["degraded"]).permute(0, 3, 1, 2).contiguous(),
            "ids": torch.from_numpy(pairs["ids"]).long(),
            "mu": torch.from_numpy(pairs["mu"]).float(), "sigma": torch.from_numpy(pairs["sigma"]).float()}


def train(model: GenDegModel, data: dict[str, torch.Tensor], steps: int, training: dict) -> tuple[list[float], float]:
    from diffusers.training_utils import EMAModel

    generator = torch.Generator().manual_seed(training["seed"])
    optimizer = torch.optim.AdamW([
        {"params": model.main_parameters(), "lr": training["lr"]},
        {"params": model.projection_parameters(), "lr": training["projection_lr"]},
    ])
    ema = EMAModel(list(model.trainable_parameters()), decay=training["ema_decay"])
    losses, start = [], time.perf_counter()
    for _ in range(steps):
        batch = torch.randint(len(data["ids"]), (training["batch_size"],), generator=generator)
        loss = training_loss(model, data["clean"][batch], data["degraded"][batch], data["ids"][batch],
                             data["mu"][batch], data["sigma"][batch], generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.step(list(model.trainable_parameters()))
        losses.append(loss.item())
    seconds_per_step = (time.perf_counter() - start) / steps
    ema.copy_to(list(model.trainable_parameters()))
    return losses, seconds_per_step


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")


def evaluate(model: GenDegModel, test: dict[str, torch.Tensor], classifier, text_guidance: float,
             sampling: dict | None = None) -> dict:
    sampling = {**SAMPLING, **(sampling or {})}
    model.eval()
    generators = [torch.Generator().manual_seed(1000 + i) for i in range(len(test["ids"]))]
    start = time.perf_counter()
    outputs = torch.cat([
        generate(model, test["clean"][s], test["ids"][s], test["mu"][s], test["sigma"][s],
                 [generators[i] for i in range(s.start, min(s.stop, len(generators)))],
                 text_guidance=text_guidance, **sampling)
        for s in (slice(i, i + 64) for i in range(0, len(generators), 64))
    ])
    seconds_per_image = (time.perf_counter() - start) / len(generators)
    difference = (outputs - test["clean"]).abs().flatten(1)
    realised_mu, realised_sigma = difference.mean(1).numpy(), difference.std(1, unbiased=False).numpy()
    predicted = predict(classifier, outputs).argmax(1).numpy()
    per_degradation = {}
    for index, name in enumerate(DEGRADATIONS):
        rows = test["ids"].numpy() == index
        requested_mu, requested_sigma = test["mu"].numpy()[rows], test["sigma"].numpy()[rows]
        per_degradation[name] = {
            "r_mu": pearson(requested_mu, realised_mu[rows]),
            "r_sigma": pearson(requested_sigma, realised_sigma[rows]),
            "mu_ratio": float(np.median(realised_mu[rows] / np.maximum(requested_mu, 1e-4))),
            "type_accuracy": float((predicted[rows] == index).mean()),
        }
    mean = {k: float(np.nanmean([v[k] for v in per_degradation.values()])) for k in next(iter(per_degradation.values()))}
    return {"text_guidance": text_guidance, **sampling, "mean": mean, "per_degradation": per_degradation,
            "seconds_per_image": seconds_per_image}


def setup(pairs_per_degradation: int, tests_per_degradation: int):
    torch.set_num_threads(1)
    train_pairs = tensors(make_pairs(TRAIN_PHOTOS, pairs_per_degradation, seed=0))
    test_pairs = tensors(make_pairs(HELD_OUT_PHOTOS, tests_per_degradation, seed=1))
    classifier, _ = fit_classifier(train_pairs["degraded"], train_pairs["ids"], num_classes=len(DEGRADATIONS))
    return train_pairs, test_pairs, classifier


def run(variant: str, steps: int, pairs_per_degradation: int, tests_per_degradation: int,
        lr: float | None = None, name: str | None = None) -> None:
    training = dict(TRAINING)
    if lr is not None:  # the projections keep their 10x
        training.update(lr=lr, projection_lr=10 * lr)
    name = name or variant
    train_pairs, test_pairs, classifier = setup(pairs_per_degradation, tests_per_degradation)
    physics_accuracy = float((predict(classifier, test_pairs["degraded"]).argmax(1) == test_pairs["ids"]).float().mean())

    torch.manual_seed(TRAINING["seed"])  # weight init of diffusers modules uses the global RNG
    model = GenDegModel.from_config(VARIANTS[variant])
    losses, seconds_per_step = train(model, train_pairs, steps, training)
    model.save_pretrained(MODELS / name)
    result = {
        "variant": variant, "config_overrides": VARIANTS[variant], "model_config": model.config,
        "training": {**training, "steps": steps, "pairs": len(train_pairs["ids"])}, "sampling": SAMPLING,
        "parameters": sum(p.numel() for p in model.trainable_parameters()),
        "seconds_per_step": seconds_per_step,
        "loss_first_50": float(np.mean(losses[:50])), "loss_last_50": float(np.mean(losses[-50:])),
        "classifier_accuracy_on_held_out_physics": physics_accuracy,
        "evaluations": [evaluate(model, test_pairs, classifier, g) for g in TEXT_GUIDANCES],
    }
    write_json(result, PARTS / f"{name}.json")
    print(json.dumps({k: result[k] for k in ("variant", "seconds_per_step", "loss_first_50", "loss_last_50")}))
    for evaluation in result["evaluations"]:
        print(evaluation["text_guidance"], json.dumps(evaluation["mean"]), round(evaluation["seconds_per_image"], 3))


def sweep(name: str, pairs_per_degradation: int, tests_per_degradation: int) -> None:
    """Sampler steps and guidance scales for an already trained variant (speed vs fidelity)."""
    _, test_pairs, classifier = setup(pairs_per_degradation, tests_per_degradation)
    model = GenDegModel.from_pretrained(MODELS / name)
    settings = [  # most telling first: a partial sweep still answers "how few steps, which guidance"
        ({"num_steps": 5}, 3.0), ({"num_steps": 8}, 3.0),
        ({"num_steps": 8, "image_guidance": 1.0}, 1.0), ({"num_steps": 8}, 1.5), ({"num_steps": 8}, 5.0),
        ({"num_steps": 20}, 3.0), ({"num_steps": 20, "sampler": "euler_ancestral"}, 3.0),
    ]
    results = []
    for sampling, text_guidance in settings:
        results.append(evaluate(model, test_pairs, classifier, text_guidance, sampling))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "per_degradation"}))
        write_json({"name": name, "sweep": results}, PARTS / f"sweep_{name}.json")  # after each: partial runs count


def speed(variant: str) -> None:
    """Seconds per training step (batch 16) and per sampled 64x64 image (batch 64), untrained weights."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = GenDegModel.from_config(VARIANTS[variant])
    g = torch.Generator().manual_seed(0)
    clean, ids = torch.rand(64, 3, SIZE, SIZE, generator=g), torch.arange(64) % len(DEGRADATIONS)
    mu, sigma = torch.full((64,), 0.1), torch.full((64,), 0.08)
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
    step_times = []
    for _ in range(25):
        start = time.perf_counter()
        loss = training_loss(model, clean[:16], clean[:16].flip(-1), ids[:16], mu[:16], sigma[:16], g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step_times.append(time.perf_counter() - start)
    model.eval()
    sampling = {}
    for steps in (5, 8, 10, 20):
        start = time.perf_counter()
        generate(model, clean, ids, mu, sigma, [torch.Generator().manual_seed(i) for i in range(64)], num_steps=steps)
        sampling[str(steps)] = (time.perf_counter() - start) / 64
    result = {"variant": variant, "threads": 1, "seconds_per_step_median": float(np.median(step_times[5:])),
              "seconds_per_image_by_steps": sampling}
    write_json(result, PARTS / f"speed_{variant}.json")
    print(json.dumps(result))


def headline(evaluation: dict) -> dict:
    """Means over degradations; the mu ratio as a geometric mean so one far-off degradation
    (e.g. 50x on nearly invisible raindrops) does not swamp the others."""
    per = evaluation["per_degradation"].values()
    return {"r_mu": float(np.nanmean([v["r_mu"] for v in per])),
            "r_sigma": float(np.nanmean([v["r_sigma"] for v in per])),
            "mu_ratio_geomean": float(np.exp(np.mean([np.log(v["mu_ratio"]) for v in per]))),
            "type_accuracy": float(np.mean([v["type_accuracy"] for v in per])),
            "r_mu_per_degradation": {k: round(v["r_mu"], 3) for k, v in evaluation["per_degradation"].items()},
            "mu_ratio_per_degradation": {k: round(v["mu_ratio"], 2) for k, v in evaluation["per_degradation"].items()}}


def merge() -> None:
    parts = {p.stem: json.loads(p.read_text()) for p in sorted(PARTS.glob("*.json")) if not p.stem.startswith(("sweep_", "speed_"))}
    sweeps = {p.stem[6:]: json.loads(p.read_text())["sweep"] for p in sorted(PARTS.glob("sweep_*.json"))}
    summary = {
        name: {f"sT={e['text_guidance']}": headline(e) for e in part["evaluations"]}
        | {"lr": part["training"]["lr"], "seconds_per_step": part["seconds_per_step"],
           "loss_last_50": part["loss_last_50"], "overrides": part["config_overrides"]}
        for name, part in parts.items()
    }
    sweep_summary = {
        name: [{k: e[k] for k in ("num_steps", "sampler", "image_guidance", "text_guidance", "seconds_per_image")}
               | headline(e) for e in entries]
        for name, entries in sweeps.items()
    }
    speeds = {p.stem[6:]: json.loads(p.read_text()) for p in sorted(PARTS.glob("speed_*.json"))}
    physics = {name: part["classifier_accuracy_on_held_out_physics"] for name, part in parts.items()}
    write_json({"summary": summary, "sampler_sweep": sweep_summary, "speed": speeds,
                "classifier_accuracy_on_held_out_physics": physics, "variants": parts, "sweeps": sweeps},
               RESULTS / "gendeg_tuning.json")
    print(json.dumps({"summary": summary, "sampler_sweep": sweep_summary}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    run_parser.add_argument("--steps", type=int, default=700)
    sweep_parser = sub.add_parser("sweep")
    sweep_parser.add_argument("--name", required=True, help="a trained run's name")
    run_parser.add_argument("--lr", type=float, default=None, help=f"default {TRAINING['lr']}")
    run_parser.add_argument("--name", default=None, help="name of the run's result (default: the variant)")
    for p in (run_parser, sweep_parser):
        p.add_argument("--pairs-per-degradation", type=int, default=168)
        p.add_argument("--tests-per-degradation", type=int, default=24)
    speed_parser = sub.add_parser("speed")
    speed_parser.add_argument("--variant", choices=sorted(VARIANTS), default="default")
    sub.add_parser("merge")
    args = parser.parse_args()
    if args.command == "run":
        run(args.variant, args.steps, args.pairs_per_degradation, args.tests_per_degradation, args.lr, args.name)
    elif args.command == "speed":
        speed(args.variant)
    elif args.command == "sweep":
        sweep(args.name, args.pairs_per_degradation, args.tests_per_degradation)
    else:
        merge()


if __name__ == "__main__":
    main()
