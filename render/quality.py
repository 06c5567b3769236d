"""Image and video quality: PSNR, SSIM and a temporal flicker score, the numbers an avatar is judged by.

All metrics take float images in [0, 1] shaped [..., H, W, 3] (the layout the renderer returns) and are
plain differentiable torch, so `render.losses` builds D-SSIM from the same `ssim`. SSIM is Wang et al.
(2004) with an 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03 and population statistics, i.e.
`skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`
averaged over the valid (unpadded) window positions and channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from datasets.errors import ReplicaError

PSNR_CAP_DB = 100.0
"""PSNR of (near-)identical images: the value is capped here so it stays a finite JSON number."""


def psnr(images: Tensor, targets: Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio over all pixels and frames, dB: 10·log10(range² / MSE), capped at `PSNR_CAP_DB`.

    Args:
        images: rendered images in [0, data_range]. [..., H, W, C]
        targets: ground truth, same shape.
        data_range: the peak value (1 for float images, 255 for 8-bit ones).
    """
    _check_pair(images, targets, "psnr")
    mse = float(((images.double() - targets.double()) ** 2).mean())
    if mse <= data_range**2 * 10 ** (-PSNR_CAP_DB / 10):
        return PSNR_CAP_DB
    return 10.0 * math.log10(data_range**2 / mse)


def ssim(images: Tensor, targets: Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean structural similarity (Gaussian window), differentiable; 1 for identical images.

    Args:
        images: images in [0, data_range]. [..., H, W, C] with H, W >= `window`
        targets: ground truth, same shape.
        data_range: the peak value, for the constants C1 = (0.01·range)², C2 = (0.03·range)².
        window: odd window size, pixels.
        sigma: the Gaussian window's standard deviation, pixels.

    Returns:
        SSIM averaged over valid window positions, channels and the leading dims. [] (scalar tensor)
    """
    _check_pair(images, targets, "ssim")
    height, width, channels = images.shape[-3:]
    if min(height, width) < window:
        raise ReplicaError("ssim", f"images of {height}x{width} are smaller than the {window}-pixel window")
    # [..., H, W, C] → [B·C, 1, H, W] so one depthwise-free conv filters every channel.
    to_planes = lambda t: t.reshape(-1, height, width, channels).permute(0, 3, 1, 2).reshape(-1, 1, height, width)  # noqa: E731
    x, y = to_planes(images.float()), to_planes(targets.float())
    coords = torch.arange(window, dtype=torch.float32, device=x.device) - (window - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :])[None, None]
    blur = lambda t: F.conv2d(t, kernel)  # noqa: E731 - 'valid' positions only, like skimage's crop
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean()


def flicker(videos: Tensor, targets: Tensor) -> float:
    """Temporal flicker: mean |Δrender − Δtruth| of consecutive frames, in the images' units (0 = the
    render changes exactly as the truth does; frame-to-frame noise the truth lacks raises it).

    Args:
        videos: rendered frames in order. [F, H, W, C] with F >= 2
        targets: ground-truth frames, same shape.
    """
    _check_pair(videos, targets, "flicker")
    if videos.ndim != 4 or videos.shape[0] < 2:
        raise ReplicaError("flicker", f"needs frames [F>=2, H, W, C], got {list(videos.shape)}")
    change = videos[1:].double() - videos[:-1].double()
    truth_change = targets[1:].double() - targets[:-1].double()
    return float((change - truth_change).abs().mean())


def video_quality(videos: Tensor, targets: Tensor) -> dict[str, float]:
    """PSNR (dB), SSIM and flicker of a rendered clip against its truth, as a JSON-ready dict.

    Args:
        videos: rendered frames in [0, 1]. [F, H, W, 3]
        targets: ground-truth frames in [0, 1]. [F, H, W, 3]
    """
    return {
        "psnr_db": round(psnr(videos, targets), 3),
        "ssim": round(float(ssim(videos, targets)), 4),
        "flicker": round(flicker(videos, targets), 5) if videos.shape[0] >= 2 else None,
        "frames": int(videos.shape[0]),
    }


def _check_pair(images: Tensor, targets: Tensor, name: str) -> None:
    if images.shape != targets.shape:
        raise ReplicaError(name, f"images {list(images.shape)} and targets {list(targets.shape)} differ in shape")
