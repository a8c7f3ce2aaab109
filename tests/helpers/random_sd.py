"""A randomly initialised Stable Diffusion folder in diffusers layout, written offline.

unet/, vae/, text_encoder/, tokenizer/, scheduler/ and model_index.json, as a user's SD v1.5
folder has them, so the paper preset's loading code runs on it unchanged.  Two sizes:
``tiny`` (seconds on a CPU: the tests) and ``sd15`` (SD v1.5's exact architecture, 1.07 B
parameters: the GPU throughput benchmark).  The tokenizer is a real CLIPTokenizer over a
small vocabulary that knows the words of GenDeg's prompts; nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

# Whole words of the prompts the tests and benchmarks use ("<caption>, <degradation phrase>").
WORDS = ["in", "hazy", "rainy", "snowy", "blurry", "low", "light", "conditions", "with", "raindrops", "it",
         "a", "street", "house", "at", "night", "and"]

ARCHITECTURES = {
    "tiny": {
        "unet": dict(sample_size=8, layers_per_block=1, block_out_channels=(32, 64),
                     down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                     up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=8, norm_num_groups=16),
        "vae": dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                    up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8, sample_size=16),
        "text": dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4),
    },
    "sd15": {  # runwayml/stable-diffusion-v1-5's configs (diffusers' defaults are SD v1's UNet and VAE)
        "unet": dict(sample_size=64, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
                     down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                     up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, attention_head_dim=8,
                     norm_num_groups=32),
        "vae": dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                    up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, norm_num_groups=32, sample_size=512),
        "text": dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, hidden_act="quick_gelu"),
    },
}


def _byte_characters() -> list[str]:
    """CLIP's byte-to-unicode table: every byte is a printable character in the BPE vocabulary."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def write_tokenizer(folder: Path) -> int:
    """vocab.json + merges.txt + tokenizer_config.json as SD v1.5 ships them; whole words merge.
    Returns the vocabulary size."""
    folder.mkdir(parents=True)
    characters = _byte_characters()
    vocab = {c: i for i, c in enumerate(characters)}
    vocab.update({c + "</w>": len(characters) + i for i, c in enumerate(characters)})
    merges: list[str] = []
    for word in WORDS:  # merge letter by letter into the whole word + "</w>"
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merges.append(f"{pieces[0]} {pieces[1]}")
            pieces = [pieces[0] + pieces[1]] + pieces[2:]
            vocab.setdefault(pieces[0], len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>"}))
    return len(vocab)


def write_random_stable_diffusion(root: str | Path, architecture: str = "tiny", seed: int = 0) -> Path:
    """Write a randomly initialised SD folder of `architecture` ("tiny" or "sd15") under `root`."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}")
    spec, root = ARCHITECTURES[architecture], Path(root)
    torch.manual_seed(seed)
    UNet2DConditionModel(in_channels=4, out_channels=4, cross_attention_dim=spec["text"]["hidden_size"],
                         **spec["unet"]).save_pretrained(root / "unet")
    AutoencoderKL(latent_channels=4, **spec["vae"]).save_pretrained(root / "vae")  # scaling_factor: SD's 0.18215
    vocab_size = write_tokenizer(root / "tokenizer")
    if vocab_size > spec["text"]["vocab_size"]:
        raise ValueError(f"the tokenizer has {vocab_size} entries, more than the text model's {spec['text']['vocab_size']}")
    tokenizer = CLIPTokenizer.from_pretrained(str(root), subfolder="tokenizer", local_files_only=True)
    CLIPTextModel(CLIPTextConfig(max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                 **spec["text"])).save_pretrained(root / "text_encoder")
    PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True
                  ).save_pretrained(root / "scheduler")
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "PNDMScheduler"], "safety_checker": [None, None], "feature_extractor": [None, None],
        "requires_safety_checker": False}))
    return root
