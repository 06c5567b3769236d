"""Real spherical harmonics up to degree 3, in gsplat's (and the original 3DGS's) convention.

A Gaussian's view-dependent colour is a per-channel SH expansion evaluated at the unit direction
from the camera centre to the Gaussian. The basis order, signs and constants below are the ones
gsplat's CUDA kernel uses (Sloan, "Efficient Spherical Harmonic Evaluation", JCGT 2013), so a
Gaussian avatar trained with the torch rasterizer renders the same colours under gsplat and back.
Like gsplat, the rasterizer adds 0.5 to the expansion and clamps at 0 (`sh_to_color`): a DC
coefficient of 0 is mid-grey, and `rgb_to_sh` inverts that for initialisation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from datasets.errors import ReplicaError

SH_C0 = 0.28209479177387814
"""The constant degree-0 basis function, 1 / (2 sqrt(pi))."""


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients per channel for bands 0..degree: (degree + 1)^2."""
    return (degree + 1) ** 2


def spherical_harmonics(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Evaluate an SH expansion per channel.

    Args:
        degree: highest band used, 0..3. Coefficients past (degree + 1)^2 are ignored, which lets
            training switch bands on one at a time with a fixed coefficient tensor (as gsplat does).
        dirs: viewing directions, need not be unit length (normalised here). [..., 3]
        coeffs: SH coefficients in gsplat's basis order. [..., K, 3] with K >= (degree + 1)^2

    Returns:
        The expansion (before the +0.5 offset). [..., 3]
    """
    if not 0 <= degree <= 3:
        raise ReplicaError("sh_degree", f"must be between 0 and 3, got {degree}")
    if coeffs.shape[-1] != 3 or coeffs.shape[-2] < num_sh_bases(degree):
        raise ReplicaError(
            "SH coefficients", f"expected [..., K>={num_sh_bases(degree)}, 3], got {list(coeffs.shape)}"
        )
    if dirs.shape[-1] != 3:
        raise ReplicaError("SH directions", f"expected [..., 3], got {list(dirs.shape)}")
    bases = sh_bases(degree, dirs)  # [..., B]
    return (bases[..., None] * coeffs[..., : bases.shape[-1], :]).sum(dim=-2)


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """The SH basis functions at the normalised directions. [..., 3] -> [..., (degree + 1)^2]"""
    dc = torch.full_like(dirs[..., 0], SH_C0)
    if degree == 0:
        return dc[..., None]
    # Unlike gsplat's CUDA path (rsqrt without epsilon), guard zero-length directions: a Gaussian
    # exactly at the camera centre is culled by the near plane anyway, but must not produce NaN grads.
    unit = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x, y, z = unit.unbind(-1)
    bands = [dc, -0.48860251190292 * y, 0.48860251190292 * z, -0.48860251190292 * x]
    if degree >= 2:
        z2 = z * z
        c1 = x * x - y * y
        s1 = 2.0 * x * y
        bands += [
            0.5462742152960395 * s1,
            -1.092548430592079 * z * y,
            0.9461746957575601 * z2 - 0.3153915652525201,
            -1.092548430592079 * z * x,
            0.5462742152960395 * c1,
        ]
    if degree >= 3:
        c2 = x * c1 - y * s1
        s2 = x * s1 + y * c1
        band3_xy = -2.285228997322329 * z2 + 0.4570457994644658
        bands += [
            -0.5900435899266435 * s2,
            1.445305721320277 * z * s1,
            band3_xy * y,
            z * (1.865881662950577 * z2 - 1.119528997770346),
            band3_xy * x,
            1.445305721320277 * z * c1,
            -0.5900435899266435 * c2,
        ]
    return torch.stack(bands, dim=-1)


def sh_to_color(expansion: Tensor) -> Tensor:
    """gsplat's activation of an SH expansion into a colour: clamp_min(expansion + 0.5, 0). [..., 3]"""
    return torch.clamp_min(expansion + 0.5, 0.0)


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """The DC coefficient that renders as `rgb` (in [0, 1]) from every direction. [..., 3] -> [..., 3]"""
    return (rgb - 0.5) / SH_C0
