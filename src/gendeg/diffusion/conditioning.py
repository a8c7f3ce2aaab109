"""How the three conditions (degradation type, mu, sigma) reach the UNet.

Two routes, chosen by config:

* ``cross_attention`` -- the paper's: mu and sigma each become one scalar per text token
  (a shared Linear(129 -> n_tokens)); the two scalars are appended to every token
  embedding and a Linear(dim + 2 -> dim), identity on the text part at init, mixes them
  back into the cross-attention context.  At init the context is exactly the text, so a
  pretrained UNet starts where it was.
* ``time_embedding`` -- the degradation type and the two intensity codes are projected
  into one vector that diffusers adds to the timestep embedding (``class_labels``).  A
  global signal reaches every resolution at once; the probe found it learns intensity
  control far faster from scratch on CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from gendeg import DEGRADATIONS
from gendeg.intensity.definition import N_BINS, NULL_SLOT, bin_index

N_SLOTS = N_BINS + 1
NULL_DEGRADATION = len(DEGRADATIONS)  # index of the "no degradation text" entry
N_DEGRADATION_ENTRIES = len(DEGRADATIONS) + 1
ENCODINGS = ("onehot", "smoothed")
ROUTES = ("cross_attention", "time_embedding")


def _encode_one(values: torch.Tensor, kind: str, drop: torch.Tensor, encoding: str, smoothing_bins: float) -> torch.Tensor:
    values = torch.as_tensor(values).reshape(-1).float()
    code = torch.zeros(values.shape[0], N_SLOTS, device=values.device)
    if encoding == "onehot":
        code[torch.arange(values.shape[0], device=values.device), bin_index(values, kind)] = 1.0
    elif encoding == "smoothed":
        # The one-hot convolved with a Gaussian (peak 1 on the same bin): neighbouring bins
        # share strength, so a short run that sees each bin a few times still learns a
        # smooth intensity axis.
        centres = torch.arange(N_BINS, device=values.device, dtype=torch.float32)
        distance = centres[None, :] - bin_index(values, kind)[:, None].float()
        code[:, :N_BINS] = torch.exp(-0.5 * (distance / smoothing_bins) ** 2)
    else:
        raise ValueError(f"intensity_encoding must be one of {ENCODINGS}, got {encoding!r}")
    code[drop] = 0.0
    code[drop, NULL_SLOT] = 1.0
    return code


def encode_intensity(
    mu: torch.Tensor,
    sigma: torch.Tensor,
    drop_mask: torch.Tensor | None = None,
    encoding: str = "onehot",
    smoothing_bins: float = 4.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) mu and sigma -> two (B, 129) codes; rows where `drop_mask` is True get the null slot.

    ``onehot`` is the paper's; ``smoothed`` puts a Gaussian of std `smoothing_bins` bins
    (peak 1) on the same bins.  The null slot is never mixed with an intensity.
    """
    mu = torch.as_tensor(mu).reshape(-1)
    if drop_mask is None:
        drop_mask = torch.zeros(mu.shape[0], dtype=torch.bool, device=mu.device)
    drop_mask = torch.as_tensor(drop_mask, dtype=torch.bool, device=mu.device).reshape(-1)
    return (
        _encode_one(mu, "mu", drop_mask, encoding, smoothing_bins),
        _encode_one(sigma, "sigma", drop_mask, encoding, smoothing_bins),
    )


class DegradationTokens(nn.Module):
    """Tiny-preset stand-in for CLIP: a learned (n_tokens, dim) embedding per degradation type (+ null)."""

    def __init__(self, n_tokens: int, dim: int):
        super().__init__()
        self.n_tokens, self.dim = n_tokens, dim
        self.embedding = nn.Embedding(N_DEGRADATION_ENTRIES, n_tokens * dim)
        nn.init.normal_(self.embedding.weight, std=1.0)

    def forward(self, degradation_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(degradation_ids).view(-1, self.n_tokens, self.dim)


class CrossAttentionIntensity(nn.Module):
    """The paper's route: (B, T, dim) token embeddings + two (B, 129) codes -> (B, T, dim) context."""

    def __init__(self, n_tokens: int, dim: int, intensity_columns_init: str = "zero"):
        """`intensity_columns_init`: the (mu, sigma) columns of the context projection start at
        zero ("zero": the context is exactly the text at init) or keep PyTorch's Linear init
        ("default", as the released code: ddpm_edit.py L495-499).  The text part is the identity
        and the bias zero either way."""
        super().__init__()
        if intensity_columns_init not in ("zero", "default"):
            raise ValueError(f"intensity_columns_init must be 'zero' or 'default', got {intensity_columns_init!r}")
        self.intensity_projection = nn.Linear(N_SLOTS, n_tokens)  # shared by mu and sigma
        self.context_projection = nn.Linear(dim + 2, dim)
        with torch.no_grad():
            if intensity_columns_init == "zero":
                self.context_projection.weight[:, dim:] = 0.0
            self.context_projection.weight[:, :dim] = torch.eye(dim)
            self.context_projection.bias.zero_()

    def forward(self, tokens: torch.Tensor, mu_code: torch.Tensor, sigma_code: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] != self.intensity_projection.out_features:
            raise ValueError(
                f"cross_attention route built for {self.intensity_projection.out_features} tokens, got {tokens.shape[1]}"
            )
        per_token = torch.stack(
            [self.intensity_projection(mu_code), self.intensity_projection(sigma_code)], dim=-1
        )  # (B, T, 2)
        return self.context_projection(torch.cat([tokens, per_token.to(tokens.dtype)], dim=-1))


class TimeEmbeddingIntensity(nn.Module):
    """The fast route: type + mu + sigma -> one (B, out_dim) vector fed to the UNet as class_labels."""

    def __init__(self, out_dim: int):
        super().__init__()
        self.type_embedding = nn.Embedding(N_DEGRADATION_ENTRIES, out_dim)
        self.mu_projection = nn.Linear(N_SLOTS, out_dim)
        self.sigma_projection = nn.Linear(N_SLOTS, out_dim)

    def forward(self, degradation_ids: torch.Tensor, mu_code: torch.Tensor, sigma_code: torch.Tensor) -> torch.Tensor:
        return self.type_embedding(degradation_ids) + self.mu_projection(mu_code) + self.sigma_projection(sigma_code)
