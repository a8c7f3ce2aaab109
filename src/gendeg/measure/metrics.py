"""Image-quality and distribution metrics that need no download.

Colour space: every function takes RGB images as float BxCxHxW tensors in [0, 1]
(sRGB-encoded values as read by `gendeg.data.images.read_image`, no linearisation, no YCbCr
conversion), data range 1.0.  Predictions are clamped to [0, 1] before scoring, as a
saved 8-bit PNG would be.

Per-image fidelity: `psnr`, `ssim` (torchmetrics).  Structure vs colour: `mean_matched_psnr`
(PSNR after each image's per-channel mean is set to its target's, so a global tint or
brightness error costs nothing and only structure counts) and `colour_shift` (the per-channel
mean error a global tint or brightness change leaves).  Distribution distances between sets
of images: `kid` and `frechet_distance` on features of the frozen degradation classifier
(`gendeg.measure.classifier`; stand-ins for KID/FID on Inception features, which would need a
download, so the numbers are comparable within this project only), and
`sliced_wasserstein_patches`, a network-free distance between the distributions of raw
RGB patches.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def _check_pair(pred: torch.Tensor, target: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"{name}: expected two BxCxHxW tensors of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    return pred.detach().double().clamp(0, 1), target.detach().double().clamp(0, 1)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB over all RGB channels (data_range 1.0); shape (B,). Identical images give inf."""
    pred, target = _check_pair(pred, target, "psnr")
    return peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3)).float()


def ssim(pred: torch.Tensor, target: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """Per-image SSIM (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03), averaged over RGB channels; shape (B,).

    Computed `chunk` images at a time in float32: torchmetrics keeps several full-batch
    maps alive, which on a whole evaluation set in float64 took gigabytes.
    """
    pred, target = _check_pair(pred, target, "ssim")
    pred, target = pred.float(), target.float()
    return torch.cat([structural_similarity_index_measure(pred[i:i + chunk], target[i:i + chunk], data_range=1.0,
                                                          reduction="none").reshape(-1)
                      for i in range(0, len(pred), chunk)]).float()


def match_channel_means(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`images` with each image's per-channel mean moved to `target`'s (clamped to [0, 1]).

    Why: a restorer can raise PSNR by re-tinting alone; scoring both the restored and the
    unrestored input this way shows whether the degradation itself was removed.
    """
    images, target = _check_pair(images, target, "match_channel_means")
    shift = target.mean(dim=(2, 3), keepdim=True) - images.mean(dim=(2, 3), keepdim=True)
    return (images + shift).clamp(0, 1)


def mean_matched_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR after `match_channel_means`; shape (B,)."""
    return psnr(match_channel_means(pred, target), target)


def colour_shift(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image, per-channel mean of pred - target (B x 3): the global colour / brightness error."""
    pred, target = _check_pair(pred, target, "colour_shift")
    return (pred.mean(dim=(2, 3)) - target.mean(dim=(2, 3))).float()


def _as_float64(features: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    features = torch.as_tensor(features).detach().double().cpu()
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"{name}: expected an (N, F) feature matrix with N >= 2, got shape {tuple(features.shape)}")
    return features


def _polynomial_mmd2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 with the KID kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018)."""
    m, d = a.shape
    k_aa = (a @ a.T / d + 1) ** 3
    k_bb = (b @ b.T / d + 1) ** 3
    k_ab = (a @ b.T / d + 1) ** 3
    off_diagonal = lambda k: (k.sum() - k.diagonal().sum()) / (m * (m - 1))  # noqa: E731
    return off_diagonal(k_aa) + off_diagonal(k_bb) - 2 * k_ab.mean()


def kid(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray, subsets: int = 100,
        subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (mean, std) over `subsets` random subsets of each set.

    `subset_size` is capped at the smaller set; subsets are drawn without replacement from
    a `torch.Generator` seeded with `seed`.  Unbiased, so it can dip slightly below zero
    when the two sets come from one distribution.
    """
    a, b = _as_float64(features_a, "kid features_a"), _as_float64(features_b, "kid features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"kid: feature dims differ: {a.shape[1]} vs {b.shape[1]}")
    size = min(subset_size, a.shape[0], b.shape[0])
    generator = torch.Generator().manual_seed(seed)
    values = torch.stack([
        _polynomial_mmd2(a[torch.randperm(a.shape[0], generator=generator)[:size]],
                         b[torch.randperm(b.shape[0], generator=generator)[:size]])
        for _ in range(subsets)])
    return float(values.mean()), float(values.std(unbiased=False))


def frechet_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (the FID formula).

    tr(sqrt(Ca Cb)) is computed as the sum of square roots of the eigenvalues of the
    symmetric matrix sqrt(Ca) Cb sqrt(Ca), which is stable where scipy's sqrtm of a
    non-symmetric product can return complex noise.
    """
    a, b = _as_float64(features_a, "frechet features_a"), _as_float64(features_b, "frechet features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"frechet_distance: feature dims differ: {a.shape[1]} vs {b.shape[1]}")
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], a.shape[1]), torch.cov(b.T).reshape(b.shape[1], b.shape[1])
    eigvals, eigvecs = torch.linalg.eigh(cov_a)
    sqrt_a = eigvecs @ torch.diag(eigvals.clamp(min=0).sqrt()) @ eigvecs.T
    cross = torch.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a).clamp(min=0).sqrt().sum()
    value = (mean_a - mean_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return max(float(value), 0.0)


def random_patches(images: torch.Tensor, patch_size: int, per_image: int, generator: torch.Generator) -> torch.Tensor:
    """(B*per_image, C*patch_size^2) patches at uniformly random positions."""
    b, c, h, w = images.shape
    if h < patch_size or w < patch_size:
        raise ValueError(f"random_patches: images {h}x{w} are smaller than patch_size {patch_size}")
    ys = torch.randint(0, h - patch_size + 1, (b, per_image), generator=generator)
    xs = torch.randint(0, w - patch_size + 1, (b, per_image), generator=generator)
    return random_patches_at(images, ys, xs, patch_size)


def random_patches_at(images: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B*P, C*patch_size^2) patches of BxCxHxW `images` with top-left corners (ys, xs), each B x P."""
    b, per_image = ys.shape
    offsets = torch.arange(patch_size)
    rows = (ys[..., None] + offsets)[..., :, None].expand(b, per_image, patch_size, patch_size)
    cols = (xs[..., None] + offsets)[..., None, :].expand(b, per_image, patch_size, patch_size)
    batch = torch.arange(b)[:, None, None, None].expand_as(rows)
    patches = images.permute(0, 2, 3, 1)[batch, rows, cols]  # B x P x ps x ps x C
    return patches.reshape(b * per_image, -1)


def sliced_wasserstein_patches(images_a: torch.Tensor, images_b: torch.Tensor, patch_size: int = 7,
                               patches_per_image: int = 64, projections: int = 128, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between the distributions of raw RGB patches of two image sets.

    Why this statistic: degradations change local patch statistics in characteristic ways
    (haze lowers contrast and lifts the black level, blur removes high-frequency structure,
    low light shifts intensity, rain/snow add bright streaks or blobs), and a patch
    distribution sees all of these without a trained network.  Patches are projected on
    `projections` random unit directions; per direction the 1-D Wasserstein-1 distance
    between the two projected samples is the mean gap of their sorted values (the larger set
    is randomly subsampled to the smaller one's size), then averaged over directions.  Same seed, same patches and directions.
    """
    if images_a.ndim != 4 or images_b.ndim != 4 or images_a.shape[1] != images_b.shape[1]:
        raise ValueError(f"sliced_wasserstein_patches: expected BxCxHxW sets with one C, got "
                         f"{tuple(images_a.shape)} and {tuple(images_b.shape)}")
    generator = torch.Generator().manual_seed(seed)
    pa = random_patches(images_a.detach().double().cpu(), patch_size, patches_per_image, generator)
    pb = random_patches(images_b.detach().double().cpu(), patch_size, patches_per_image, generator)
    return sliced_wasserstein(pa, pb, projections, generator)


def sliced_wasserstein(pa: torch.Tensor, pb: torch.Tensor, projections: int, generator: torch.Generator,
                       max_samples: int | None = None) -> float:
    """Sliced Wasserstein-1 distance between two samples of vectors (rows), in float64: the part of
    `sliced_wasserstein_patches` after the patches are drawn, for patches gathered image by image.
    `max_samples` caps the rows used (a random subset of each side): memory stays flat for large sets."""
    directions = torch.randn(pa.shape[1], projections, generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=0, keepdim=True)
    n = min(pa.shape[0], pb.shape[0], max_samples or pa.shape[0])
    pa = pa[torch.randperm(pa.shape[0], generator=generator)[:n]].double()
    pb = pb[torch.randperm(pb.shape[0], generator=generator)[:n]].double()
    sorted_a = (pa @ directions).sort(dim=0).values
    sorted_b = (pb @ directions).sort(dim=0).values
    return float((sorted_a - sorted_b).abs().mean())
