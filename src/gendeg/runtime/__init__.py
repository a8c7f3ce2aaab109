"""Plumbing every stage shares and nothing below it: atomic writes, devices, distributed
launch, progress bars, MLflow tracking, the training loop and the GPU speed levers."""
