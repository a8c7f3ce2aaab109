"""GenDeg: diffusion-based degradation synthesis for all-in-one image restoration."""

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
