"""The readable reference compositor: every Gaussian against every pixel, plain autograd.

It spells out gsplat's classic compositing rules one line each and is what the tiled fast path
(`raster_tiles.composite_tiles`) and, on a GPU, gsplat itself are tested against. Memory is
O(C · N · H · W), so it is for tests and tiny scenes only (`rasterize(..., backend="reference")`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from render.projection import ALPHA_THRESHOLD
from render.raster_tiles import MAX_ALPHA, MIN_TRANSMITTANCE


def composite_dense(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    colors: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    backgrounds: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Alpha-composite projected Gaussians front to back over the whole image at once.

    Args:
        means2d: projected centres, pixels. [C, N, 2]
        conics: inverse 2D covariances (a, b, c) of [[a, b], [b, c]], 1/pixels². [C, N, 3]
        opacities: peak opacities in [0, 1]. [C, N]
        colors: colours (or any D channels). [C, N, D]
        depths: camera-frame depths, metres; nearer in front, ties by lower index. [C, N]
        radii: bounding-box half-sizes, pixels; Gaussians with a zero entry are not drawn. [C, N, 2]
        width, height: image size, pixels.
        backgrounds: colour behind the Gaussians. [C, D] or None (black)

    Returns:
        images [C, H, W, D] and alphas [C, H, W, 1].
    """
    ys, xs = torch.meshgrid(
        torch.arange(height, device=means2d.device, dtype=means2d.dtype) + 0.5,
        torch.arange(width, device=means2d.device, dtype=means2d.dtype) + 0.5,
        indexing="ij",
    )
    pixel_centres = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)  # [HW, 2]
    images, alphas = [], []
    for cam in range(depths.shape[0]):
        drawn = torch.nonzero((radii[cam] > 0).all(-1)).squeeze(-1)
        drawn = drawn[torch.argsort(depths[cam, drawn], stable=True)]  # front to back

        delta = means2d[cam, drawn, None, :] - pixel_centres  # [K, HW, 2]
        a, b, c = conics[cam, drawn, :, None].unbind(-2)
        sigma = 0.5 * (a * delta[..., 0] ** 2 + c * delta[..., 1] ** 2) + b * delta[..., 0] * delta[..., 1]
        alpha = torch.clamp_max(opacities[cam, drawn, None] * torch.exp(-sigma), MAX_ALPHA)
        alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, torch.zeros_like(alpha))
        with torch.no_grad():
            # A pixel is done before the Gaussian that would take its transmittance to <= 1e-4.
            kept = torch.cumprod(1 - alpha, dim=0) > MIN_TRANSMITTANCE
        alpha = alpha * kept
        trans_before = torch.cumprod(torch.cat([torch.ones_like(alpha[:1]), 1 - alpha[:-1]]), dim=0)
        weights = alpha * trans_before  # [K, HW]
        trans_final = torch.prod(1 - alpha, dim=0)  # [HW]

        image = weights.T @ colors[cam, drawn]  # [HW, D]
        if backgrounds is not None:
            image = image + trans_final[:, None] * backgrounds[cam]
        images.append(image.reshape(height, width, -1))
        alphas.append((1 - trans_final).reshape(height, width, 1))
    return torch.stack(images), torch.stack(alphas)
