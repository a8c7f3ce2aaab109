"""The degradation classifier learns, is deterministic and round-trips through safetensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gendeg import PROJECT_ROOT
from gendeg.measure.classifier import (
    CLASSES,
    DegradationClassifier,
    class_index,
    extract_features,
    fit_classifier,
    load_classifier,
    pair_change,
    predict,
    save_classifier,
)
from gendeg.pipeline.config import load_params

torch.set_num_threads(1)
# The pipeline's classifier settings: params.yaml states them, the code has no default.
CLASSIFIER = load_params(PROJECT_ROOT / "params.yaml")["classifier"]
# The toy problems' recipe: fewer steps on smaller batches at a higher rate, a fixed width (feature_dim 64).
TOY = {"steps": 40, "batch_size": 16, "lr": 3e-3, "seed": 0, "width": 8, "weight_decay": CLASSIFIER["weight_decay"]}


def _toy_set(seed: int, per_class: int = 24, size: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Three trivially separable 'degradations' of smooth random scenes: darkened, blurred, noised."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(3 * per_class, 3, size // 4, size // 4, generator=g) * 0.6 + 0.2
    clean = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    clean = clean + 0.1 * torch.rand(clean.shape, generator=g)  # fine texture a blur can remove
    dark = clean[:per_class] * 0.25
    kernel = torch.full((3, 1, 5, 5), 1 / 25)
    blurred = F.conv2d(F.pad(clean[per_class:2 * per_class], (2, 2, 2, 2), mode="reflect"), kernel, groups=3)
    noisy = (clean[2 * per_class:] + 0.15 * torch.randn(clean[2 * per_class:].shape, generator=g)).clamp(0, 1)
    labels = torch.tensor([class_index("low_light")] * per_class + [class_index("motion_blur")] * per_class
                          + [class_index("snow")] * per_class)
    return torch.cat([dark, blurred, noisy]).clamp(0, 1), labels


@pytest.fixture(scope="module")
def trained():
    images, labels = _toy_set(0)
    return fit_classifier(images, labels, **TOY)


def test_learns_separable_toy_problem(trained):
    model, losses = trained
    images, labels = _toy_set(1)  # fresh samples, same generators
    accuracy = (predict(model, images).argmax(-1) == labels).float().mean().item()
    assert accuracy > 0.9
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_training_is_deterministic_and_leaves_global_rng_alone(trained):
    model, losses = trained
    state = torch.random.get_rng_state()
    images, labels = _toy_set(0)
    again, losses_again = fit_classifier(images, labels, **TOY)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert losses == losses_again
    for (key, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=False):
        assert torch.equal(a, b), key


def test_features_shape_and_batch_independence(trained):
    model, _ = trained
    images, _ = _toy_set(2, per_class=2, size=33)
    features = extract_features(model, images, batch_size=4)
    assert features.shape == (6, model.feature_dim) == (6, 64)
    single = extract_features(model, images[:1])
    torch.testing.assert_close(single, features[:1], rtol=1e-5, atol=1e-5)


def test_save_load_round_trip(trained, tmp_path):
    model, _ = trained
    save_classifier(model, tmp_path / "clf")
    loaded = load_classifier(tmp_path / "clf")
    images, _ = _toy_set(3, per_class=2)
    with torch.no_grad():
        assert torch.equal(model(images), loaded(images))
    assert loaded.class_names == CLASSES


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(KeyError, match="'fog'"):
        class_index("fog")
    with pytest.raises(ValueError, match=r"labels must be in \[0, 7\)"):
        fit_classifier(torch.zeros(2, 3, 8, 8), torch.tensor([0, 9]), **{**TOY, "steps": 1})
    with pytest.raises(FileNotFoundError, match="classifier.json"):
        load_classifier(tmp_path)
    assert DegradationClassifier(CLASSIFIER["width"], num_classes=6).class_names == CLASSES[:6]
    with pytest.raises(TypeError, match="width"):
        fit_classifier(torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]), **{k: v for k, v in TOY.items() if k != "width"})


def _scenes(family: str, count: int, g: torch.Generator, size: int = 24) -> torch.Tensor:
    """Two unlike scene families: smooth colour fields, or fine random texture."""
    if family == "smooth":
        coarse = torch.rand(count, 3, 3, 3, generator=g) * 0.6 + 0.2
        return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return torch.rand(count, 3, size, size, generator=g) * 0.6 + 0.2


def _degrade(clean: torch.Tensor, kind: str, g: torch.Generator) -> torch.Tensor:
    """"rain": bright vertical streaks; "snow": bright specks."""
    count, _, size, _ = clean.shape
    if kind == "rain":
        columns = (torch.rand(count, 1, 1, size, generator=g) < 0.15).float()
        return (clean + 0.35 * columns.expand(-1, 3, size, -1)).clamp(0, 1)
    specks = (torch.rand(count, 1, size, size, generator=g) < 0.04).float()
    return (clean + 0.5 * specks.expand(-1, 3, -1, -1)).clamp(0, 1)


@pytest.mark.parametrize("judge_input", ["change", "image"])
def test_judging_the_change_survives_a_scene_confound_judging_the_image_does_not(judge_input):
    """Trained where each degradation comes with one scene family (as each built-in stand-in
    has its own scenes), then tested with the families swapped: the judge of the pair's
    change still names the degradation; the judge of the degraded image names the scene."""
    g = torch.Generator().manual_seed(0)
    confound = {"smooth": "rain", "texture": "snow"}

    def pairs(swap: bool, count: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, labels = [], []
        for family, kind in confound.items():
            kind = next(other for other in confound.values() if other != kind) if swap else kind
            clean = _scenes(family, count, g)
            degraded = _degrade(clean, kind, g)
            inputs.append(pair_change(clean, degraded) if judge_input == "change" else degraded)
            labels += [class_index(kind)] * count
        return torch.cat(inputs), torch.tensor(labels)

    judge, _ = fit_classifier(*pairs(swap=False), **TOY)
    inputs, labels = pairs(swap=True)
    accuracy = (predict(judge, inputs).argmax(-1) == labels).float().mean().item()
    assert accuracy > 0.9 if judge_input == "change" else accuracy < 0.5


def test_pair_change_is_centred_and_checks_shapes():
    clean = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(pair_change(clean, clean), torch.full_like(clean, 0.5))
    torch.testing.assert_close(pair_change(clean, clean * 0), 0.5 - clean / 2)
    with pytest.raises(ValueError, match=r"pair_change: clean \(2, 3, 8, 8\) vs degraded \(2, 3, 4, 4\)"):
        pair_change(clean, clean[..., :4, :4])
