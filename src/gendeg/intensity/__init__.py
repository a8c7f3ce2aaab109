"""Degradation intensity (mu, sigma): the paper's definition and its 128-bin encoding
(`definition`), the statistics in the layout the GenDeg authors released (`stats`), and the
released synthesis code's way of sampling requested intensities from them (`sampler`)."""
