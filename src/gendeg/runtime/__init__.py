"""Plumbing every other layer may use and that uses none of them: atomic writes, devices,
distributed launch, progress bars, the training loop, the machine description, GPU speed levers."""
