"""gendeg.measure.synthesis_quality on tiny inputs whose answers are known."""

import math

import numpy as np
import pytest
import torch

from gendeg import PROJECT_ROOT
from gendeg.measure.classifier import fit_classifier, predict
from gendeg.measure.synthesis_quality import (
    class_shares,
    compare_over_seeds,
    control_stats,
    mean_std,
    pearson_r,
    sigma_at_mu,
    sweep_levels,
    type_accuracy,
)
from gendeg.pipeline.config import load_params


def test_perfect_control_gives_r_one_ratio_one_and_no_error():
    requested = np.linspace(0.02, 0.2, 9)
    stats = control_stats(requested, requested.copy())
    assert stats["pearson_r"] == pytest.approx(1.0)
    assert stats["ratio"] == pytest.approx(1.0)
    assert stats["mae"] == pytest.approx(0.0)


def test_overshoot_keeps_r_but_shows_in_ratio_and_mae():
    requested = np.linspace(0.02, 0.2, 9)
    stats = control_stats(requested, 2 * requested, prefix="mu_")
    assert stats["mu_pearson_r"] == pytest.approx(1.0)
    assert stats["mu_ratio"] == pytest.approx(2.0)
    assert stats["mu_mae"] == pytest.approx(requested.mean())


def test_constant_output_gives_nan_r_without_warnings():
    requested = np.linspace(0.02, 0.2, 9)
    with np.errstate(all="raise"):
        stats = control_stats(requested, np.full(9, 0.3))
    assert math.isnan(stats["pearson_r"])
    assert stats["ratio"] == pytest.approx(0.3 / requested.mean())


def test_unrelated_output_gives_r_near_zero():
    rng = np.random.default_rng(0)
    assert abs(pearson_r(rng.random(4000), rng.random(4000))) < 0.05
    assert pearson_r([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)


def test_too_few_or_mismatched_or_non_finite_values():
    assert math.isnan(pearson_r([0.1, 0.2], [0.1, 0.2]))
    with pytest.raises(ValueError, match="3 requested vs 2 realised"):
        control_stats([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="non-finite"):
        control_stats([0.1, 0.2, 0.3], [0.1, float("nan"), 0.3])


def test_sweep_levels_span_the_percentiles():
    levels = sweep_levels(np.arange(101) / 100, 5, 5, 95)
    np.testing.assert_allclose(levels, [0.05, 0.275, 0.5, 0.725, 0.95])
    with pytest.raises(ValueError, match="levels must be >= 2"):
        sweep_levels([0.1, 0.2], 1)


def test_sigma_at_mu_follows_the_training_relation():
    train_mu = np.linspace(0, 0.3, 301)
    train_sigma = 0.5 * train_mu
    np.testing.assert_allclose(sigma_at_mu(train_mu, train_sigma, [0.1, 0.2], neighbours=5), [0.05, 0.1], atol=1e-9)
    # More neighbours than pairs: the mean of all.
    assert sigma_at_mu([0.1, 0.3], [1.0, 3.0], [0.0], neighbours=99)[0] == pytest.approx(2.0)


def test_type_accuracy_from_labels_and_from_scores():
    assert type_accuracy(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 2, 1])) == pytest.approx(0.75)
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert type_accuracy(scores, [0, 1, 1]) == pytest.approx(2 / 3)
    assert class_shares(scores, ["a", "b"]) == pytest.approx({"a": 2 / 3, "b": 1 / 3})
    with pytest.raises(ValueError, match="predictions vs"):
        type_accuracy(torch.tensor([0, 1]), torch.tensor([0, 1, 1]))


def test_type_accuracy_with_a_classifier_on_a_trivially_separable_toy_set():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    dark = torch.rand(24, 3, 16, 16, generator=generator) * 0.2
    bright = 0.8 + torch.rand(24, 3, 16, 16, generator=generator) * 0.2
    images, labels = torch.cat([dark, bright]), torch.tensor([0] * 24 + [1] * 24)
    weight_decay = load_params(PROJECT_ROOT / "params.yaml")["classifier"]["weight_decay"]  # the pipeline's
    model, _ = fit_classifier(images, labels, steps=40, batch_size=16, lr=5e-3, seed=0, width=4, num_classes=2,
                              weight_decay=weight_decay)
    held_out = torch.cat([torch.rand(8, 3, 16, 16, generator=generator) * 0.2,
                          0.8 + torch.rand(8, 3, 16, 16, generator=generator) * 0.2])
    truth = torch.tensor([0] * 8 + [1] * 8)
    assert type_accuracy(predict(model, held_out), truth) == 1.0
    assert type_accuracy(predict(model, held_out), 1 - truth) == 0.0


def test_compare_over_seeds_verdicts():
    clear = compare_over_seeds([20.0, 20.1, 19.9], [21.0, 21.2, 20.9])
    assert clear["verdict"] == "gain" and clear["mean"] == pytest.approx(1.0333333)
    noisy = compare_over_seeds([20.0, 21.0, 19.0], [20.2, 21.1, 19.3])
    assert noisy["verdict"] == "within spread"  # +0.2 dB against a 0.8 dB seed spread
    assert noisy["same_sign_every_seed"] and not compare_over_seeds([1.0, 2.0], [1.5, 1.5])["same_sign_every_seed"]
    assert compare_over_seeds([21.0, 21.1, 20.9], [20.0, 20.1, 19.9])["verdict"] == "loss"
    assert compare_over_seeds([20.0], [21.0])["verdict"].startswith("single seed")
    assert mean_std([1.0, 3.0]) == {"mean": 2.0, "std": 1.0, "per_seed": [1.0, 3.0]}
