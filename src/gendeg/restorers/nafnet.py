"""NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022), re-implemented.

Follows the official `NAFNet_arch.py`: a U-Net of NAFBlocks (LayerNorm2d, depth-wise conv,
SimpleGate instead of activations, simplified channel attention, learnable residual scales
beta/gamma initialised at zero), stride-2 conv downsampling, 1x1 conv + PixelShuffle
upsampling, additive skips, global residual.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gendeg.restorers.common import LayerNorm2d, ResidualRestorer, merge_config, require_list

# Every setting but `width` (common.REQUIRED: params.yaml states it).  These values are the CPU default
# (0.44M parameters at width 16); the `paper` preset of params.yaml sets the published NAFNet-width32.
DEFAULTS: dict[str, Any] = {
    "in_channels": 3,  # 6 for structure correction ([clean, generated]); residual goes to the last 3
    "enc_blocks": [1, 1, 2],  # NAFBlocks per encoder level (one 2x downsampling per level)
    "middle_blocks": 2,  # NAFBlocks at the bottleneck
    "dec_blocks": [1, 1, 1],  # NAFBlocks per decoder level, same length as enc_blocks
    "dw_expand": 2,  # channel expansion of the depth-wise conv branch
    "ffn_expand": 2,  # channel expansion of the feed-forward branch
}


class SimpleGate(nn.Module):
    """Split channels in two halves and multiply them: the non-linearity NAFNet uses instead of GELU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    def __init__(self, channels: int, dw_expand: int, ffn_expand: int) -> None:
        super().__init__()
        dw = channels * dw_expand
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.gate = SimpleGate()
        # Simplified channel attention: global pooling + 1x1 conv, no activation.
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv3 = nn.Conv2d(dw // 2, channels, 1)
        ffn = channels * ffn_expand
        self.norm2 = LayerNorm2d(channels)
        self.conv4 = nn.Conv2d(channels, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.conv2(self.conv1(self.norm1(x))))
        y = self.conv3(y * self.sca(y))
        x = x + y * self.beta
        y = self.conv5(self.gate(self.conv4(self.norm2(x))))
        return x + y * self.gamma


class NAFNet(ResidualRestorer):
    def __init__(self, width: int, in_channels: int, enc_blocks: list[int], middle_blocks: int,
                 dec_blocks: list[int], dw_expand: int, ffn_expand: int) -> None:
        super().__init__()
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError(f"NAFNet: enc_blocks {list(enc_blocks)} and dec_blocks {list(dec_blocks)} differ in length")
        self.in_channels = in_channels
        self.size_multiple = 2 ** len(enc_blocks)
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.ending = nn.Conv2d(width, 3, 3, padding=1)
        block = lambda c, n: nn.Sequential(*[NAFBlock(c, dw_expand, ffn_expand) for _ in range(n)])  # noqa: E731
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        channels = width
        for n in enc_blocks:
            self.encoders.append(block(channels, n))
            self.downs.append(nn.Conv2d(channels, 2 * channels, 2, stride=2))
            channels *= 2
        self.middle = block(channels, middle_blocks)
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for n in dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(channels, 2 * channels, 1, bias=False), nn.PixelShuffle(2)))
            channels //= 2
            self.decoders.append(block(channels, n))

    def body(self, x: torch.Tensor) -> torch.Tensor:
        x = self.intro(x)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=False):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=False):
            x = decoder(up(x) + skip)
        return self.ending(x)


def build(cfg: dict[str, Any]) -> NAFNet:
    c = merge_config("nafnet", DEFAULTS, cfg)
    enc = require_list("nafnet", c, "enc_blocks")
    dec = require_list("nafnet", c, "dec_blocks", length=len(enc))
    return NAFNet(width=int(c["width"]), in_channels=int(c["in_channels"]), enc_blocks=enc,
                  middle_blocks=int(c["middle_blocks"]), dec_blocks=dec, dw_expand=int(c["dw_expand"]),
                  ffn_expand=int(c["ffn_expand"]))
