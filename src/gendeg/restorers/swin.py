"""Swin-Transformer encoder + convolutional U-Net decoder (the paper's third restorer).

The encoder is a compact Swin Transformer (Liu et al., ICCV 2021): patch embedding, stages
of window attention with relative position bias, every second block on cyclically shifted
windows with the attention mask of the official code, patch merging between stages.  The
decoder is a plain conv U-Net: upsample, concat the encoder skip, two 3x3 convs; a
full-resolution conv stem supplies the finest skip so details lost by patch embedding can
be restored.

`pretrained_path` points at local safetensors weights for `encoder` (keys as in
`SwinRestorer.encoder.state_dict()`); they are loaded with a strict key and shape check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from gendeg.restorers.common import ResidualRestorer, RestorerConfigError, merge_config, require_list

# Every setting but `width` (common.REQUIRED: params.yaml states it).  These values are the CPU default
# (0.34M parameters at width 24); the `paper` preset of params.yaml sets a Swin-T encoder with window 8
# (Swin-T: 7; 8 tiles power-of-two crops).
DEFAULTS: dict[str, Any] = {
    "in_channels": 3,
    "patch_size": 2,  # patch embedding stride (power of two)
    "depths": [2, 2, 2],  # Swin blocks per stage (pairs of regular + shifted windows)
    "heads": [2, 4, 8],  # attention heads per stage
    "window_size": 8,
    "mlp_ratio": 2.0,
    "decoder_blocks": 1,  # residual 3x3 conv pairs per decoder level
    "pretrained_path": None,  # local safetensors with encoder weights, or None
}


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """B x H x W x C -> (B * nWindows) x window^2 x C."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.view(b, h // window, w // window, window, window, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


def shifted_window_mask(h: int, w: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """nWindows x N x N additive mask: tokens that were not neighbours before the cyclic shift never attend."""
    region = torch.zeros(h, w, device=device)
    label = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            region[hs, ws] = label
            label += 1
    ids = window_partition(region.view(1, h, w, 1), window).squeeze(-1)  # nW x N
    different = ids.unsqueeze(1) != ids.unsqueeze(2)
    return torch.zeros(different.shape, device=device).masked_fill(different, -100.0)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        if dim % heads:
            raise RestorerConfigError(f"swin: {dim} channels do not split into {heads} heads")
        self.heads, self.window = heads, window
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * window - 1) + rel[..., 1],
                             persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, self.heads).permute(2, 0, 1)
        attn = (q * self.scale) @ k.transpose(-2, -1) + bias
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.heads, n, n) + mask[None, :, None]
            attn = attn.view(bw, self.heads, n, n)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shifted: bool, mlp_ratio: float) -> None:
        super().__init__()
        self.window, self.shift = window, (window // 2 if shifted else 0)
        self.norm1, self.attn = nn.LayerNorm(dim), WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: B x H x W x C (channels last); any H, W (padded to whole windows, as in the official code)."""
        b, h, w, c = x.shape
        y = self.norm1(x)
        y = F.pad(y, (0, 0, 0, (-w) % self.window, 0, (-h) % self.window))
        hp, wp = y.shape[1:3]
        mask = None
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
            mask = shifted_window_mask(hp, wp, self.window, self.shift, y.device)
        y = window_reverse(self.attn(window_partition(y, self.window), mask), self.window, hp, wp)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y[:, :h, :w]
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbourhood -> one token: halves H, W and doubles channels."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class SwinEncoder(nn.Module):
    """Returns one BxCxHxW feature map per stage (after a LayerNorm), finest first."""

    def __init__(self, in_channels: int, width: int, patch_size: int, depths: list[int], heads: list[int],
                 window: int, mlp_ratio: float) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(in_channels, width, patch_size, stride=patch_size)
        self.patch_norm = nn.LayerNorm(width)
        self.stages, self.norms, self.merges = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        dim = width
        for i, (depth, h) in enumerate(zip(depths, heads, strict=False)):
            self.stages.append(nn.Sequential(*[SwinBlock(dim, h, window, j % 2 == 1, mlp_ratio) for j in range(depth)]))
            self.norms.append(nn.LayerNorm(dim))
            if i < len(depths) - 1:
                self.merges.append(PatchMerging(dim))
                dim *= 2
        self.dims = [width * 2**i for i in range(len(depths))]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_norm(self.patch_embed(x).permute(0, 2, 3, 1))
        features = []
        for i, (stage, norm) in enumerate(zip(self.stages, self.norms, strict=False)):
            x = stage(x)
            features.append(norm(x).permute(0, 3, 1, 2).contiguous())
            if i < len(self.merges):
                x = self.merges[i](x)
        return features


class ConvBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, residual_pairs: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_ch, out_ch, 1)
        self.pairs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.GELU(), nn.Conv2d(out_ch, out_ch, 3, padding=1))
            for _ in range(residual_pairs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(x)
        for pair in self.pairs:
            x = x + pair(x)
        return x


class SwinRestorer(ResidualRestorer):
    def __init__(self, width: int, in_channels: int, patch_size: int, depths: list[int], heads: list[int],
                 window_size: int, mlp_ratio: float, decoder_blocks: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.size_multiple = patch_size * 2 ** (len(depths) - 1)
        self.encoder = SwinEncoder(in_channels, width, patch_size, depths, heads, window_size, mlp_ratio)
        dims = self.encoder.dims
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for deep, shallow in zip(dims[:0:-1], dims[-2::-1], strict=False):
            self.ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                          nn.Conv2d(deep, shallow, 3, padding=1)))
            self.decoders.append(ConvBlock(2 * shallow, shallow, decoder_blocks))
        stem_ch = max(width // 2, 8)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_ch, 3, padding=1), nn.GELU())
        self.to_full = nn.Sequential(nn.Upsample(scale_factor=patch_size, mode="bilinear", align_corners=False),
                                     nn.Conv2d(dims[0], stem_ch, 3, padding=1))
        self.full_decoder = ConvBlock(2 * stem_ch, stem_ch, decoder_blocks)
        self.output = nn.Conv2d(stem_ch, 3, 3, padding=1)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        y = features[-1]
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(features[:-1]), strict=False):
            y = decoder(torch.cat([up(y), skip], dim=1))
        y = self.full_decoder(torch.cat([self.to_full(y), self.stem(x)], dim=1))
        return self.output(y)


def load_encoder_weights(encoder: SwinEncoder, path: str | Path) -> None:
    """Strictly load safetensors weights into the encoder; mismatches name every offending key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"swin: pretrained_path {str(path)!r} does not exist")
    weights = load_file(str(path))
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = sorted(f"{k}: file {tuple(weights[k].shape)} vs model {tuple(v.shape)}"
                   for k, v in expected.items() if k in weights and weights[k].shape != v.shape)
    if missing or unexpected or wrong:
        raise RestorerConfigError(f"swin: encoder weights in {str(path)!r} do not fit this config: "
                                  f"missing {missing[:10]}, unexpected {unexpected[:10]}, shape mismatch {wrong[:10]}")
    encoder.load_state_dict(weights, strict=True)


def build(cfg: dict[str, Any]) -> SwinRestorer:
    c = merge_config("swin", DEFAULTS, cfg)
    depths = require_list("swin", c, "depths")
    heads = require_list("swin", c, "heads", length=len(depths))
    patch = int(c["patch_size"])
    if patch < 1 or patch & (patch - 1):
        raise RestorerConfigError(f"swin: patch_size must be a power of two, got {patch}")
    width = int(c["width"])
    for i, h in enumerate(heads):
        if h < 1 or (width * 2**i) % h:
            raise RestorerConfigError(f"swin: heads[{i}]={h} does not divide {width * 2**i} channels (width={width})")
    model = SwinRestorer(width=width, in_channels=int(c["in_channels"]), patch_size=patch, depths=depths,
                         heads=heads, window_size=int(c["window_size"]), mlp_ratio=float(c["mlp_ratio"]),
                         decoder_blocks=int(c["decoder_blocks"]))
    if c["pretrained_path"]:
        load_encoder_weights(model.encoder, c["pretrained_path"])
    return model
