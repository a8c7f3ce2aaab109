"""Captions of clean images by BLIP-2, for the paper's prompt "<caption>, <degradation phrase>".

The paper captions every clean image with BLIP-2 before training.  Here it is one optional step
of the prepare stage (data.user.captioner: a LOCAL folder holding a saved
Blip2ForConditionalGeneration and its processor, e.g. a copy of Salesforce/blip2-opt-2.7b; never
downloaded), run on the clean images whose caption is still blank after the manifests and
captions files were read.  Greedy decoding: the same folder and image give the same caption.
Each caption is a per-file record in prepare's work folder (gendeg.runtime.file_records), so a
re-run captions only new or changed images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from gendeg.runtime.file_records import FileRecords, stat_files
from gendeg.runtime.progress import notice

CACHE_KEY = ["path", "size", "mtime_ns", "captioner_stamp"]
BATCH = 16  # images per generate() call
MAX_NEW_TOKENS = 30  # BLIP-2 captions are one short sentence


def folder_stamp(folder: Path) -> int:
    """An integer naming the folder's files and their size / mtime: new weights, new captions."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder).as_posix()}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return int.from_bytes(digest.digest()[:8], "little") & (2**63 - 1)


class Blip2Captioner:
    """A saved BLIP-2 folder, loaded from disk only; call with image paths -> captions."""

    def __init__(self, folder: str | Path, device=None, batch_size: int = BATCH):
        import torch
        from transformers import AutoProcessor, Blip2ForConditionalGeneration

        from gendeg.runtime.devices import compute_device

        self.folder = Path(folder).expanduser()
        if not (self.folder / "config.json").is_file():
            raise FileNotFoundError(f"data.user.captioner: {str(folder)!r} is not a saved BLIP-2 folder (no config.json); "
                                    f"save Blip2ForConditionalGeneration and its processor there first")
        self.device = torch.device(device) if device is not None else compute_device()
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.processor = AutoProcessor.from_pretrained(str(self.folder), local_files_only=True)
        self.model = Blip2ForConditionalGeneration.from_pretrained(str(self.folder), local_files_only=True)
        self.model = self.model.eval().to(self.device, dtype)  # fp16 on a GPU (as BLIP-2 is run), fp32 on the CPU
        self.dtype = dtype
        self.batch_size = int(batch_size)

    def caption(self, paths: list[str]) -> Iterator[str]:
        """One caption per path, in order, a batch at a time."""
        import torch
        from PIL import Image

        from gendeg.data.images import read_image, to_uint8

        for start in range(0, len(paths), self.batch_size):
            images = [Image.fromarray(to_uint8(read_image(p))) for p in paths[start:start + self.batch_size]]
            inputs = self.processor(images=images, return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, self.dtype)
            with torch.no_grad():
                ids = self.model.generate(pixel_values=pixels, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
            yield from (text.strip() for text in self.processor.batch_decode(ids, skip_special_tokens=True))


class CaptionCache(FileRecords):
    """Captions already made, one row per image (keyed by its stat and the captioner folder's stamp)."""

    def __init__(self, work_dir: Path | None):
        super().__init__(None if work_dir is None else Path(work_dir) / "captions", "captions", CACHE_KEY,
                         {"caption": str}, 256, "prepare")


def caption_images(paths: list[str], folder: str | Path, work_dir: Path | None = None, captioner=None) -> list[str]:
    """A caption for each path (in order; repeated paths captioned once); records kept in `work_dir`."""
    unique = list(dict.fromkeys(paths))
    if not unique:
        return []
    folder = Path(folder).expanduser()
    keys = stat_files(unique).assign(captioner_stamp=np.int64(folder_stamp(folder)))[CACHE_KEY]
    cache = CaptionCache(work_dir)
    if cache.dir is not None:
        cache.dir.mkdir(parents=True, exist_ok=True)

    def compute(rows: pd.DataFrame):
        notice(f"prepare: BLIP-2 captions ({folder}) of {len(rows)} clean image(s); "
               f"{len(unique) - len(rows)} kept from before")
        if rows.empty:
            return iter(())
        model = captioner or Blip2Captioner(folder)
        return ((text,) for text in model.caption(rows["path"].tolist()))

    known, _ = cache.complete(keys, compute, "captions (BLIP-2)")
    found = dict(zip(known["path"], known["caption"], strict=True))
    return [found[p] for p in paths]


# Words the tiny random captioner may say (tests): a caption is some of them, greedily decoded.
TINY_WORDS = ["a", "photo", "of", "street", "house", "tree", "car", "road", "sky", "with", "the", "red", "old"]
_SPECIAL = ["<pad>", "</s>", "<unk>", "<image>"]


def write_random_blip2(folder: str | Path, seed: int = 0) -> Path:
    """A randomly initialised, tiny BLIP-2 folder (model + processor), written offline: what
    data.user.captioner points at, only smaller (tests, ~13k parameters).  The tokenizer is a word-level
    one over TINY_WORDS; the special tokens' embeddings are zero, so greedy decoding says words."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
        PreTrainedTokenizerFast,
    )

    folder = Path(folder)
    vocab = {word: i for i, word in enumerate(_SPECIAL + TINY_WORDS)}
    words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", eos_token="</s>", bos_token="</s>",
                                        unk_token="<unk>", additional_special_tokens=["<image>"])
    config = Blip2Config(
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        qformer_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                            encoder_hidden_size=16, vocab_size=len(vocab)),
        text_config=dict(model_type="opt", hidden_size=16, ffn_dim=32, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=len(vocab), word_embed_proj_dim=16, max_position_embeddings=64,
                         pad_token_id=0, eos_token_id=1, bos_token_id=1),
        num_query_tokens=4, image_token_index=vocab["<image>"])
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.get_input_embeddings().weight[:len(_SPECIAL)] = 0.0
        model.get_output_embeddings().weight[:len(_SPECIAL)] = 0.0
    processor = Blip2Processor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                               tokenizer=tokenizer, num_query_tokens=4)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
