"""Measurement: image metrics, perceptual and distributional distances, the degradation
classifier whose features KID / FID use, synthesis quality and the mu calibration curve."""
