"""The GenDeg conditional latent-diffusion model: conditioning, codecs, network, loss, sampler."""

from gendeg.diffusion.codecs import AutoencoderKLCodec, PixelUnshuffleCodec, build_codec
from gendeg.diffusion.conditioning import encode_intensity
from gendeg.diffusion.model import DEFAULT_CONFIG, PAPER_CONFIG, GenDegModel, merge_config
from gendeg.diffusion.objective import draw_condition_dropout, training_loss
from gendeg.diffusion.sampling import generate, model_evaluations_per_image
from gendeg.diffusion.text import ClipPromptEncoder, build_prompt, build_prompts

__all__ = [
    "AutoencoderKLCodec",
    "ClipPromptEncoder",
    "DEFAULT_CONFIG",
    "GenDegModel",
    "PAPER_CONFIG",
    "PixelUnshuffleCodec",
    "build_codec",
    "build_prompt",
    "build_prompts",
    "draw_condition_dropout",
    "encode_intensity",
    "generate",
    "merge_config",
    "model_evaluations_per_image",
    "training_loss",
]
