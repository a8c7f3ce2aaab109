"""The shared training loop: it learns, and a job killed after a checkpoint resumes exactly."""

from __future__ import annotations

import pytest
import torch

from gendeg.runtime.training import TrainSettings, loss_summary, step_generator, train

TARGET = torch.tensor([[1.5, -2.0, 0.5]])


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(3, 1)


def regression_loss(model, step: int, generator: torch.Generator) -> torch.Tensor:
    x = torch.randn(16, 3, generator=generator)
    y = x @ TARGET.T + 0.01 * torch.randn(16, 1, generator=generator)
    return torch.nn.functional.mse_loss(model(x), y)


def settings(tmp_path, **overrides) -> TrainSettings:
    base = dict(steps=60, seed=3, checkpoint_dir=tmp_path / "ckpt", checkpoint_every=10, log_every=5,
                ema_decay=0.9, fingerprint="run-a")
    return TrainSettings(**{**base, **overrides})


def run(tmp_path, loss_fn=regression_loss, **overrides):
    model = make_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    result = train(model, optimizer, loss_fn, settings(tmp_path, **overrides))
    return model, result


class Killed(Exception):
    """Stands for the job being killed mid-training."""


def dies_at(kill_step: int):
    def loss_fn(model, step, generator):
        if step == kill_step:
            raise Killed
        return regression_loss(model, step, generator)
    return loss_fn


def test_training_lowers_the_loss(tmp_path):
    _, result = run(tmp_path)
    summary = loss_summary(result.losses)
    assert len(result.losses) == 60
    assert summary["loss_last"] < 0.2 * summary["loss_first"]


def test_step_generators_are_independent_of_history():
    a = torch.rand(4, generator=step_generator(7, 12))
    torch.rand(100, generator=step_generator(7, 11))
    assert torch.equal(a, torch.rand(4, generator=step_generator(7, 12)))
    assert not torch.equal(a, torch.rand(4, generator=step_generator(7, 13)))


def test_a_killed_job_resumes_from_its_checkpoint_and_ends_identical(tmp_path):
    reference, _ = run(tmp_path / "uninterrupted")
    with pytest.raises(Killed):
        run(tmp_path / "interrupted", loss_fn=dies_at(37))
    assert (tmp_path / "interrupted" / "ckpt" / "last" / "state.safetensors").exists()
    resumed, result = run(tmp_path / "interrupted")
    assert result.resumed_from == 30
    assert len(result.losses) == 60
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path, capsys):
    with pytest.raises(Killed):
        run(tmp_path, loss_fn=dies_at(25))
    _, result = run(tmp_path, fingerprint="run-b")
    assert result.resumed_from == 0
    assert "belongs to another configuration" in capsys.readouterr().out


def test_non_finite_loss_fails_loudly(tmp_path):
    with pytest.raises(FloatingPointError, match="step 0"):
        run(tmp_path, loss_fn=lambda m, s, g: torch.tensor(float("nan"), requires_grad=True))
