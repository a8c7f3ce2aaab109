"""GenDegModel: a conditional latent-diffusion UNet that turns a clean image into a degraded one.

The clean image's latent is concatenated to the noisy latent (InstructPix2Pix), the
degradation type and the intensity (mu, sigma) come in through one of the two routes of
`conditioning.py`.  With ``residual: true`` the diffused quantity is
latent(degraded) - latent(clean) (times ``residual_scale``) and the clean latent is added
back after sampling: the network only has to learn *what changes*, which the probe found
is what makes intensity control learnable in minutes on a CPU.

Checkpoints are a ``config.json`` plus a ``model.safetensors``; nothing is pickled.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Iterator

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from torch import nn

from gendeg.atomic import atomic_dir
from gendeg.diffusion.codecs import build_codec
from gendeg.diffusion.conditioning import (
    ENCODINGS,
    NULL_DEGRADATION,
    ROUTES,
    CrossAttentionIntensity,
    DegradationTokens,
    TimeEmbeddingIntensity,
    encode_intensity,
)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

# The CPU default (chosen by benchmarks/gendeg_tuning.py; see its JSON for the figures).
DEFAULT_CONFIG: dict = {
    # Latent codec: pixel_unshuffle(4) -> 64x64x3 image = 16x16x48 latent.
    "codec": {"type": "pixel_unshuffle", "factor": 4},
    "unet": {
        # null, or a local diffusers model folder whose "unet" subfolder is loaded and
        # its conv_in widened to take the image latent (new input weights zero).
        "pretrained": None,
        "block_out_channels": [32, 64],
        "layers_per_block": 1,
        "attention_levels": [False, True],  # cross-attention only at the coarse level
        "cross_attention_dim": 64,  # = token dim of the tiny degradation-type tokens
        "attention_head_dim": 32,
        "norm_num_groups": 16,
    },
    "n_tokens": 4,  # text tokens per degradation type (tiny preset; CLIP uses 77)
    "class_embedding_dim": 128,  # time_embedding route: width of the type+mu+sigma vector
    "route": "time_embedding",  # or "cross_attention" (the paper's)
    "intensity_encoding": "smoothed",  # or "onehot" (the paper's)
    "smoothing_bins": 4.0,  # std, in bins, of the smoothed encoding
    "prediction_type": "v_prediction",  # or "epsilon" (the paper's)
    "residual": True,  # diffuse latent(degraded) - latent(clean)
    "residual_scale": 3.0,  # residual x3 fills the unit noise scale; sampling errors shrink 3x on the way back
    "noise_schedule": {
        "num_train_timesteps": 1000,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "beta_end": 0.012,
    },
}


def merge_config(overrides: dict | None) -> dict:
    """DEFAULT_CONFIG updated with `overrides` (nested dicts merged one level deep); unknown keys are errors."""
    config = copy.deepcopy(DEFAULT_CONFIG)
    for key, value in (overrides or {}).items():
        if key not in config:
            raise KeyError(f"unknown GenDeg model config key {key!r}; known: {sorted(config)}")
        if isinstance(config[key], dict) and isinstance(value, dict) and key != "codec":
            config[key].update(value)
        else:
            config[key] = copy.deepcopy(value)
    if config["route"] not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {config['route']!r}")
    if config["intensity_encoding"] not in ENCODINGS:
        raise ValueError(f"intensity_encoding must be one of {ENCODINGS}, got {config['intensity_encoding']!r}")
    if config["prediction_type"] not in ("epsilon", "v_prediction"):
        raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {config['prediction_type']!r}")
    return config


def widen_conv_in(unet: UNet2DConditionModel, in_channels: int) -> UNet2DConditionModel:
    """Give a pretrained UNet extra input channels whose weights start at zero (InstructPix2Pix)."""
    old = unet.conv_in
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet


def build_unet(unet_config: dict, latent_channels: int, class_dim: int | None, load_weights: bool = True) -> UNet2DConditionModel:
    if unet_config.get("pretrained"):
        path = unet_config["pretrained"]
        if load_weights:
            unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", local_files_only=True)
        else:  # from_pretrained of a GenDeg checkpoint: the weights come from model.safetensors
            unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(path, subfolder="unet"))
        return widen_conv_in(unet, 2 * latent_channels)
    levels = list(unet_config["attention_levels"])
    channels = list(unet_config["block_out_channels"])
    if len(levels) != len(channels):
        raise ValueError(f"unet.attention_levels {levels} and unet.block_out_channels {channels} differ in length")
    return UNet2DConditionModel(
        in_channels=2 * latent_channels,
        out_channels=latent_channels,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in levels),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels)),
        block_out_channels=tuple(channels),
        layers_per_block=unet_config["layers_per_block"],
        cross_attention_dim=unet_config["cross_attention_dim"],
        attention_head_dim=unet_config["attention_head_dim"],
        norm_num_groups=unet_config["norm_num_groups"],
        class_embed_type="projection" if class_dim else None,
        projection_class_embeddings_input_dim=class_dim,
    )


class GenDegModel(nn.Module):
    """Codec + degradation tokens + intensity conditioner + UNet, built from one config dict."""

    def __init__(self, config: dict, load_pretrained: bool = True):
        super().__init__()
        self.config = merge_config(config)
        cfg = self.config
        self.codec = build_codec(cfg["codec"])
        channels = self.codec.latent_channels
        dim = cfg["unet"]["cross_attention_dim"]
        self.degradation_tokens = DegradationTokens(cfg["n_tokens"], dim)
        if cfg["route"] == "cross_attention":
            self.intensity = CrossAttentionIntensity(cfg["n_tokens"], dim)
            class_dim = None
        else:
            class_dim = cfg["class_embedding_dim"]
            self.intensity = TimeEmbeddingIntensity(class_dim)
        self.unet = build_unet(cfg["unet"], channels, class_dim, load_weights=load_pretrained)

    @classmethod
    def from_config(cls, config: dict | None = None) -> "GenDegModel":
        return cls(config or {})

    # -- parameters -------------------------------------------------------------------
    def projection_parameters(self) -> list[nn.Parameter]:
        """The intensity projections, which the paper trains at 10x the learning rate."""
        if isinstance(self.intensity, CrossAttentionIntensity):
            modules = [self.intensity.intensity_projection, self.intensity.context_projection]
        else:
            modules = [self.intensity.mu_projection, self.intensity.sigma_projection]
        return [p for m in modules for p in m.parameters()]

    def main_parameters(self) -> list[nn.Parameter]:
        """Every trainable parameter that is not a projection (the frozen codec is excluded)."""
        projection = {id(p) for p in self.projection_parameters()}
        return [p for p in self.trainable_parameters() if id(p) not in projection]

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return (p for name, p in self.named_parameters() if not name.startswith("codec.") and p.requires_grad)

    def noise_scheduler(self) -> DDPMScheduler:
        """The training noise schedule; samplers are built from its config."""
        return DDPMScheduler(**self.config["noise_schedule"], prediction_type=self.config["prediction_type"])

    # -- latents ----------------------------------------------------------------------
    def diffusion_target(self, clean_latents: torch.Tensor, degraded_latents: torch.Tensor) -> torch.Tensor:
        """The clean-sample x0 the diffusion learns: the degraded latent, or its residual."""
        if self.config["residual"]:
            return (degraded_latents - clean_latents) * self.config["residual_scale"]
        return degraded_latents

    def degraded_latents(self, x0: torch.Tensor, clean_latents: torch.Tensor) -> torch.Tensor:
        """Inverse of `diffusion_target`."""
        if self.config["residual"]:
            return clean_latents + x0 / self.config["residual_scale"]
        return x0

    # -- the network ------------------------------------------------------------------
    def forward(
        self,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        image_latents: torch.Tensor,
        degradation_ids: torch.Tensor,
        mu: torch.Tensor,
        sigma: torch.Tensor,
        drop_text: torch.Tensor,
        drop_image: torch.Tensor,
        tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One UNet evaluation.  `drop_text` nulls the type and the intensity together (the
        paper never keeps mu/sigma without text); `drop_image` zeroes the image latent.
        `tokens` (B, T, dim) replaces the tiny learned type tokens (e.g. CLIP embeddings)."""
        degradation_ids = torch.where(drop_text, torch.full_like(degradation_ids, NULL_DEGRADATION), degradation_ids)
        mu_code, sigma_code = encode_intensity(
            mu, sigma, drop_text, self.config["intensity_encoding"], self.config["smoothing_bins"]
        )
        if tokens is None:
            tokens = self.degradation_tokens(degradation_ids)
        image_latents = torch.where(drop_image[:, None, None, None], torch.zeros_like(image_latents), image_latents)
        if isinstance(self.intensity, CrossAttentionIntensity):
            context, class_labels = self.intensity(tokens, mu_code, sigma_code), None
        else:
            context, class_labels = tokens, self.intensity(degradation_ids, mu_code, sigma_code)
        model_input = torch.cat([noisy, image_latents], dim=1)
        return self.unet(model_input, timesteps, encoder_hidden_states=context, class_labels=class_labels).sample

    # -- checkpoints ------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """config.json + model.safetensors, written atomically (the frozen codec stays where it was loaded from)."""
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items() if not k.startswith("codec.")}
        with atomic_dir(directory) as tmp:
            (tmp / CONFIG_FILE).write_text(json.dumps(self.config, indent=2, sort_keys=True) + "\n")
            save_file(state, str(tmp / WEIGHTS_FILE))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "GenDegModel":
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"GenDeg checkpoint is missing {path}")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{config_path} is not valid JSON: {error}") from error
        model = cls(config, load_pretrained=False)
        state = load_file(str(weights_path))
        expected = {k for k in model.state_dict() if not k.startswith("codec.")}
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise ValueError(
                f"{weights_path} does not match {config_path}: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as error:
            raise ValueError(f"{weights_path} does not match {config_path}: {error}") from error
        return model
