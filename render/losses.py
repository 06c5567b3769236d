"""Photometric losses for fitting an avatar to video frames (3D Gaussian Splatting's L1 + D-SSIM).

    loss = (1 − λ) · |render − truth|₁ + λ · (1 − SSIM(render, truth))

with λ = 0.2 in 3DGS and GaussianAvatars. The SSIM is `render.quality.ssim`, so training and evaluation
measure structure the same way.
"""

from __future__ import annotations

from torch import Tensor

from render.quality import ssim


def photometric_loss(images: Tensor, targets: Tensor, lambda_dssim: float = 0.2) -> Tensor:
    """(1 − λ)·L1 + λ·(1 − SSIM), a scalar to minimise.

    Args:
        images: rendered images in [0, 1]. [..., H, W, 3]
        targets: ground truth in [0, 1], same shape.
        lambda_dssim: weight λ of the structural term, in [0, 1].
    """
    l1 = (images - targets).abs().mean()
    if lambda_dssim == 0:
        return l1
    return (1.0 - lambda_dssim) * l1 + lambda_dssim * (1.0 - ssim(images, targets))


def silhouette_loss(alphas: Tensor, silhouettes: Tensor) -> Tensor:
    """Mean |alpha − silhouette|: Gaussians should cover the head model's silhouette and nothing else.

    Args:
        alphas: rendered accumulated opacity in [0, 1]. [..., H, W, 1] or [..., H, W]
        silhouettes: 1 where the mesh covers the pixel, else 0; same number of elements as `alphas`.
    """
    return (alphas.reshape(silhouettes.shape) - silhouettes.to(alphas.dtype)).abs().mean()
