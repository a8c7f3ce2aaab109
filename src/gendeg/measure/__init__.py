"""Measurement: image metrics, perceptual and distributional distances, the degradation classifier whose features KID uses, synthesis quality, mu calibration."""
