"""Pairs read from disk per batch: nothing is decoded up front, batches are the ones
the in-memory bank drew, pairs of any size share a batch, and the latent cache is built once
by one process of a multi-process job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from gendeg import DEGRADATIONS
from gendeg.data import pairs as pairs_module
from gendeg.data.pairs import PairBank, load_square

ROOT = Path(__file__).resolve().parents[2]


def write_pairs(directory: Path, sizes: list[tuple[int, int]]) -> pd.DataFrame:
    """Pairs whose degraded side is 255 - clean, pixel for pixel, at the given (width, height)."""
    rng = np.random.default_rng(1)
    rows = []
    for i, (width, height) in enumerate(sizes):
        clean = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        clean_path, degraded_path = directory / f"{i}_clean.png", directory / f"{i}_degraded.png"
        Image.fromarray(clean).save(clean_path)
        Image.fromarray(255 - clean).save(degraded_path)
        rows.append({"image_path": str(degraded_path), "target_path": str(clean_path),
                     "degradation": DEGRADATIONS[i % len(DEGRADATIONS)], "mu": 0.1, "sigma": 0.05})
    return pd.DataFrame(rows)


def in_memory_batch(frame: pd.DataFrame, size: int, indices, crop: int, generator: torch.Generator):
    """The bank as it was before it streamed: every pair decoded up front, then cropped and flipped."""
    degraded = torch.from_numpy(np.stack([load_square(p, size) for p in frame["image_path"]])).permute(0, 3, 1, 2)
    clean = torch.from_numpy(np.stack([load_square(p, size) for p in frame["target_path"]])).permute(0, 3, 1, 2)
    degraded, clean = degraded[indices].float() / 255.0, clean[indices].float() / 255.0
    top = torch.randint(size - crop + 1, (len(indices),), generator=generator)
    left = torch.randint(size - crop + 1, (len(indices),), generator=generator)
    degraded = torch.stack([d[:, y:y + crop, x:x + crop] for d, y, x in zip(degraded, top, left, strict=True)])
    clean = torch.stack([c[:, y:y + crop, x:x + crop] for c, y, x in zip(clean, top, left, strict=True)])
    mirror = torch.rand(len(indices), generator=generator) < 0.5
    degraded[mirror], clean[mirror] = degraded[mirror].flip(-1), clean[mirror].flip(-1)
    return degraded, clean


def test_a_bank_reads_no_image_until_a_batch_asks(tmp_path, monkeypatch):
    frame = write_pairs(tmp_path, [(20, 16)] * 12)
    reads = []
    original = pairs_module.load_image
    monkeypatch.setattr(pairs_module, "load_image", lambda path, size: reads.append(path) or original(path, size))
    bank = PairBank(frame, size=16)
    assert reads == []
    bank.batch(torch.tensor([3, 5]), 8, torch.Generator().manual_seed(0))
    assert sorted(reads) == sorted(frame.loc[[3, 5], ["image_path", "target_path"]].to_numpy().ravel().tolist())


def test_decoded_pairs_are_kept_up_to_the_cache_budget(tmp_path, monkeypatch):
    frame = write_pairs(tmp_path, [(16, 16)] * 6)
    reads = []
    original = pairs_module.load_image
    monkeypatch.setattr(pairs_module, "load_image", lambda path, size: reads.append(path) or original(path, size))
    indices = torch.tensor([0, 1, 2, 1])
    kept = PairBank(frame, size=16)
    first = kept.batch(indices, 8, torch.Generator().manual_seed(0))
    assert len(reads) == 6  # three distinct pairs, two images each, once
    again = kept.batch(indices, 8, torch.Generator().manual_seed(0))
    assert len(reads) == 6 and torch.equal(first.degraded, again.degraded)
    one_pair = 2 * 16 * 16 * 3 / 2**20
    budget = PairBank(frame, size=16, cache_mb=1.5 * one_pair)  # room for one pair only
    budget.batch(indices, 8, torch.Generator().manual_seed(0))
    budget.batch(indices, 8, torch.Generator().manual_seed(0))
    assert len(reads) == 6 + 6 + 4 and len(budget._cache) == 1


@pytest.mark.parametrize("readers", [1, 4])
def test_batches_are_the_ones_the_in_memory_bank_drew(tmp_path, readers):
    """Same generator, same pairs, corners and flips, same bytes, whatever the number of readers:
    the CPU default's results did not move when the bank began to stream."""
    frame = write_pairs(tmp_path, [(24, 20), (20, 20), (30, 22)] * 4)
    bank = PairBank(frame, size=16, readers=readers)
    for seed in range(3):
        indices = bank.sample_indices(6, torch.Generator().manual_seed(seed))
        streamed = bank.batch(indices, 12, torch.Generator().manual_seed(seed + 10))
        degraded, clean = in_memory_batch(frame, 16, indices, 12, torch.Generator().manual_seed(seed + 10))
        assert torch.equal(streamed.degraded, degraded) and torch.equal(streamed.clean, clean)


def test_full_resolution_pairs_of_several_sizes_share_a_batch_with_aligned_crops(tmp_path):
    frame = write_pairs(tmp_path, [(40, 30), (64, 48), (33, 90)])
    bank = PairBank(frame, size=None)
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(20):
        batch = bank.batch(torch.tensor([0, 1, 2]), 24, generator)
        assert batch.degraded.shape == (3, 3, 24, 24)
        torch.testing.assert_close(batch.degraded, 1.0 - batch.clean)  # the same corner on both sides
        seen.add(tuple(batch.clean[:, 0, 0, 0].tolist()))
    assert len(seen) > 10  # corners are drawn, not fixed
    whole_degraded, whole_clean = bank.read(2)
    assert whole_clean.shape == (90, 33, 3)  # as stored: no resize


def test_misaligned_or_too_small_pairs_are_named(tmp_path):
    frame = write_pairs(tmp_path, [(40, 30), (16, 16), (20, 20)])
    Image.fromarray(np.zeros((31, 40, 3), dtype=np.uint8)).save(frame["image_path"][0])
    bank = PairBank(frame, size=None)
    with pytest.raises(ValueError, match=r"40x31 degraded image .*0_degraded\.png.*40x30 clean"):
        bank.read(0)
    with pytest.raises(ValueError, match=r"1_degraded\.png\) is 16x16, smaller than the 24-pixel"):
        bank.batch(torch.tensor([1]), 24, torch.Generator())
    with pytest.raises(ValueError, match="several sizes"):
        bank.tensors([1, 2])


DDP_SCRIPT = """
import hashlib, json, sys
from pathlib import Path
import pandas as pd
import torch
sys.path.insert(0, sys.argv[3])
from accelerate import PartialState
from gendeg.data.pairs import PairBank
from gendeg.diffusion.latent_cache import LatentCache
from helpers.paper_gendeg import build_model, paper_gendeg_config

work = Path(sys.argv[1])
state = PartialState(cpu=True)
bank = PairBank(pd.read_csv(work / "pairs.csv"), size=32)
model = build_model(paper_gendeg_config(), Path(sys.argv[2]), torch.device("cpu"))
calls = []
encode = model.codec.encode
model.codec.encode = lambda images: calls.append(len(images)) or encode(images)
cache = LatentCache.build(bank, model.codec, folder=work / "cache")
rows = cache.rows(range(len(bank))).numpy().tobytes()
(work / f"rank{state.process_index}.json").write_text(json.dumps(
    {"encoded": sum(calls), "rows": hashlib.sha256(rows).hexdigest(), "count": len(cache)}))
"""


def test_two_processes_build_the_latent_cache_once_and_read_the_same_file(tmp_path):
    """Under `accelerate launch` (here torchrun with two CPU processes over gloo) the main process
    encodes, the other waits, and both train from one file: no race on a shared `.partial`."""
    from helpers.paper_gendeg import random_pairs
    from helpers.random_sd import write_random_stable_diffusion

    sd = write_random_stable_diffusion(tmp_path / "sd", "tiny")
    random_pairs(5, 32, tmp_path / "pairs").frame.to_csv(tmp_path / "pairs.csv", index=False)
    (tmp_path / "ddp.py").write_text(DDP_SCRIPT)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531"]
    done = subprocess.run(launch + [str(tmp_path / "ddp.py"), str(tmp_path), str(sd), str(ROOT / "tests")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["encoded"] == 4 * 5 and ranks[1]["encoded"] == 0  # 5 pairs x (clean, degraded) x (plain, mirrored)
    assert ranks[0]["rows"] == ranks[1]["rows"] and ranks[0]["count"] == ranks[1]["count"] == 5
    assert not list((tmp_path / "cache").glob("*.partial"))


def test_tiled_restoration_covers_the_image_in_pieces_no_larger_than_a_tile():
    from gendeg.restorers import restore, restore_tiled

    torch.manual_seed(0)
    pixelwise = torch.nn.Conv2d(3, 3, 1)  # no receptive field: tiles must give the whole image's output exactly
    seen = []
    pixelwise.register_forward_hook(lambda module, inputs, output: seen.append(tuple(inputs[0].shape[-2:])))
    image = torch.rand(1, 3, 100, 70)
    tiled = restore_tiled(pixelwise, image, tile=32, overlap=8)
    assert max(max(shape) for shape in seen) <= 32 and len(seen) > 4
    torch.testing.assert_close(tiled, restore(pixelwise, image))
    seen.clear()
    restore_tiled(pixelwise, image, tile=128)
    assert seen == [(100, 70)]  # within a tile: restored whole


def test_evaluation_scores_whole_images_of_several_sizes(tmp_path):
    """`evaluate.image_size: null`: each test image as stored, one at a time, scored beside its input."""
    from gendeg.measure.classifier import DegradationClassifier
    from gendeg.stages.evaluate import Evaluated

    frame = write_pairs(tmp_path, [(40, 30), (64, 48), (33, 90)]).assign(dataset="set", split="ood")
    distances = {"kid_subsets": 2, "kid_subset_size": 2, "patch_size": 5, "patches_per_image": 4, "projections": 8}
    identity = torch.nn.Identity()
    identity.register_parameter("anchor", torch.nn.Parameter(torch.zeros(1)))  # restore() reads the device from it
    split = Evaluated(identity, DegradationClassifier(width=2), frame, None, "ood", tile=32, distances=distances, seed=0)
    assert len(split.rows) == 3 and split.patches["clean"].shape == (3, 4, 5 * 5 * 3)
    assert np.allclose(split.rows["psnr"], split.rows["input_psnr"])  # the unrestored input, restored in tiles


def test_a_restorer_trains_on_full_resolution_pairs_of_several_sizes(tmp_path, smoke_params):
    """`restorer.image_size: null` (the paper preset): random crops of the pairs as stored, and a
    sample grid that shows pairs of any size."""
    import copy

    from gendeg.pipeline.config import stage_config
    from gendeg.stages.train_restorer import train_restorer

    frame = write_pairs(tmp_path, [(48, 40), (64, 36), (40, 70)] * 2).assign(dataset="set", split="train",
                                                                            category="Real")
    frame.to_csv(tmp_path / "pairs.csv", index=False)
    config = copy.deepcopy(stage_config(smoke_params, "train_restorer"))
    config["restorer"]["image_size"] = None
    config["restorer"]["train"].update(steps=2, crop=32, checkpoint_every=2)
    summary = train_restorer(config, "nafnet", "existing", tmp_path / "pairs.csv", tmp_path / "model", None)
    assert summary["pairs"] == 6 and (tmp_path / "model" / "model.safetensors").is_file()
