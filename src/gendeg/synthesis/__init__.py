"""Steps of synthesis around the GenDeg sampler: intensity calibration (the conditioning that
realises a requested mu) and the colour range generated images are held to."""
