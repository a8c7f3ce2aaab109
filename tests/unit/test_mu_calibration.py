"""The intensity calibration map: inverts a measured (monotone) response, stays the identity
where the model ignores the conditioning, and rejects malformed input."""

from __future__ import annotations

import numpy as np
import pytest

from gendeg.synthesis.mu_calibration import MuCalibration, conditioning_grid, fit_mu_calibration


def test_grid_spans_half_the_low_to_one_and_a_half_the_high_requests():
    requests = np.linspace(0.05, 0.25, 101)
    grid = conditioning_grid(requests, levels=5)
    assert grid[0] == pytest.approx(0.5 * np.percentile(requests, 5))
    assert grid[-1] == pytest.approx(1.5 * np.percentile(requests, 95))
    assert np.all(np.diff(grid) > 0) and len(grid) == 5


def test_an_overshooting_model_is_asked_for_less():
    grid = np.linspace(0.02, 0.3, 8)
    rng = np.random.default_rng(0)
    realised = 1.4 * grid[:, None] + rng.normal(0, 0.002, size=(8, 6))  # overshoots 1.4x, a little noise
    calibration = fit_mu_calibration(grid, realised)
    assert calibration.invertible
    requests = np.array([0.05, 0.1, 0.2])
    np.testing.assert_allclose(calibration.conditioning_for(requests), requests / 1.4, rtol=0.05)
    # Beyond what the grid realises: clipped to its ends, never extrapolated.
    assert calibration.conditioning_for([10.0])[0] == pytest.approx(grid[-1])
    assert calibration.conditioning_for([0.0])[0] == pytest.approx(grid[0])


def test_a_dip_in_the_measured_curve_is_flattened_not_inverted_backwards():
    grid = np.array([0.1, 0.2, 0.3, 0.4])
    calibration = fit_mu_calibration(grid, np.array([[0.1], [0.25], [0.2], [0.4]]))
    np.testing.assert_allclose(calibration.realised, [0.1, 0.25, 0.25, 0.4])
    requests = np.linspace(0.1, 0.4, 31)
    assert np.all(np.diff(calibration.conditioning_for(requests)) >= 0)


def test_a_model_that_ignores_mu_keeps_the_requests():
    grid = np.linspace(0.05, 0.3, 6)
    calibration = fit_mu_calibration(grid, np.full((6, 4), 0.12) + np.linspace(0, 0.01, 6)[:, None])
    assert not calibration.invertible
    requests = np.array([0.07, 0.2])
    np.testing.assert_array_equal(calibration.conditioning_for(requests), requests)
    assert calibration.to_dict()["invertible"] is False


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="finite values > 0"):
        conditioning_grid([0.1, 0.0], levels=4)
    with pytest.raises(ValueError, match="levels must be >= 2"):
        conditioning_grid([0.1, 0.2], levels=1)
    with pytest.raises(ValueError, match="one row of realised mu per grid level"):
        fit_mu_calibration([0.1, 0.2, 0.3], np.zeros((2, 4)))
    with pytest.raises(ValueError, match="must be increasing"):
        fit_mu_calibration([0.3, 0.2], np.zeros((2, 1)))


def test_round_trip_through_its_dict():
    calibration = MuCalibration(np.array([0.1, 0.2]), np.array([0.15, 0.3]), True)
    saved = calibration.to_dict()
    again = MuCalibration.from_dict(saved)
    assert again.conditioning_for([0.2])[0] == pytest.approx(calibration.conditioning_for([0.2])[0])
