"""EWA projection of 3D Gaussians to image-space 2D Gaussians, in pure PyTorch.

This is the first half of the torch rasterizer backend and follows gsplat 1.5.3's CUDA projection
(`ProjectionEWA3DGSFused.cu`, pinhole camera, `rasterize_mode="classic"`) step for step, so both
backends cull the same Gaussians and give them the same footprints: world→camera, Σ = R S Sᵀ Rᵀ,
the Jacobian of the perspective map (with the mean clamped to 1.3× the field of view so Gaussians
far outside the frustum do not get huge footprints), the eps2d low-pass blur, the conic (inverse
2D covariance), and an opacity-aware bounding-box radius. Everything is differentiable through
autograd except the integer radii and the culling decision.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0
"""gsplat skips a Gaussian at a pixel when its alpha there is below this (and culls it when its opacity is)."""

MAX_EXTENT_SIGMAS = 3.33
"""gsplat's cap on the bounding-box half-size, in standard deviations."""

FOV_CLAMP_MARGIN = 0.3
"""The Jacobian is evaluated at the mean clamped to the frustum widened by this fraction of tan(fov/2)."""


class Projected(NamedTuple):
    """Per-camera image-space Gaussians. Culled ones have radii == 0 and must not be drawn."""

    means2d: Tensor
    """Projected centres, pixels (x right, y down; pixel (i, j) has its centre at (j + 0.5, i + 0.5)). [C, N, 2]"""
    conics: Tensor
    """Upper triangle (a, b, c) of the inverse 2D covariance [[a, b], [b, c]], 1/pixels². [C, N, 3]"""
    depths: Tensor
    """Camera-frame z of the centres, metres. [C, N]"""
    radii: Tensor
    """Half-sizes (x, y) of the screen-space bounding box, whole pixels; 0 where culled. [C, N, 2] int32"""


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices from quaternions (w, x, y, z), normalised here. [..., 4] -> [..., 3, 3]"""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def covariances(quats: Tensor, scales: Tensor) -> Tensor:
    """World-space 3D covariances Σ = R diag(s)² Rᵀ. quats [N, 4] wxyz, scales [N, 3] metres -> [N, 3, 3] m²"""
    rs = quat_to_rotmat(quats) * scales[..., None, :]
    return rs @ rs.transpose(-1, -2)


def project_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
) -> Projected:
    """Project N 3D Gaussians into C pinhole cameras (shapes are checked by `rasterize`).

    Args:
        means: centres, world metres. [N, 3]
        quats: rotations as quaternions (w, x, y, z), any norm. [N, 4]
        scales: standard deviations along the rotated axes, metres (linear, not log). [N, 3]
        opacities: peak opacities in [0, 1]; they shrink the bounding box. [N]
        viewmats: world→camera transforms (OpenCV: x right, y down, z forward). [C, 4, 4]
        Ks: pixel intrinsics [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]. [C, 3, 3]
        width, height: image size, pixels.
        eps2d: added to the diagonal of every 2D covariance (pixels²) so no footprint is narrower
            than about a pixel; classic mode, so opacity is not compensated (the peak alpha stays = opacity).
        near_plane, far_plane: Gaussians with depth outside [near_plane, far_plane] are culled, metres.
        radius_clip: Gaussians whose bounding-box half-sizes are both <= this many pixels are culled.

    Returns:
        `Projected` (means2d [C, N, 2], conics [C, N, 3], depths [C, N], radii [C, N, 2]).
    """
    rot = viewmats[:, None, :3, :3]  # [C, 1, 3, 3]
    means_cam = (rot @ means[None, :, :, None]).squeeze(-1) + viewmats[:, None, :3, 3]  # [C, N, 3]
    covars_cam = rot @ covariances(quats, scales)[None] @ rot.transpose(-1, -2)  # [C, N, 3, 3]

    x, y, depth = means_cam.unbind(-1)
    # Gaussians behind the near plane are culled below; dividing by a stand-in depth keeps their
    # (unused) projections finite, so zero upstream gradients never become 0 * inf = NaN.
    in_front = depth.detach() >= near_plane
    z = torch.where(in_front, depth, torch.ones_like(depth))
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    # Only the Jacobian sees the clamped mean; the projected centre itself is not clamped.
    tx = z * torch.clamp(
        x / z, min=-(cx / fx + FOV_CLAMP_MARGIN * tan_fovx), max=(width - cx) / fx + FOV_CLAMP_MARGIN * tan_fovx
    )
    ty = z * torch.clamp(
        y / z, min=-(cy / fy + FOV_CLAMP_MARGIN * tan_fovy), max=(height - cy) / fy + FOV_CLAMP_MARGIN * tan_fovy
    )
    zero = torch.zeros_like(z)
    jac = torch.stack([fx / z, zero, -fx * tx / z**2, zero, fy / z, -fy * ty / z**2], dim=-1)
    jac = jac.reshape(z.shape + (2, 3))  # [C, N, 2, 3]
    cov2d = jac @ covars_cam @ jac.transpose(-1, -2)  # [C, N, 2, 2]
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)  # [C, N, 2]

    var_x = cov2d[..., 0, 0] + eps2d
    var_y = cov2d[..., 1, 1] + eps2d
    cov_xy = 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    det = var_x * var_y - cov_xy**2
    # Culled Gaussians keep finite conics so their (never used) gradients stay finite too.
    safe_det = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([var_y / safe_det, -cov_xy / safe_det, var_x / safe_det], dim=-1)

    with torch.no_grad():
        opac = opacities.detach()[None].expand_as(z)
        # Beyond `extend` standard deviations alpha = opacity * exp(-m²/2) falls below 1/255 (gsplat,
        # following arXiv:2402.00525 B.2), so the box holds every pixel the Gaussian can touch.
        extend = torch.sqrt(2.0 * torch.log(opac.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
        extend = extend.clamp_max(MAX_EXTENT_SIGMAS)
        radius_x = torch.ceil(extend * var_x.detach().clamp_min(0).sqrt())
        radius_y = torch.ceil(extend * var_y.detach().clamp_min(0).sqrt())
        mx, my = means2d.detach().unbind(-1)
        visible = (
            in_front
            & (depth.detach() <= far_plane)
            & (det.detach() > 0)
            & (opac >= ALPHA_THRESHOLD)
            & ((radius_x > radius_clip) | (radius_y > radius_clip))
            & (mx + radius_x > 0)
            & (mx - radius_x < width)
            & (my + radius_y > 0)
            & (my - radius_y < height)
        )
        radii = torch.stack([radius_x, radius_y], dim=-1) * visible[..., None]
        radii = radii.nan_to_num(0).to(torch.int32)
    return Projected(means2d=means2d, conics=conics, depths=depth, radii=radii)


def tile_grid(width: int, height: int, tile_size: int) -> tuple[int, int]:
    """Number of tiles (across, down) covering the image."""
    return math.ceil(width / tile_size), math.ceil(height / tile_size)
