"""GenDegModel: a conditional latent-diffusion UNet that turns a clean image into a degraded one.

The clean image's latent is concatenated to the noisy latent (InstructPix2Pix), the
degradation type and the intensity (mu, sigma) come in through one of the two routes of
`conditioning.py`.  With ``residual: true`` the diffused quantity is
latent(degraded) - latent(clean) (times ``residual_scale``) and the clean latent is added
back after sampling: the network only has to learn *what changes*, which the probe found
is what makes intensity control learnable in minutes on a CPU.

Text: the tiny preset learns a few tokens per degradation type (``text_encoder: learned``);
the paper preset (``text_encoder: clip``) embeds "<caption>, <degradation phrase>" with
Stable Diffusion's frozen CLIP text encoder (`text.py`).  ``auto`` (the default) picks CLIP
exactly when ``unet.pretrained`` names a Stable Diffusion folder, so one path is all a user
sets: the UNet, the VAE (``codec: {type: autoencoder_kl}`` without a path) and CLIP all
come from it.

Checkpoints are a ``config.json`` plus a ``model.safetensors``; nothing is pickled.  The
frozen VAE and CLIP are never copied into them: the config records the folder they came
from and `from_pretrained` reloads them from there.

One statement per setting: the keys params.yaml's ``gendeg.model`` sets for every preset
(REQUIRED) have no default here, and a config without one is an error that names it; outside
the pipeline take them from ``gendeg.pipeline.config.load_params()["gendeg"]["model"]``.  Every
other key has its one value in DEFAULT_CONFIG or OPTIONAL_DEFAULTS.  Those stay in code, not in
workflow/schemas/params.schema.yaml: the schema only validates (gendeg.pipeline.config applies
no ``default:``), and stating them in params.yaml would change resolved_params/train_gendeg.json
and so re-run GenDeg and everything after it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from diffusers.models.embeddings import TimestepEmbedding
from safetensors.torch import load_file, save_file
from torch import nn

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
from gendeg.diffusion.text import ClipPromptEncoder, build_prompts, require_folder
from gendeg.runtime.atomic import atomic_dir

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# What the UNet predicts: the noise (paper), the velocity, or x0 itself ("sample", the CPU default: the
# output need not reproduce the noise it sees, which a UNet narrower than its latent cannot do; with
# v/epsilon the tiny model's samples kept that noise).
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")

# Set by params.yaml's gendeg.model in every preset, the one place their values are stated:
#   route: "time_embedding" (CPU default) | "cross_attention" (the paper's), see conditioning.ROUTES;
#   intensity_encoding: "smoothed" | "onehot" (the paper's); prediction_type: one of PREDICTION_TYPES;
#   residual: diffuse latent(degraded) - latent(clean), times residual_scale (REQUIRED_WITH_RESIDUAL: a
#   factor that makes the residual fill the unit noise scale shrinks sampling errors as much on the way back).
REQUIRED = ("route", "intensity_encoding", "prediction_type", "residual")
REQUIRED_WITH_RESIDUAL = ("residual_scale",)

# The CPU default of every other key; why each choice, with its measurements and result files: docs/design.md.
DEFAULT_CONFIG: dict = {
    # Latent codec: pixel_unshuffle(2) -> 64x64x3 image = 32x32x12 latent.  Factor 4 (16x16x48)
    # is cheaper per step but leaves a visible 4x4 grid in the samples.
    "codec": {"type": "pixel_unshuffle", "factor": 2},
    "unet": {
        # null, or a local diffusers model folder whose "unet" subfolder is loaded and
        # its conv_in widened to take the image latent (new input weights zero).
        "pretrained": None,
        "block_out_channels": [16, 32, 64],
        "layers_per_block": 1,
        "attention_levels": [False, False, True],  # cross-attention only at the coarsest level
        "cross_attention_dim": 64,  # = token dim of the tiny degradation-type tokens
        "attention_head_dim": 32,
        "norm_num_groups": 8,
    },
    # auto: "clip" when unet.pretrained is set, else "learned" (n_tokens learned tokens per
    # degradation type).  clip: {"type": "clip", "path": <SD folder, default unet.pretrained>,
    # "subfolder": "text_encoder", "tokenizer_subfolder": "tokenizer"}.
    "text_encoder": {"type": "auto"},
    "n_tokens": 4,  # learned text tokens per degradation type (CLIP uses the tokenizer's 77)
    "class_embedding_dim": 128,  # time_embedding route: width of the type+mu+sigma vector
    "smoothing_bins": 4.0,  # std, in bins, of the smoothed encoding
    "noise_schedule": {
        "num_train_timesteps": 1000,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "beta_end": 0.012,
    },
}


# A copy of params.yaml's presets.paper.gendeg.model for benchmarks/gpu_throughput.py (tests/pipeline/test_paper_preset.py
# checks the two agree); to go once that benchmark reads the preset as benchmarks/gpu_mfu.py does.
SD_FOLDER_PLACEHOLDER = "/path/to/stable-diffusion-v1-5"
PAPER_CONFIG: dict = {
    "unet": {"pretrained": SD_FOLDER_PLACEHOLDER},
    "codec": {"type": "autoencoder_kl", "subfolder": "vae", "condition_latent": "unscaled"},
    "text_encoder": {"type": "clip"},
    "route": "cross_attention",
    "intensity_encoding": "onehot",
    "prediction_type": "epsilon",
    "residual": False,
    "intensity_columns_init": "default",
}

# Keys a config may set that are left out of DEFAULT_CONFIG, so the configs (and config.json
# bytes) of models that do not set them stay as they were; the value here is what they mean.
OPTIONAL_DEFAULTS: dict = {
    # cross_attention route: how the two (mu, sigma) input columns of the (dim + 2) -> dim context
    # projection start: "zero" (the context is exactly the text at step 0) or "default"
    # (PyTorch's Linear init, which the released code leaves them at: ddpm_edit.py L495-499).
    "intensity_columns_init": "zero",
}
INTENSITY_COLUMNS_INITS = ("zero", "default")


def merge_config(overrides: dict | None) -> dict:
    """DEFAULT_CONFIG updated with `overrides` (nested dicts merged one level deep); unknown keys are errors,
    and so are missing REQUIRED ones."""
    config = copy.deepcopy(DEFAULT_CONFIG)
    known = {*config, *OPTIONAL_DEFAULTS, *REQUIRED, *REQUIRED_WITH_RESIDUAL}
    for key, value in (overrides or {}).items():
        if key not in known:
            raise KeyError(f"unknown GenDeg model config key {key!r}; known: {sorted(known)}")
        if isinstance(config.get(key), dict) and isinstance(value, dict) and key not in ("codec", "text_encoder"):
            config[key].update(value)
        else:
            config[key] = copy.deepcopy(value)
    missing = [key for key in REQUIRED if key not in config]
    missing += [key for key in REQUIRED_WITH_RESIDUAL if config.get("residual") and key not in config]
    if missing:
        raise KeyError(f"GenDeg model config: missing key(s) {missing} (no default: params.yaml states them under "
                       f"gendeg.model)")
    _resolve_pretrained_paths(config)
    if config["route"] not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {config['route']!r}")
    if config["intensity_encoding"] not in ENCODINGS:
        raise ValueError(f"intensity_encoding must be one of {ENCODINGS}, got {config['intensity_encoding']!r}")
    columns = config.get("intensity_columns_init", OPTIONAL_DEFAULTS["intensity_columns_init"])
    if columns not in INTENSITY_COLUMNS_INITS:
        raise ValueError(f"intensity_columns_init must be one of {INTENSITY_COLUMNS_INITS}, got {columns!r}")
    if config["prediction_type"] not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {config['prediction_type']!r}")
    return config


TEXT_ENCODERS = ("auto", "learned", "clip")


def _resolve_pretrained_paths(config: dict) -> None:
    """Fill the VAE and CLIP folders from ``unet.pretrained`` and resolve ``text_encoder: auto``,
    so a saved config names every folder a checkpoint needs."""
    base = config["unet"].get("pretrained")
    text = config["text_encoder"]
    if isinstance(text, str):
        text = {"type": text}
    if not isinstance(text, dict) or text.get("type") not in TEXT_ENCODERS:
        raise ValueError(f"text_encoder.type must be one of {TEXT_ENCODERS}, got {text!r}")
    text = dict(text)
    if text["type"] == "auto":
        text["type"] = "clip" if base else "learned"
    if text["type"] == "clip":
        text.setdefault("path", None)
        text["path"] = str(text["path"] or base or "")
        if not text["path"]:
            raise ValueError("text_encoder.path is required for text_encoder.type 'clip' (or set unet.pretrained)")
        text.setdefault("subfolder", "text_encoder")
        text.setdefault("tokenizer_subfolder", "tokenizer")
    config["text_encoder"] = text
    codec = config["codec"]
    if isinstance(codec, dict) and codec.get("type") == "autoencoder_kl":
        codec = dict(codec)
        codec["path"] = str(codec.get("path") or base or "")
        if not codec["path"]:
            raise ValueError("codec.path is required for codec.type 'autoencoder_kl' (or set unet.pretrained)")
        codec.setdefault("subfolder", "vae")
        codec.setdefault("scaling_factor", None)  # None: the VAE config's (0.18215 for SD v1.5)
        codec.setdefault("condition_latent", "unscaled")  # the concatenated clean latent, as InstructPix2Pix
        config["codec"] = codec


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


def add_class_projection(unet: UNet2DConditionModel, class_dim: int) -> UNet2DConditionModel:
    """Give a pretrained UNet a ``projection`` class embedding (time_embedding route) that starts
    as a no-op: its output layer is zero, so the pretrained network is unchanged at step 0."""
    time_dim = unet.time_embedding.linear_2.out_features
    unet.class_embedding = TimestepEmbedding(class_dim, time_dim, act_fn=unet.config.act_fn)
    with torch.no_grad():
        unet.class_embedding.linear_2.weight.zero_()
        unet.class_embedding.linear_2.bias.zero_()
    unet.register_to_config(class_embed_type="projection", projection_class_embeddings_input_dim=class_dim)
    return unet


def unet_token_dim(unet_config: dict) -> int:
    """The width of the UNet's cross-attention tokens (768 for SD v1.5), without building it."""
    if unet_config.get("pretrained"):
        path = unet_config["pretrained"]
        require_folder(path, "unet", "UNet", "unet.pretrained")
        return int(UNet2DConditionModel.load_config(path, subfolder="unet", local_files_only=True)["cross_attention_dim"])
    return int(unet_config["cross_attention_dim"])


def build_unet(unet_config: dict, latent_channels: int, class_dim: int | None, load_weights: bool = True) -> UNet2DConditionModel:
    if unet_config.get("pretrained"):
        path = unet_config["pretrained"]
        require_folder(path, "unet", "UNet", "unet.pretrained")
        if load_weights:
            unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", local_files_only=True)
        else:  # from_pretrained of a GenDeg checkpoint: the weights come from model.safetensors
            unet = UNet2DConditionModel.from_config(
                UNet2DConditionModel.load_config(path, subfolder="unet", local_files_only=True))
        if unet.config.in_channels != latent_channels:
            raise ValueError(f"unet.pretrained: {path}/unet takes {unet.config.in_channels} channels but the codec "
                             f"makes {latent_channels}-channel latents")
        if class_dim:
            add_class_projection(unet, class_dim)
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
    """Codec + text tokens (learned or CLIP) + intensity conditioner + UNet, built from one config dict.

    Frozen modules (the codec, CLIP) live under `FROZEN_PREFIXES` and are never saved.
    """

    FROZEN_PREFIXES = ("codec.", "prompt_encoder.")

    def __init__(self, config: dict, load_pretrained: bool = True):
        super().__init__()
        self.config = merge_config(config)
        cfg = self.config
        base = cfg["unet"].get("pretrained")
        if base and not Path(base).is_dir():
            raise FileNotFoundError(f"unet.pretrained: {base!r} is not a folder (set it to a local Stable Diffusion "
                                    f"v1.5 folder in diffusers layout: unet/, vae/, text_encoder/, tokenizer/)")
        self.codec = build_codec(cfg["codec"])
        channels = self.codec.latent_channels
        class_dim = None if cfg["route"] == "cross_attention" else cfg["class_embedding_dim"]
        dim = unet_token_dim(cfg["unet"])
        text = cfg["text_encoder"]
        if text["type"] == "clip":
            self.prompt_encoder = ClipPromptEncoder.from_pretrained(
                text["path"], text["subfolder"], text["tokenizer_subfolder"]
            )
            if self.prompt_encoder.dim != dim:
                raise ValueError(f"text_encoder: {text['path']}/{text['subfolder']} gives {self.prompt_encoder.dim}-dim "
                                 f"tokens but the UNet's cross_attention_dim is {dim}")
            self.degradation_tokens, n_tokens = None, self.prompt_encoder.n_tokens
        else:
            self.prompt_encoder, n_tokens = None, cfg["n_tokens"]
            self.degradation_tokens = DegradationTokens(n_tokens, dim)
        if cfg["route"] == "cross_attention":
            self.intensity = CrossAttentionIntensity(
                n_tokens, dim, cfg.get("intensity_columns_init", OPTIONAL_DEFAULTS["intensity_columns_init"]))
        else:
            self.intensity = TimeEmbeddingIntensity(class_dim)
        # Built last, as before CLIP existed: the tiny preset's initial weights stay the same per seed.
        self.unet = build_unet(cfg["unet"], channels, class_dim, load_weights=load_pretrained)

    @classmethod
    def from_config(cls, config: dict | None = None) -> GenDegModel:
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
        """Every trainable parameter that is not a projection (the frozen codec and CLIP are excluded)."""
        projection = {id(p) for p in self.projection_parameters()}
        return [p for p in self.trainable_parameters() if id(p) not in projection]

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return (p for name, p in self.named_parameters() if not name.startswith(self.FROZEN_PREFIXES) and p.requires_grad)

    # -- text ---------------------------------------------------------------------------
    def text_tokens(
        self, degradation_ids: torch.Tensor, drop_text: torch.Tensor, captions: Sequence[object] | None = None
    ) -> torch.Tensor:
        """(B, T, dim) text tokens: CLIP("<caption>, <phrase>") or the learned type tokens; rows
        where `drop_text` is True get the null prompt (CLIP "") or the null type entry.
        `captions` is ignored by the learned tokens (they know only the degradation type)."""
        if self.prompt_encoder is not None:
            tokens = self.prompt_encoder(build_prompts(degradation_ids, captions, drop_text))
            return tokens.to(self.unet.device)
        ids = torch.where(drop_text, torch.full_like(degradation_ids, NULL_DEGRADATION), degradation_ids)
        return self.degradation_tokens(ids)

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
        captions: Sequence[object] | None = None,
    ) -> torch.Tensor:
        """One UNet evaluation.  `drop_text` nulls the text and the intensity together (the
        paper never keeps mu/sigma without text); `drop_image` zeroes the image latent.
        `tokens` (B, T, dim), from `text_tokens` with the same `drop_text`, saves re-encoding
        the prompts at every sampling step; without it they come from `captions`."""
        mu_code, sigma_code = encode_intensity(
            mu, sigma, drop_text, self.config["intensity_encoding"], self.config["smoothing_bins"]
        )
        if tokens is None:
            tokens = self.text_tokens(degradation_ids, drop_text, captions)
        degradation_ids = torch.where(drop_text, torch.full_like(degradation_ids, NULL_DEGRADATION), degradation_ids)
        if self.codec.condition_scale != 1.0:  # the VAE's unscaled posterior mode (codec.condition_latent)
            image_latents = image_latents * self.codec.condition_scale
        image_latents = torch.where(drop_image[:, None, None, None], torch.zeros_like(image_latents), image_latents)
        if isinstance(self.intensity, CrossAttentionIntensity):
            context, class_labels = self.intensity(tokens, mu_code, sigma_code), None
        else:
            context, class_labels = tokens, self.intensity(degradation_ids, mu_code, sigma_code)
        model_input = torch.cat([noisy, image_latents], dim=1)
        return self.unet(model_input, timesteps, encoder_hidden_states=context, class_labels=class_labels).sample

    # -- checkpoints ------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """config.json + model.safetensors, written atomically; the frozen codec and CLIP stay in
        the folders the config names."""
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()
                 if not k.startswith(self.FROZEN_PREFIXES)}
        with atomic_dir(directory) as tmp:
            (tmp / CONFIG_FILE).write_text(json.dumps(self.config, indent=2, sort_keys=True) + "\n")
            save_file(state, str(tmp / WEIGHTS_FILE))

    @classmethod
    def from_pretrained(cls, directory: str | Path, base_model: str | Path | None = None) -> GenDegModel:
        """Load a checkpoint.  A paper-preset checkpoint reloads the frozen VAE and CLIP (and the
        UNet architecture) from the Stable Diffusion folder its config.json records; when that
        folder has moved (another machine), `base_model` names where it is now."""
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"GenDeg checkpoint is missing {path}")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{config_path} is not valid JSON: {error}") from error
        if base_model is not None:
            config = relocate_base_model(config, str(base_model))
        codec = config.get("codec")
        if isinstance(codec, dict) and codec.get("type") == "autoencoder_kl" and "condition_latent" not in codec:
            codec["condition_latent"] = "scaled"  # saved before the setting existed: trained on the scaled latent
        try:
            model = cls(config, load_pretrained=False)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{config_path} needs a Stable Diffusion folder that is missing: {error} "
                                    f"(pass base_model= to from_pretrained if it has moved)") from error
        state = load_file(str(weights_path))
        expected = {k for k in model.state_dict() if not k.startswith(cls.FROZEN_PREFIXES)}
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


def relocate_base_model(config: dict, base_model: str) -> dict:
    """`config` with every folder that was the recorded ``unet.pretrained`` replaced by `base_model`."""
    config = copy.deepcopy(config)
    old = (config.get("unet") or {}).get("pretrained")
    if not old:
        raise ValueError("base_model given, but the checkpoint's config has no unet.pretrained to relocate")
    config["unet"]["pretrained"] = base_model
    for key in ("codec", "text_encoder"):
        section = config.get(key)
        if isinstance(section, dict) and section.get("path") == old:
            section["path"] = base_model
    return config
