"""The paper's text condition: a frozen CLIP text encoder turns "<caption>, <phrase>" into tokens.

Stable Diffusion v1.5 ships the encoder and its tokenizer in the ``text_encoder/`` and
``tokenizer/`` subfolders of the model folder; both are loaded from disk only
(``local_files_only=True``) and never saved with a GenDeg checkpoint.  Dropping the text
for classifier-free guidance means the empty prompt's embeddings, as in InstructPix2Pix.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gendeg import DEGRADATION_PHRASES, DEGRADATIONS

NULL_PROMPT = ""


def _caption_text(caption: object) -> str:
    """A manifest caption, or "" when absent (None, NaN from pandas, blank)."""
    if caption is None or (isinstance(caption, float) and math.isnan(caption)):
        return ""
    return str(caption).strip().rstrip(",").strip()


@dataclass(frozen=True)
class Caption:
    """A caption that brings its dataset's own phrase for one degradation (data.user `phrase:`).

    The official code prompts CSD "in snowy and hazy conditions" and ORD "in rainy and hazy
    conditions" instead of the plain snow / rain phrase.  The phrase applies only when the prompt
    is built for `degradation` (a preview that renders a CSD scene as haze keeps haze's phrase).
    A plain string (or None) in a captions list is a caption with the degradation's own phrase.
    """

    text: str
    phrase: str = ""
    degradation: str = ""


def build_prompt(degradation: str | int, caption: object = None) -> str:
    """The paper's prompt: "<caption>, <degradation phrase>", or the phrase alone without a caption.

    `caption` may be a Caption whose dataset phrase replaces the degradation's phrase."""
    name = DEGRADATIONS[int(degradation)] if not isinstance(degradation, str) else degradation
    if name not in DEGRADATION_PHRASES:
        raise KeyError(f"no prompt phrase for degradation {name!r}; known: {sorted(DEGRADATION_PHRASES)}")
    phrase = DEGRADATION_PHRASES[name]
    if isinstance(caption, Caption):
        phrase = caption.phrase.strip() if caption.phrase.strip() and caption.degradation == name else phrase
        caption = caption.text
    text = _caption_text(caption)
    return f"{text}, {phrase}" if text else phrase


def prompt_captions(frame, degradation: str | None = None) -> list:
    """The `captions` argument of training and sampling for the rows of a manifest frame.

    Each row's `caption`; a row with a dataset phrase (its `phrase` column, blank = none) gives a
    Caption carrying it for the row's degradation (`degradation`, when given, for every row: a
    synthesis plan has no degradation column).  Rows without a phrase give the plain caption, so
    prompts without phrases are exactly what they were.
    """
    captions = frame["caption"].tolist() if "caption" in frame else [""] * len(frame)
    phrases = frame["phrase"].tolist() if "phrase" in frame else [""] * len(frame)
    degradations = [degradation] * len(frame) if degradation is not None else frame["degradation"].tolist()
    return [Caption(_caption_text(c), _caption_text(p), str(d)) if _caption_text(p) else c
            for c, p, d in zip(captions, phrases, degradations, strict=True)]


def build_prompts(
    degradation_ids: torch.Tensor, captions: Sequence[object] | None, drop_text: torch.Tensor | None = None
) -> list[str]:
    """One prompt per row; rows where `drop_text` is True get the null prompt."""
    ids = [int(i) for i in torch.as_tensor(degradation_ids).reshape(-1)]
    if captions is not None and len(captions) != len(ids):
        raise ValueError(f"captions: {len(captions)} for a batch of {len(ids)} images")
    drops = [False] * len(ids) if drop_text is None else [bool(d) for d in torch.as_tensor(drop_text).reshape(-1)]
    return [
        NULL_PROMPT if drop else build_prompt(i, None if captions is None else captions[row])
        for row, (i, drop) in enumerate(zip(ids, drops, strict=True))
    ]


def require_folder(path: str | Path, subfolder: str, what: str, key: str) -> Path:
    """The subfolder of a local diffusers model folder, or a FileNotFoundError that names it and the config key."""
    folder = Path(path) / subfolder
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{key}: {str(path)!r} has no {subfolder}/ folder for the {what} (expected a local Stable Diffusion "
            f"folder in diffusers layout: unet/, vae/, text_encoder/, tokenizer/)"
        )
    return folder


class ClipPromptEncoder(nn.Module):
    """Frozen CLIPTextModel + CLIPTokenizer: prompts -> (B, n_tokens, dim) last hidden states.

    Embeddings of recent prompts are kept in a small LRU cache (the null prompt and the six
    caption-free prompts recur every batch); the encoder is frozen, so a cached embedding is
    exactly what a fresh forward would give.
    """

    def __init__(self, text_encoder: nn.Module, tokenizer, cache_size: int = 256):
        super().__init__()
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        positions = int(text_encoder.config.max_position_embeddings)
        self.n_tokens = min(int(tokenizer.model_max_length), positions)
        self.dim = int(text_encoder.config.hidden_size)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @classmethod
    def from_pretrained(
        cls, path: str | Path, subfolder: str = "text_encoder", tokenizer_subfolder: str = "tokenizer"
    ) -> ClipPromptEncoder:
        from transformers import CLIPTextModel, CLIPTokenizer

        require_folder(path, subfolder, "CLIP text encoder", "text_encoder.path")
        require_folder(path, tokenizer_subfolder, "CLIP tokenizer", "text_encoder.path")
        text_encoder = CLIPTextModel.from_pretrained(str(path), subfolder=subfolder, local_files_only=True)
        tokenizer = CLIPTokenizer.from_pretrained(str(path), subfolder=tokenizer_subfolder, local_files_only=True)
        return cls(text_encoder, tokenizer)

    def train(self, mode: bool = True) -> ClipPromptEncoder:
        """Stays in eval mode: the encoder is frozen, dropout inside it must stay off."""
        super().train(mode)
        self.text_encoder.eval()
        return self

    def _apply(self, fn, recurse: bool = True):
        self._cache.clear()  # a device or dtype move invalidates cached tensors
        return super()._apply(fn, recurse)

    @torch.no_grad()
    def _encode_uncached(self, prompts: list[str]) -> torch.Tensor:
        device = next(self.text_encoder.parameters()).device
        ids = self.tokenizer(
            prompts, padding="max_length", max_length=self.n_tokens, truncation=True, return_tensors="pt"
        ).input_ids.to(device)
        return self.text_encoder(ids)[0]

    @torch.no_grad()
    def forward(self, prompts: Sequence[str]) -> torch.Tensor:
        prompts = list(prompts)
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            for prompt, embedding in zip(missing, self._encode_uncached(missing), strict=True):
                self._cache[prompt] = embedding
        for prompt in prompts:
            self._cache.move_to_end(prompt)
        rows = torch.stack([self._cache[p] for p in prompts])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return rows
