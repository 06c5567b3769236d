"""Rasterize 3D Gaussians into images: one function, gsplat's semantics, two backends.

`rasterize` takes the arguments of `gsplat.rasterization` (classic, non-antialiased mode) and
returns the same images, so avatar code is written once and runs on a GPU box with gsplat's CUDA
kernels and on a laptop CPU with the pure-PyTorch backend (`render.projection` +
`render.raster_tiles`). A third, dense backend (`render.raster_reference`) is the readable
specification both are tested against. This module imports only torch; gsplat is imported lazily,
so the renderer works where neither Ray nor a CUDA toolkit is installed.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Literal

import torch
from torch import Tensor

from datasets.errors import ReplicaError
from render.projection import project_gaussians, tile_grid
from render.raster_reference import composite_dense
from render.raster_tiles import composite_tiles
from render.sh import num_sh_bases, sh_to_color, spherical_harmonics

Backend = Literal["auto", "torch", "gsplat", "reference"]
RenderMode = Literal["RGB", "D", "ED", "RGB+D", "RGB+ED"]
BACKENDS = ("auto", "torch", "gsplat", "reference")
RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
DEFAULT_TILE_SIZE = {"gsplat": 16, "torch": 8, "reference": 16}


def rasterize(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    render_mode: RenderMode = "RGB",
    backend: Backend = "auto",
    tile_size: int | None = None,
    chunk_elements: int = 2**20,
) -> tuple[Tensor, Tensor, dict]:
    """Render N 3D Gaussians into C pinhole cameras (gsplat's `rasterization`, classic mode).

    Differentiable w.r.t. means, quats, scales, opacities, colors and backgrounds.

    Args:
        means: centres, world metres. [N, 3]
        quats: rotations as quaternions (w, x, y, z); need not be normalised. [N, 4]
        scales: standard deviations along the rotated axes, metres (linear, not log). [N, 3]
        opacities: peak opacities in [0, 1] (after the sigmoid). [N]
        colors: with `sh_degree=None`, colours (any D channels, usually RGB in [0, 1]): [N, D], or per
            camera [C, N, D]. With `sh_degree`, SH coefficients in gsplat's basis order: [N, K, 3] or
            [C, N, K, 3], K >= (sh_degree + 1)^2; the colour is clamp_min(SH(dir) + 0.5, 0) where dir
            runs from the camera centre to the Gaussian.
        viewmats: world→camera transforms (OpenCV: x right, y down, z forward). [C, 4, 4]
        Ks: pixel intrinsics [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]. [C, 3, 3]
        width, height: image size, pixels. Pixel (i, j) has its centre at (j + 0.5, i + 0.5).
        sh_degree: SH band to evaluate up to (0..3), or None for plain colours.
        backgrounds: colour behind the Gaussians; the image is color + (1 - alpha) * background. [C, D]
        near_plane, far_plane: Gaussians with camera depth outside [near, far] are culled, metres.
        radius_clip: Gaussians whose screen bounding box is at most this many pixels are culled.
        eps2d: pixels² added to each 2D covariance's diagonal (low-pass filter; no opacity compensation).
        render_mode: "RGB"; "D" (alpha-weighted depth), "ED" (depth / alpha); "RGB+D", "RGB+ED"
            append that depth as a last channel.
        backend: "gsplat" (CUDA kernels), "torch" (tiled PyTorch, any device), "reference" (dense
            PyTorch; tiny scenes only), or "auto": gsplat when the inputs are on CUDA and its kernels
            load, else torch.
        tile_size: tile edge in pixels; None picks the backend's best: 16 for gsplat (its default),
            8 for torch (on CPU, smaller tiles waste fewer evaluations on pixels a Gaussian misses;
            measured 1.5-3x faster than 16 for avatar-sized splats). The image does not depend on it.
        chunk_elements: torch backend only: most Gaussian × pixel pairs evaluated at once (bounds memory).

    Returns:
        A tuple:

        - **colors**: rendered images. [C, height, width, D] (D + 1 with depth modes; 1 for D/ED)
        - **alphas**: accumulated opacity, 1 - final transmittance. [C, height, width, 1]
        - **info**: "backend", and per camera and Gaussian "radii" [C, N, 2] int32 (0 = culled),
          "means2d" [C, N, 2] (call `.retain_grad()` for densification), "depths" [C, N],
          "conics" [C, N, 3], "opacities" [C, N]; plus "width", "height", "tile_size", "n_cameras".
    """
    n_cams = _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree)
    if render_mode not in RENDER_MODES:
        raise ReplicaError("render_mode", f"must be one of {', '.join(RENDER_MODES)}, got {render_mode!r}")
    backend = _resolve_backend(backend, means.device)
    channels = colors.shape[-1]
    if backgrounds is not None and tuple(backgrounds.shape) != (n_cams, channels):
        raise ReplicaError("backgrounds", f"expected shape [{n_cams}, {channels}], got {list(backgrounds.shape)}")
    if tile_size is None:
        tile_size = DEFAULT_TILE_SIZE[backend]
    if tile_size <= 0:
        raise ReplicaError("tile_size", f"must be positive, got {tile_size}")
    if backend == "gsplat":
        return _rasterize_gsplat(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree=sh_degree,
            backgrounds=backgrounds, near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip,
            eps2d=eps2d, render_mode=render_mode, tile_size=tile_size,
        )  # fmt: skip

    projected = project_gaussians(
        means, quats, scales, opacities, viewmats, Ks, width, height, eps2d, near_plane, far_plane, radius_clip
    )
    colors = _colors_per_camera(colors, sh_degree, means, viewmats)
    depth = projected.depths[..., None]
    if render_mode in ("D", "ED"):
        colors = depth
    elif render_mode != "RGB":
        colors = torch.cat([colors, depth], dim=-1)
    if backgrounds is not None and render_mode != "RGB":
        # Like gsplat: depth channels composite over 0, not over a background depth.
        zeros = backgrounds.new_zeros(n_cams, 1)
        backgrounds = zeros if render_mode in ("D", "ED") else torch.cat([backgrounds, zeros], dim=-1)
    opacities = opacities[None].expand(n_cams, -1)
    info = {"backend": backend, "width": width, "height": height, "tile_size": tile_size, "n_cameras": n_cams}
    info.update(projected._asdict(), opacities=opacities)

    if backend == "torch":
        images, alphas, n_isects = composite_tiles(
            projected.means2d, projected.conics, opacities, colors, projected.depths, projected.radii,
            width, height, tile_size, backgrounds, chunk_elements,
        )  # fmt: skip
        tiles_x, tiles_y = tile_grid(width, height, tile_size)
        info.update(n_intersections=n_isects, tile_width=tiles_x, tile_height=tiles_y)
    else:
        images, alphas = composite_dense(
            projected.means2d, projected.conics, opacities, colors, projected.depths, projected.radii,
            width, height, backgrounds,
        )  # fmt: skip
    if render_mode in ("ED", "RGB+ED"):
        images = torch.cat([images[..., :-1], images[..., -1:] / alphas.clamp_min(1e-10)], dim=-1)
    return images, alphas, info


def available_backends() -> list[str]:
    """Backends usable on this machine, for `replica doctor`. Never initialises CUDA on a machine
    without a GPU; on a GPU machine it loads (and on first use JIT-builds) gsplat's kernels."""
    names = ["torch", "reference"]
    if _gsplat_kernels_load():
        names.insert(0, "gsplat")
    return names


def default_backend() -> str:
    """What backend="auto" picks for CUDA inputs here: "gsplat" if its kernels load, else "torch"."""
    return available_backends()[0]


@functools.cache
def _gsplat_kernels_load() -> bool:
    """Whether gsplat's CUDA extension imports (cached: building it can take minutes, once)."""
    if not torch.cuda.is_available() or importlib.util.find_spec("gsplat") is None:
        return False
    try:
        from gsplat.cuda._backend import _C
    except Exception:  # a broken toolkit fails in many ways; any of them means "use torch"
        return False
    return _C is not None


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ReplicaError("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "gsplat" if device.type == "cuda" and _gsplat_kernels_load() else "torch"
    if backend == "gsplat" and (device.type != "cuda" or not _gsplat_kernels_load()):
        raise ReplicaError("backend", f"gsplat needs CUDA tensors and its compiled kernels (inputs on {device})")
    return backend


def _rasterize_gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width, height, **kwargs):
    from gsplat import rasterization

    # packed=False keeps info["means2d"] etc. [C, N, ...], the same layout as the torch backend.
    images, alphas, meta = rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, packed=False,
        rasterize_mode="classic", **kwargs,
    )  # fmt: skip
    meta["backend"] = "gsplat"
    return images, alphas, meta


def _colors_per_camera(colors: Tensor, sh_degree: int | None, means: Tensor, viewmats: Tensor) -> Tensor:
    """Per-camera colours [C, N, D]: plain colours broadcast, or SH evaluated toward each camera."""
    n_cams, n_gauss = viewmats.shape[0], means.shape[0]
    if sh_degree is None:
        return colors.expand(n_cams, n_gauss, colors.shape[-1])
    rot, trans = viewmats[:, :3, :3], viewmats[:, :3, 3]
    cam_centres = -(rot.transpose(-1, -2) @ trans[..., None]).squeeze(-1)  # [C, 3], valid for rigid viewmats
    dirs = means[None] - cam_centres[:, None]  # [C, N, 3]
    coeffs = colors.expand(n_cams, *colors.shape[-3:])
    return sh_to_color(spherical_harmonics(sh_degree, dirs, coeffs))


def _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree) -> int:
    """Raise a one-line ReplicaError for the first malformed argument; return the number of cameras."""
    if means.ndim != 2 or means.shape[-1] != 3:
        raise ReplicaError("means", f"expected shape [N, 3], got {list(means.shape)}")
    n_gauss = means.shape[0]
    for name, tensor, shape in (
        ("quats", quats, (n_gauss, 4)),
        ("scales", scales, (n_gauss, 3)),
        ("opacities", opacities, (n_gauss,)),
    ):
        if tuple(tensor.shape) != shape:
            raise ReplicaError(name, f"expected shape {list(shape)} to match means, got {list(tensor.shape)}")
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4):
        raise ReplicaError("viewmats", f"expected shape [C, 4, 4], got {list(viewmats.shape)}")
    n_cams = viewmats.shape[0]
    if tuple(Ks.shape) != (n_cams, 3, 3):
        raise ReplicaError("Ks", f"expected shape [{n_cams}, 3, 3] to match viewmats, got {list(Ks.shape)}")
    if width <= 0 or height <= 0:
        raise ReplicaError("image size", f"width and height must be positive, got {width}x{height}")
    if sh_degree is None:
        if colors.shape[-2:-1] != (n_gauss,) or colors.ndim not in (2, 3) or colors.shape[:-2] not in ((), (n_cams,)):
            raise ReplicaError("colors", f"expected [N, D] or [C, N, D] with N={n_gauss}, got {list(colors.shape)}")
    else:
        if not 0 <= sh_degree <= 3:
            raise ReplicaError("sh_degree", f"must be None or 0..3, got {sh_degree}")
        k_min = num_sh_bases(sh_degree)
        if (
            colors.ndim not in (3, 4)
            or colors.shape[-3] != n_gauss
            or colors.shape[-2] < k_min
            or colors.shape[-1] != 3
            or colors.shape[:-3] not in ((), (n_cams,))
        ):
            raise ReplicaError(
                "colors", f"expected SH [N, K>={k_min}, 3] or [C, N, K, 3] with N={n_gauss}, got {list(colors.shape)}"
            )
    return n_cams
