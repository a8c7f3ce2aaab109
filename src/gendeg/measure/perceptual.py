"""Optional LPIPS and Inception-feature distances: the `perceptual` extra.

The project's own distances (`gendeg.measure.metrics` on the degradation classifier's features)
need no download.  Users who want the numbers papers print, LPIPS (AlexNet) and FID / KID
on Inception-v3 pool features, can turn this module on with `evaluate.perceptual.torch_home`:
a folder laid out like torch's hub cache, holding torchvision's ImageNet checkpoints

    <torch_home>/hub/checkpoints/alexnet-owt-7be5be79.pth        (LPIPS backbone)
    <torch_home>/hub/checkpoints/inception_v3_google-0cc3c7bd.pth (FID / KID features)

(the names torchvision itself downloads; `checkpoint_files` lists them).  Both files are
checked before any network is built, so a missing one is an error naming it, never a
download.  LPIPS is torchmetrics' implementation (its linear-layer weights ship inside
torchmetrics); the Inception features are torchvision's `inception_v3`.  torchvision's
Inception weights are not the TensorFlow graph that pytorch-fid / torch-fidelity port, so
FID here is comparable between our runs, not to the figures of other papers.

torchvision must match the installed torch: PyPI's torchvision does not import beside the
CPU build of torch 2.13.0 that the default install pins, so the extra lives in an
environment of its own (README: "Optional: LPIPS and Inception FID").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from gendeg.measure.metrics import frechet_distance, kid

CONFIG_KEY = "evaluate.perceptual.torch_home"
INCEPTION_SIZE = 299  # torchvision's inception_v3 input size
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _torchvision():
    """The torchvision module, or an error that says why the extra cannot run here."""
    try:
        import torchvision
    except Exception as error:  # noqa: BLE001 - a broken build fails with RuntimeError, not ImportError
        raise RuntimeError(
            f"{CONFIG_KEY} is set, but torchvision does not import beside torch {torch.__version__} ({error}). "
            "Install the perceptual extra in an environment whose torch matches torchvision "
            "(README: 'Optional: LPIPS and Inception FID'), or set it to null.") from error
    return torchvision


def checkpoint_files(torch_home: str | Path) -> dict[str, Path]:
    """Where torchvision looks for each backbone's ImageNet checkpoint under `torch_home`."""
    models = _torchvision().models
    folder = Path(torch_home) / "hub" / "checkpoints"
    return {name: folder / weights.url.rsplit("/", 1)[-1]
            for name, weights in (("alexnet", models.AlexNet_Weights.IMAGENET1K_V1),
                                  ("inception_v3", models.Inception_V3_Weights.IMAGENET1K_V1))}


@contextlib.contextmanager
def _hub_dir(torch_home: Path) -> Iterator[None]:
    """torch.hub's cache pointed at `torch_home` while the networks load, restored after."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(Path(torch_home) / "hub"))
    try:
        yield
    finally:
        torch.hub.set_dir(previous)


class PerceptualMetrics:
    """LPIPS per image pair and Inception-v3 pool features per image, from local checkpoints only."""

    def __init__(self, torch_home: str | Path, batch_size: int = 32) -> None:
        torchvision = _torchvision()
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        missing = [f"{name}: {path}" for name, path in checkpoint_files(torch_home).items() if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"{CONFIG_KEY} = {torch_home}: missing torchvision checkpoint(s) "
                                    f"{'; '.join(missing)} (nothing is downloaded; copy them there)")
        self.batch_size = batch_size
        with _hub_dir(Path(torch_home)):
            self.lpips = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).eval()
            inception = torchvision.models.inception_v3(weights=torchvision.models.Inception_V3_Weights.IMAGENET1K_V1)
        inception.fc = torch.nn.Identity()  # 2048-d pool features instead of class logits
        self.inception = inception.eval()

    @torch.no_grad()
    def lpips_per_image(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N,) LPIPS distances between images in [0, 1] (0 = identical; lower is better)."""
        if images.shape != targets.shape or images.ndim != 4:
            raise ValueError(f"lpips: need two (N,3,H,W) tensors of one shape, got {tuple(images.shape)} "
                             f"and {tuple(targets.shape)}")
        # The metric object averages what it is given; one pair per call keeps every image's own value.
        values = []
        for image, target in zip(images.clamp(0, 1).float(), targets.clamp(0, 1).float(), strict=True):
            self.lpips.reset()
            values.append(self.lpips(image[None], target[None]))
        return torch.stack(values).detach()

    @torch.no_grad()
    def inception_features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 2048) Inception-v3 pool features of images in [0, 1] (resized to 299x299, ImageNet-normalised)."""
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size].clamp(0, 1).float()
            batch = F.interpolate(batch, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
            out.append(self.inception((batch - mean) / std))
        return torch.cat(out)


def inception_distances(features: torch.Tensor, reference: torch.Tensor, kid_subsets: int, kid_subset_size: int,
                        seed: int) -> dict[str, float]:
    """FID and KID between two sets of Inception features (the same estimators as the classifier-feature ones)."""
    return {"inception_fid": frechet_distance(features, reference),
            "inception_kid": kid(features, reference, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)[0]}
