"""A corrupt checkpoint is set aside, not retried forever."""

from __future__ import annotations

import pytest
import torch
from test_training import Killed, dies_at, run


def test_a_truncated_checkpoint_is_set_aside_and_training_starts_over_identical(tmp_path, capsys):
    """Every retry failed with `SafetensorError: incomplete metadata`, naming no file."""
    reference, _ = run(tmp_path / "uninterrupted")
    with pytest.raises(Killed):
        run(tmp_path / "interrupted", loss_fn=dies_at(37))
    state = tmp_path / "interrupted" / "ckpt" / "last" / "state.safetensors"
    state.write_bytes(state.read_bytes()[:100])  # a write cut short
    resumed, result = run(tmp_path / "interrupted")
    assert result.resumed_from == 0
    said = capsys.readouterr().err
    assert f"checkpoint {state.parent} cannot be read" in said and "starts over from step 0" in said, said
    assert (tmp_path / "interrupted" / "ckpt" / "last.corrupt" / "state.safetensors").exists()
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
