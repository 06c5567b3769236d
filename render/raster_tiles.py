"""Tile-based front-to-back alpha compositing on CPU (or any torch device): the torch backend's fast path.

The image is cut into `tile_size`² tiles, as in gsplat. Every Gaussian is listed in the tiles its
bounding box overlaps, each tile's list is sorted by depth, and tiles are processed in batches
padded to the longest list in the batch (tiles are sorted by list length first, so padding is small).
Memory is bounded by `chunk_elements` (Gaussian × pixel pairs evaluated at once), not by the scene.

Speed comes from two choices:
- In tile-local pixel coordinates, the Mahalanobis term σ of every (Gaussian, pixel) pair is a
  quadratic form, σ = coef · [1, x, y, x², y², xy], so a whole batch of σ is one matmul, and its
  gradient w.r.t. the six coefficients is one matmul back (autograd then carries it to the means and
  conics through the few per-Gaussian ops that build `coef`).
- Compositing is a custom autograd Function that stores only its small inputs and recomputes alphas
  in backward, instead of autograd keeping a dozen [tiles, Gaussians, pixels] intermediates.

The compositing rules are gsplat's (classic mode): alpha = min(0.999, opacity · exp(-σ)); a
Gaussian is skipped at a pixel where alpha < 1/255; a pixel stops at the first Gaussian that would
bring its transmittance to <= 1e-4 (that Gaussian excluded). Both rules are masks, so gradients
are those of the kept terms, as in gsplat's backward kernel. `raster_reference.composite_dense` is
the readable version these results are tested against.
"""

from __future__ import annotations

import torch
from torch import Tensor

from render.projection import ALPHA_THRESHOLD, tile_grid

MAX_ALPHA = 0.999
"""gsplat clamps every per-pixel alpha to this (so transmittance never reaches exactly 0)."""

MIN_TRANSMITTANCE = 1e-4
"""A pixel stops compositing before the Gaussian that would take its transmittance to this or below."""


def composite_tiles(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    colors: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    tile_size: int = 8,
    backgrounds: Tensor | None = None,
    chunk_elements: int = 2**20,
) -> tuple[Tensor, Tensor, int]:
    """Alpha-composite projected Gaussians front to back, tile by tile.

    Args:
        means2d: projected centres, pixels. [C, N, 2]
        conics: inverse 2D covariances (a, b, c) of [[a, b], [b, c]], 1/pixels². [C, N, 3]
        opacities: peak opacities in [0, 1]. [C, N]
        colors: per-camera colours (or any D channels) of each Gaussian. [C, N, D]
        depths: camera-frame depths, metres; nearer is drawn in front (ties: lower index first). [C, N]
        radii: bounding-box half-sizes, pixels; Gaussians with a zero entry are not drawn. [C, N, 2]
        width, height: image size, pixels.
        tile_size: tile edge, pixels.
        backgrounds: colour behind the Gaussians, added as T_final · background. [C, D] or None (black)
        chunk_elements: most Gaussian × pixel pairs evaluated at once; bounds peak memory
            (roughly 50 bytes per pair in backward, float32). A batch holds at least one tile, so a
            single tile whose list alone is longer than chunk_elements / tile_size² exceeds it.

    Returns:
        A tuple: images [C, H, W, D], alphas (1 - final transmittance) [C, H, W, 1], and the number
        of tile-Gaussian intersections drawn.
    """
    n_cams, n_gauss = depths.shape
    channels = colors.shape[-1]
    tiles_x, tiles_y = tile_grid(width, height, tile_size)
    n_tiles = n_cams * tiles_x * tiles_y
    pixels = tile_size * tile_size
    device, dtype = means2d.device, means2d.dtype

    tile_of_isect, gauss_of_isect = intersect_tiles(means2d, radii, depths, tile_size, tiles_x, tiles_y)
    counts = torch.bincount(tile_of_isect, minlength=n_tiles)
    starts = torch.cumsum(counts, 0) - counts
    tile_order = torch.argsort(counts, descending=True, stable=True)
    sorted_counts = counts[tile_order].tolist()

    # One extra, fully transparent Gaussian at index C*N pads short tile lists.
    pad = n_cams * n_gauss
    flat_means = torch.cat([means2d.reshape(-1, 2), means2d.new_zeros(1, 2)])
    flat_conics = torch.cat([conics.reshape(-1, 3), conics.new_zeros(1, 3)])
    flat_opac = torch.cat([opacities.reshape(-1), opacities.new_zeros(1)])
    flat_colors = torch.cat([colors.reshape(-1, channels), colors.new_zeros(1, channels)])
    if backgrounds is None:
        backgrounds = torch.zeros(n_cams, channels, device=device, dtype=dtype)
    tile_ids = torch.arange(n_tiles, device=device)
    tile_cam = tile_ids // (tiles_x * tiles_y)
    tile_centre = torch.stack(
        [(tile_ids % tiles_x).to(dtype) + 0.5, ((tile_ids // tiles_x) % tiles_y).to(dtype) + 0.5], dim=-1
    ) * tile_size
    pixel_feats = _pixel_features(tile_size, device, dtype)

    tile_images, tile_alphas = [], []
    first = 0
    while first < n_tiles and sorted_counts[first] > 0:
        longest = sorted_counts[first]
        batch = tile_order[first : first + max(1, chunk_elements // (longest * pixels))]
        first += len(batch)
        slot = torch.arange(longest, device=device)
        isect = starts[batch, None] + slot
        filled = slot < counts[batch, None]
        gauss = torch.where(filled, gauss_of_isect[isect.clamp_max(len(gauss_of_isect) - 1)], pad)  # [B, M]
        coefs = _sigma_coefficients(flat_means[gauss] - tile_centre[batch, None], flat_conics[gauss])
        image, alpha = _CompositeTiles.apply(
            coefs, flat_opac[gauss], flat_colors[gauss], backgrounds[tile_cam[batch]], pixel_feats
        )
        tile_images.append(image)
        tile_alphas.append(alpha)
    empty = tile_order[first:]
    tile_images.append(backgrounds[tile_cam[empty], None, :].expand(len(empty), pixels, channels))
    tile_alphas.append(means2d.new_zeros(len(empty), pixels))

    unsort = torch.argsort(tile_order)
    images = _untile(torch.cat(tile_images)[unsort], n_cams, tiles_x, tiles_y, tile_size, width, height)
    alphas = _untile(torch.cat(tile_alphas)[unsort, :, None], n_cams, tiles_x, tiles_y, tile_size, width, height)
    return images, alphas, len(tile_of_isect)


@torch.no_grad()
def intersect_tiles(
    means2d: Tensor, radii: Tensor, depths: Tensor, tile_size: int, tiles_x: int, tiles_y: int
) -> tuple[Tensor, Tensor]:
    """List every (tile, Gaussian) overlap, sorted by tile and, within a tile, by depth.

    Args:
        means2d: [C, N, 2] pixels. radii: [C, N, 2] pixels (0 = culled). depths: [C, N] metres.
        tile_size: tile edge, pixels. tiles_x, tiles_y: the tile grid.

    Returns:
        tile ids (camera-major, then row-major) [I] and flat Gaussian ids (camera * N + gaussian) [I].
    """
    n_gauss = depths.shape[1]
    flat_radii = radii.reshape(-1, 2)
    ids = torch.nonzero((flat_radii > 0).all(-1)).squeeze(-1)
    ids = ids[torch.argsort(depths.reshape(-1)[ids], stable=True)]
    centre = means2d.detach().reshape(-1, 2)[ids] / tile_size
    extent = flat_radii[ids].to(centre.dtype) / tile_size
    # The same tile rectangle as gsplat's isect_tiles: [floor(c - r), ceil(c + r)) clamped to the grid.
    grid = torch.tensor([tiles_x, tiles_y], device=centre.device)
    lo = torch.minimum(torch.floor(centre - extent).clamp_min(0).long(), grid)
    hi = torch.minimum(torch.ceil(centre + extent).clamp_min(0).long(), grid)
    size = hi - lo
    per_gauss = size[:, 0] * size[:, 1]
    owner = torch.repeat_interleave(torch.arange(len(ids), device=ids.device), per_gauss)
    local = torch.arange(len(owner), device=ids.device) - (torch.cumsum(per_gauss, 0) - per_gauss)[owner]
    tile_x = lo[owner, 0] + local % size[owner, 0]
    tile_y = lo[owner, 1] + local // size[owner, 0]
    cam = ids[owner] // n_gauss
    tile = (cam * tiles_y + tile_y) * tiles_x + tile_x
    order = torch.argsort(tile, stable=True)
    return tile[order], ids[owner][order]


def _pixel_features(tile_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """[1, x, y, x², y², xy] of the pixel centres of a tile, relative to the tile centre. [P, 6]"""
    offsets = torch.arange(tile_size, device=device, dtype=dtype) + 0.5 - tile_size / 2
    py, px = torch.meshgrid(offsets, offsets, indexing="ij")
    px, py = px.reshape(-1), py.reshape(-1)
    return torch.stack([torch.ones_like(px), px, py, px * px, py * py, px * py], dim=-1)


def _sigma_coefficients(means_local: Tensor, conics: Tensor) -> Tensor:
    """Coefficients of σ(p) = ½ (m - p)ᵀ [[a, b], [b, c]] (m - p) as a quadratic in p. [..., 2], [..., 3] -> [..., 6]

    Tile-local coordinates keep the constant term small, so the expanded form loses no precision
    that matters where alpha >= 1/255 (|m| is at most a tile plus a bounding box away).
    """
    mx, my = means_local.unbind(-1)
    a, b, c = conics.unbind(-1)
    return torch.stack(
        [0.5 * a * mx * mx + 0.5 * c * my * my + b * mx * my, -(a * mx + b * my), -(c * my + b * mx), 0.5 * a, 0.5 * c, b],
        dim=-1,
    )


def _blend(
    coefs: Tensor, opacities: Tensor, pixel_feats: Tensor, frozen_mask: bool = False
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Per (tile, Gaussian, pixel): the falloff exp(-σ), alpha after gsplat's rules, the
    transmittance in front of it, and (if asked, for backward) where alpha is frozen: clamped at
    0.999 or dropped, so it passes no gradient. All [B, M, P]."""
    falloff = torch.matmul(coefs, pixel_feats.T).neg_().exp_()
    alpha = falloff * opacities[..., None]
    frozen = alpha >= MAX_ALPHA if frozen_mask else None
    alpha.clamp_(max=MAX_ALPHA)
    # masked_fill_ rather than multiplying by a bool mask, which would first copy it to float.
    alpha.masked_fill_(alpha < ALPHA_THRESHOLD, 0.0)
    trans_after = torch.cumprod(1 - alpha, dim=1)
    alpha.masked_fill_(trans_after <= MIN_TRANSMITTANCE, 0.0)
    # Exact for every kept Gaussian; for dropped ones alpha is 0, so their weight is 0 whatever this is.
    trans_before = trans_after.div_(1 - alpha)
    if frozen_mask:
        frozen.logical_or_(alpha == 0)
    return falloff, alpha, trans_before, frozen


class _CompositeTiles(torch.autograd.Function):
    """images [B, P, D], alphas [B, P] = composite(coefs [B, M, 6], opacities [B, M], colors [B, M, D],
    backgrounds [B, D], pixel_feats [P, 6]); Gaussians in each tile's list are in depth order."""

    @staticmethod
    def forward(ctx, coefs, opacities, colors, backgrounds, pixel_feats):
        _, alpha, trans_before, _ = _blend(coefs, opacities, pixel_feats)
        weights = alpha.mul_(trans_before)
        alphas = weights.sum(dim=1)  # Σ αᵢ Tᵢ telescopes to 1 - T_final
        images = torch.bmm(weights.transpose(1, 2), colors) + (1 - alphas)[..., None] * backgrounds[:, None, :]
        ctx.save_for_backward(coefs, opacities, colors, backgrounds, pixel_feats)
        return images, alphas

    @staticmethod
    def backward(ctx, grad_images, grad_alphas):
        coefs, opacities, colors, backgrounds, pixel_feats = ctx.saved_tensors
        falloff, alpha, trans_before, frozen = _blend(coefs, opacities, pixel_feats, frozen_mask=True)
        weights = alpha * trans_before
        trans_final = 1 - weights.sum(dim=1)  # [B, P]

        grad_colors = torch.bmm(weights, grad_images)
        grad_weights = torch.bmm(colors, grad_images.transpose(1, 2))  # [B, M, P]
        # d(image)/d(alpha_i) = c_i T_i - (Σ_{j>i} c_j w_j + T_final bg) / (1 - alpha_i), and
        # d(alpha_out)/d(alpha_i) = T_final / (1 - alpha_i).
        contrib = weights.mul_(grad_weights)
        behind = contrib.sum(dim=1, keepdim=True) - contrib.cumsum(dim=1)
        tail = trans_final * ((grad_images * backgrounds[:, None, :]).sum(-1) - grad_alphas)
        grad_alpha = trans_before.mul_(grad_weights).sub_((behind + tail[:, None, :]).div_(1 - alpha))
        grad_alpha.masked_fill_(frozen, 0.0)

        grad_opacities = (grad_alpha * falloff).sum(dim=-1)
        grad_sigma = grad_alpha.mul_(alpha).neg_()  # alpha = opacity · exp(-σ) where it is not masked
        grad_coefs = torch.matmul(grad_sigma, pixel_feats)
        grad_backgrounds = (trans_final[..., None] * grad_images).sum(dim=1)
        return grad_coefs, grad_opacities, grad_colors, grad_backgrounds, None


def _untile(tiles: Tensor, n_cams: int, tiles_x: int, tiles_y: int, tile_size: int, width: int, height: int) -> Tensor:
    """[C * tiles_y * tiles_x, P, D] tiles -> [C, height, width, D] images (cropping the ragged edge)."""
    channels = tiles.shape[-1]
    grid = tiles.reshape(n_cams, tiles_y, tiles_x, tile_size, tile_size, channels).permute(0, 1, 3, 2, 4, 5)
    return grid.reshape(n_cams, tiles_y * tile_size, tiles_x * tile_size, channels)[:, :height, :width]
