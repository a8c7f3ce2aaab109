"""GenDeg: diffusion-based degradation synthesis for all-in-one image restoration.

Subpackages, lowest first (each imports only from those before it): runtime (plumbing),
degradations, intensity, measure, restorers, data, diffusion (GenDeg), synthesis (the steps
around GenDeg's sampler), pipeline (the stage table, params, orchestration, MLflow tracking),
stages (one module per DAG stage), then cli."""

from pathlib import Path

# The repository this package is installed from (editable install): reference/, workflow/ live here.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The degradations, the one list of them: a position here is the degradation id GenDeg is conditioned
# on.  Every other list derives from it; workflow/schemas/params.schema.yaml's enums repeat it as the
# data contract (tests/unit/test_degradations.py checks they agree).
DEGRADATIONS = ("haze", "rain", "snow", "motion_blur", "low_light", "raindrop")

# The prompt phrase the paper appends to a caption for each degradation.
DEGRADATION_PHRASES = {
    "haze": "in hazy conditions",
    "rain": "in rainy conditions",
    "snow": "in snowy conditions",
    "motion_blur": "in blurry conditions",
    "low_light": "in low-light conditions",
    "raindrop": "with raindrops in it",
}

# Folder names of the released intensity statistics (shared/reference/gendeg-intensity-stats).
REFERENCE_FOLDER = {
    "haze": "haze",
    "rain": "rain",
    "snow": "snow",
    "motion_blur": "motion-blur",
    "low_light": "low-light",
    "raindrop": "raindrop",
}
