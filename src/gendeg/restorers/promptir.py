"""PromptIR (Potlapalli et al., "PromptIR: Prompting for All-in-One Blind Image Restoration", NeurIPS 2023).

Follows the official `net/model.py`: a 4-level Restormer (transformer blocks of multi-Dconv
head transposed attention, MDTA, and gated-Dconv feed-forward, GDFN) whose decoder gets,
at each of its three lower levels, a prompt generation block (PGB: a softmax-weighted sum
of learned prompt components, weights predicted from the pooled features) followed by a
prompt interaction block (concat, transformer block, 1x1 conv).

Channel counts of the official model (width 48) are kept as ratios so the net scales with
`width`: prompt dims 64/128/320 become 4/3, 8/3, 20/3 x width (rounded to a multiple of 8);
at width 48 every layer has the official shape (35.38M parameters; the official 35.59M
also counts six layers it defines but never calls, left out here).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gendeg.restorers.common import LayerNorm2d, ResidualRestorer, RestorerConfigError, merge_config, require_list

# Every setting but `width` (common.REQUIRED: params.yaml states it).  These values are the CPU default
# (0.57M parameters at width 8); the `paper` preset of params.yaml sets the released model.
DEFAULTS: dict[str, Any] = {
    "in_channels": 3,
    "blocks": [1, 1, 1, 2],  # transformer blocks per level (encoder and decoder), last = latent
    "refinement_blocks": 1,  # blocks at full resolution after the decoder
    "heads": [1, 2, 4, 8],  # attention heads per level
    "ffn_expansion": 2.66,  # GDFN hidden-channel factor
    "prompt_len": 5,  # prompt components per PGB
    # Spatial size of prompt1, which acts on the H/2 decoder features (prompt2, prompt3: half,
    # quarter).  Official 64 for 128x128 crops; 32 matches 64x64 crops.  Interpolated to any size.
    "prompt_size": 32,
    "prompt_dims": None,  # [p1, p2, p3]; None = scaled from width like the official 64/128/320 at 48
}


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network."""

    def __init__(self, dim: int, expansion: float) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention: attention across channels, linear in H*W."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise RestorerConfigError(f"promptir: {dim} channels do not split into {heads} heads")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float) -> None:
        super().__init__()
        self.norm1, self.attn = LayerNorm2d(dim, eps=1e-5), MDTA(dim, heads)
        self.norm2, self.ffn = LayerNorm2d(dim, eps=1e-5), GDFN(dim, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class PromptGenBlock(nn.Module):
    """Prompt generation: input-conditioned mixture of learned prompt components."""

    def __init__(self, prompt_dim: int, prompt_len: int, prompt_size: int, feature_dim: int) -> None:
        super().__init__()
        self.prompt = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear = nn.Linear(feature_dim, prompt_len)
        self.conv = nn.Conv2d(prompt_dim, prompt_dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.linear(x.mean(dim=(-2, -1))).softmax(dim=1)  # B x len
        prompt = torch.einsum("bl,lchw->bchw", weights, self.prompt[0])
        prompt = F.interpolate(prompt, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(prompt)


class PromptInteraction(nn.Module):
    """Concat features and prompt, one transformer block, 1x1 conv to `out_dim` channels."""

    def __init__(self, dim: int, prompt_dim: int, out_dim: int, heads: int, expansion: float) -> None:
        super().__init__()
        self.block = TransformerBlock(dim + prompt_dim, heads, expansion)
        self.reduce = nn.Conv2d(dim + prompt_dim, out_dim, 1, bias=False)

    def forward(self, x: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.block(torch.cat([x, prompt], dim=1)))


def _downsample(dim: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(dim, dim // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))


def _upsample(dim: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(dim, dim * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))


class PromptIR(ResidualRestorer):
    size_multiple = 8

    def __init__(self, width: int, in_channels: int, blocks: list[int], refinement_blocks: int,
                 heads: list[int], ffn_expansion: float, prompt_len: int, prompt_size: int,
                 prompt_dims: list[int]) -> None:
        super().__init__()
        self.in_channels = in_channels
        d1, d2, d3, d4 = (width * 2**i for i in range(4))
        p1, p2, p3 = prompt_dims
        stack = lambda dim, n, h: nn.Sequential(*[TransformerBlock(dim, h, ffn_expansion) for _ in range(n)])  # noqa: E731
        self.patch_embed = nn.Conv2d(in_channels, d1, 3, padding=1, bias=False)
        self.encoder1, self.down12 = stack(d1, blocks[0], heads[0]), _downsample(d1)
        self.encoder2, self.down23 = stack(d2, blocks[1], heads[1]), _downsample(d2)
        self.encoder3, self.down34 = stack(d3, blocks[2], heads[2]), _downsample(d3)
        self.latent = stack(d4, blocks[3], heads[3])

        self.prompt3 = PromptGenBlock(p3, prompt_len, max(prompt_size // 4, 1), d4)
        # As in the official model, prompt interaction already halves the latent to level-3 width,
        # so upsampling gives width*2 channels, concatenated with the level-3 skip.
        self.interact3 = PromptInteraction(d4, p3, d3, heads[2], ffn_expansion)
        self.up43, self.reduce3 = _upsample(d3), nn.Conv2d(d2 + d3, d3, 1, bias=False)
        self.decoder3 = stack(d3, blocks[2], heads[2])

        self.prompt2 = PromptGenBlock(p2, prompt_len, max(prompt_size // 2, 1), d3)
        self.interact2 = PromptInteraction(d3, p2, d3, heads[1], ffn_expansion)
        self.up32, self.reduce2 = _upsample(d3), nn.Conv2d(d3, d2, 1, bias=False)
        self.decoder2 = stack(d2, blocks[1], heads[1])

        self.prompt1 = PromptGenBlock(p1, prompt_len, prompt_size, d2)
        self.interact1 = PromptInteraction(d2, p1, d2, heads[0], ffn_expansion)
        self.up21 = _upsample(d2)
        # As in the official model, level 1 of the decoder keeps the concatenated 2*width channels.
        self.decoder1 = stack(d2, blocks[0], heads[0])
        self.refinement = stack(d2, refinement_blocks, heads[0])
        self.output = nn.Conv2d(d2, 3, 3, padding=1, bias=False)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.encoder1(self.patch_embed(x))
        e2 = self.encoder2(self.down12(e1))
        e3 = self.encoder3(self.down23(e2))
        latent = self.latent(self.down34(e3))
        latent = self.interact3(latent, self.prompt3(latent))
        d3 = self.decoder3(self.reduce3(torch.cat([self.up43(latent), e3], dim=1)))
        d3 = self.interact2(d3, self.prompt2(d3))
        d2 = self.decoder2(self.reduce2(torch.cat([self.up32(d3), e2], dim=1)))
        d2 = self.interact1(d2, self.prompt1(d2))
        d1 = self.decoder1(torch.cat([self.up21(d2), e1], dim=1))
        return self.output(self.refinement(d1))


def default_prompt_dims(width: int) -> list[int]:
    """Official 64/128/320 at width 48, scaled and rounded to a multiple of 8 (so heads divide them)."""
    return [max(8, int(round(width * ratio / 8)) * 8) for ratio in (64 / 48, 128 / 48, 320 / 48)]


def build(cfg: dict[str, Any]) -> PromptIR:
    c = merge_config("promptir", DEFAULTS, cfg)
    width = int(c["width"])
    blocks = require_list("promptir", c, "blocks", length=4)
    heads = require_list("promptir", c, "heads", length=4)
    prompt_dims = default_prompt_dims(width) if c["prompt_dims"] is None else require_list(
        "promptir", c, "prompt_dims", length=3)
    for level, h in enumerate(heads):
        if h < 1 or (width * 2**level) % h:
            raise RestorerConfigError(f"promptir: heads[{level}]={h} does not divide {width * 2**level} channels "
                                      f"(width={width})")
    return PromptIR(width=width, in_channels=int(c["in_channels"]), blocks=blocks,
                    refinement_blocks=int(c["refinement_blocks"]), heads=heads,
                    ffn_expansion=float(c["ffn_expansion"]), prompt_len=int(c["prompt_len"]),
                    prompt_size=int(c["prompt_size"]), prompt_dims=prompt_dims)
