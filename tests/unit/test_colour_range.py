"""gendeg.synthesis.colour_range: generated images held within the colour gains of the real pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gendeg.synthesis.colour_range import ColourRange, channel_gains, constrain_colour, fit_colour_range
from gendeg.data.images import write_png


def images(*means: tuple[float, float, float], size: int = 8) -> torch.Tensor:
    """Bx3xHxW images with a little texture around the given channel means."""
    texture = torch.linspace(-0.05, 0.05, size * size).reshape(1, size, size)
    return torch.stack([torch.tensor(m).reshape(3, 1, 1) + texture for m in means]).float()


def test_images_inside_the_range_come_back_unchanged():
    clean = images((0.4, 0.5, 0.6), (0.3, 0.3, 0.3))
    generated = clean * torch.tensor([1.0, 1.02, 0.99]).reshape(1, 3, 1, 1)
    out, factors = constrain_colour(clean, generated, ColourRange((0.98,) * 3, (1.03,) * 3, pairs=10))
    assert torch.equal(out, generated) and (factors == 1).all()


def test_images_outside_the_range_are_scaled_to_the_nearest_bound():
    clean = images((0.4, 0.5, 0.6), (0.3, 0.3, 0.3))
    # First image too bright in red (gain 1.2), second too dark everywhere (gain 0.8).
    generated = clean * torch.tensor([[1.2, 1.0, 1.0], [0.8, 0.8, 0.8]]).reshape(2, 3, 1, 1)
    out, factors = constrain_colour(clean, generated, ColourRange((0.95,) * 3, (1.05,) * 3, pairs=10))
    gains = channel_gains(clean.double(), out.double())
    np.testing.assert_allclose(gains[0].numpy(), [1.05, 1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(gains[1].numpy(), [0.95, 0.95, 0.95], atol=1e-5)
    assert factors[0, 0] < 1 < factors[1, 0] and factors[0, 1] == 1


def test_a_black_channel_is_left_as_it_is():
    clean = images((0.4, 0.5, 0.6))
    generated = torch.zeros_like(clean)
    out, factors = constrain_colour(clean, generated, ColourRange((0.9,) * 3, (1.1,) * 3, pairs=1))
    assert torch.equal(out, generated) and (factors == 1).all()


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="Bx3xHxW"):
        constrain_colour(images((0.5,) * 3), images((0.5,) * 3, size=4), ColourRange((1,) * 3, (1,) * 3, 1))


@pytest.fixture()
def real_pairs(tmp_path) -> pd.DataFrame:
    """Ten pairs whose degraded side has gain 0.9 + 0.02 * i in every channel."""
    rows = []
    for i in range(10):
        clean = np.full((8, 8, 3), 0.5, dtype=np.float32)
        write_png(clean, tmp_path / f"clean{i}.png")
        write_png(clean * (0.9 + 0.02 * i), tmp_path / f"degraded{i}.png")
        rows.append({"target_path": str(tmp_path / f"clean{i}.png"), "image_path": str(tmp_path / f"degraded{i}.png")})
    return pd.DataFrame(rows)


def test_the_range_is_the_quantiles_of_the_real_gains(real_pairs):
    fitted = fit_colour_range(real_pairs, (0.0, 1.0), max_pairs=100, seed=0)
    assert fitted.pairs == 10
    np.testing.assert_allclose(fitted.low, [0.9] * 3, atol=0.01)  # 8-bit rounding
    np.testing.assert_allclose(fitted.high, [1.08] * 3, atol=0.01)
    narrower = fit_colour_range(real_pairs, (0.25, 0.75), max_pairs=100, seed=0)
    assert fitted.low[0] < narrower.low[0] < narrower.high[0] < fitted.high[0]


def test_a_subset_is_seeded(real_pairs):
    first, again = (fit_colour_range(real_pairs, (0.0, 1.0), max_pairs=4, seed=3) for _ in range(2))
    assert first == again and first.pairs == 4


@pytest.mark.parametrize(("quantiles", "message"), [((0.9, 0.1), "low < high"), ((0.0, 1.5), "low < high")])
def test_bad_quantiles_are_refused(real_pairs, quantiles, message):
    with pytest.raises(ValueError, match=message):
        fit_colour_range(real_pairs, quantiles, max_pairs=10, seed=0)


def test_no_real_pair_is_an_error():
    with pytest.raises(ValueError, match="no real training pair"):
        fit_colour_range(pd.DataFrame(columns=["image_path", "target_path"]), (0.05, 0.95), max_pairs=10, seed=0)
