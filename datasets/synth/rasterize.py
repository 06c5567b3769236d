"""Triangle rasterization for the synthetic world: pytorch3d's `MeshRasterizer` on CUDA, a vectorised torch
rasterizer on CPU.

pytorch3d bins triangles into screen tiles only on CUDA; its CPU kernel tests every triangle against every
pixel (about 3 s for one 256² frame of the head model), too slow to render a dataset. The CPU path here
enumerates, for each triangle, only the pixels of its bounding box, all triangles of all frames at once, and
resolves visibility with one scatter-min per pixel. Both paths return pytorch3d `Fragments` with one face per
pixel, in the OpenCV image convention (row 0 at the top), so shading code is shared and the torch path is
tested against pytorch3d.
"""

from __future__ import annotations

import torch
from pytorch3d.renderer.mesh.rasterizer import Fragments
from torch import Tensor

from datasets.errors import ReplicaError

NEAR_M = 1e-3
"""Triangles with a corner closer to the camera than this (metres) are dropped."""
_DEPTH_STEPS_PER_M = 1 << 22
"""Depth quantisation for the packed (depth, face) z-test key: ~0.24 µm steps, up to ~500 m."""
_FACE_BITS = 20
"""Low bits of the z-test key holding the face id (up to ~1M triangles per frame)."""


def rasterize(verts_cam: Tensor, faces: Tensor, K: Tensor, height: int, width: int, cull_backfaces: bool = True,
              backend: str = "auto") -> Fragments:
    """The nearest triangle, its depth and perspective-correct barycentrics at every pixel centre.

    Args:
        verts_cam: vertices in the OpenCV camera frame (x right, y down, z forward), metres. [F, V, 3]
        faces: triangles, vertex ids, counter-clockwise seen from their front. [T, 3]
        K: pixel intrinsics. [3, 3]
        height, width: image size in pixels.
        cull_backfaces: skip triangles seen from behind (closed, consistently wound meshes only).
        backend: "torch", "pytorch3d", or "auto" (pytorch3d on CUDA, torch otherwise).
    Returns:
        Fragments with K=1: pix_to_face [F, H, W, 1] (packed id f + frame * T, -1 for background),
        zbuf [F, H, W, 1] (camera depth, metres; -1 for background), bary_coords [F, H, W, 1, 3],
        dists [F, H, W, 1] (zeros: hard rasterization has no soft edges).
    """
    if verts_cam.dim() != 3 or verts_cam.shape[-1] != 3:
        raise ReplicaError("rasterize.verts_cam", f"expected [F, V, 3], got {list(verts_cam.shape)}")
    if faces.shape[-1] != 3 or faces.shape[0] >= 1 << _FACE_BITS:
        raise ReplicaError("rasterize.faces", f"expected [T, 3] with T < {1 << _FACE_BITS}, got {list(faces.shape)}")
    if backend == "auto":
        backend = "pytorch3d" if verts_cam.is_cuda else "torch"
    if backend == "torch":
        return _rasterize_torch(verts_cam, faces, K, height, width, cull_backfaces)
    if backend == "pytorch3d":
        return _rasterize_pytorch3d(verts_cam, faces, K, height, width, cull_backfaces)
    raise ReplicaError("rasterize.backend", f"unknown backend {backend!r}; use torch, pytorch3d or auto")


def _rasterize_pytorch3d(verts_cam: Tensor, faces: Tensor, K: Tensor, height: int, width: int,
                         cull_backfaces: bool) -> Fragments:
    from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
    from pytorch3d.structures import Meshes
    from pytorch3d.utils import cameras_from_opencv_projection

    n_frames = verts_cam.shape[0]
    eye = torch.eye(3, device=verts_cam.device).expand(n_frames, 3, 3)
    cameras = cameras_from_opencv_projection(
        R=eye, tvec=torch.zeros(n_frames, 3, device=verts_cam.device), camera_matrix=K.to(verts_cam).expand(n_frames, 3, 3),
        image_size=torch.tensor([[height, width]], device=verts_cam.device).expand(n_frames, 2),
    )
    settings = RasterizationSettings(image_size=(height, width), blur_radius=0.0, faces_per_pixel=1,
                                     cull_backfaces=cull_backfaces, perspective_correct=True)
    meshes = Meshes(verts=verts_cam, faces=faces.to(verts_cam.device).expand(n_frames, -1, -1))
    fragments = MeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
    return Fragments(fragments.pix_to_face, fragments.zbuf, fragments.bary_coords, torch.zeros_like(fragments.zbuf))


def _rasterize_torch(verts_cam: Tensor, faces: Tensor, K: Tensor, height: int, width: int,
                     cull_backfaces: bool) -> Fragments:
    n_frames, n_faces = verts_cam.shape[0], faces.shape[0]
    device = verts_cam.device
    depth = verts_cam[..., 2]
    pixels = verts_cam[..., :2] / depth.clamp_min(NEAR_M)[..., None] * K[[0, 1], [0, 1]].to(verts_cam) + K[:2, 2].to(verts_cam)
    corner_xy = pixels[:, faces]  # [F, T, 3, 2] pixel units, pixel (i, j)'s centre at (i + 0.5, j + 0.5)
    corner_z = depth[:, faces]  # [F, T, 3]
    a, b, c = corner_xy.unbind(2)
    # Twice the signed area; positive = counter-clockwise on screen as seen by the camera (y down, so it is the
    # opposite of the usual sign for a y-up image).
    area = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
    keep = (corner_z.min(-1).values > NEAR_M) & (area.abs() > 1e-12)
    if cull_backfaces:
        keep &= area < 0
    low = torch.ceil(corner_xy.min(2).values - 0.5).clamp_min(0)
    high = torch.floor(corner_xy.max(2).values - 0.5)
    high = torch.minimum(high, torch.tensor([width - 1, height - 1], dtype=high.dtype, device=device))
    span = (high - low + 1).clamp_min(0)
    count = torch.where(keep, span[..., 0] * span[..., 1], torch.zeros_like(area)).long().flatten()  # [F*T]

    tri = torch.repeat_interleave(torch.arange(n_frames * n_faces, device=device), count)
    first = torch.cumsum(count, 0) - count
    local = torch.arange(len(tri), device=device) - first[tri]
    span_x = span[..., 0].long().flatten()[tri]
    px = low[..., 0].long().flatten()[tri] + local % span_x
    py = low[..., 1].long().flatten()[tri] + local // span_x
    centre = torch.stack([px, py], -1).to(verts_cam) + 0.5
    xy = corner_xy.reshape(-1, 3, 2)[tri]
    # Screen-space barycentrics from edge functions, normalised by the triangle's signed area.
    edge = torch.stack([
        _cross(xy[:, 1], xy[:, 2], centre), _cross(xy[:, 2], xy[:, 0], centre), _cross(xy[:, 0], xy[:, 1], centre),
    ], -1) / area.flatten()[tri, None]  # fmt: skip
    inside = (edge >= -1e-6).all(-1)
    tri, px, py, edge = tri[inside], px[inside], py[inside], edge[inside]
    # Perspective-correct barycentrics: weights ∝ screen barycentrics / depth; depth = 1 / Σ (b_i / z_i).
    inv_z = edge / corner_z.reshape(-1, 3)[tri]
    z = 1.0 / inv_z.sum(-1)
    bary = inv_z * z[:, None]

    frame = tri // n_faces
    pixel = (frame * height + py) * width + px
    key = (z * _DEPTH_STEPS_PER_M).long() * (1 << _FACE_BITS) + tri % n_faces
    nearest = torch.full((n_frames * height * width,), torch.iinfo(torch.int64).max, dtype=torch.long, device=device)
    nearest.scatter_reduce_(0, pixel, key, reduce="amin")
    won = key == nearest[pixel]
    # Two fragments can tie only if one face covers a pixel twice, which edge tests exclude; `won` is unique.
    pix_to_face = torch.full((n_frames * height * width,), -1, dtype=torch.long, device=device)
    pix_to_face[pixel[won]] = tri[won]
    zbuf = torch.full((n_frames * height * width,), -1.0, dtype=verts_cam.dtype, device=device)
    zbuf[pixel[won]] = z[won]
    bary_coords = torch.zeros(n_frames * height * width, 3, dtype=verts_cam.dtype, device=device)
    bary_coords[pixel[won]] = bary[won]
    shape = (n_frames, height, width, 1)
    return Fragments(pix_to_face.view(shape), zbuf.view(shape), bary_coords.view(*shape, 3),
                     torch.zeros(shape, dtype=verts_cam.dtype, device=device))


def _cross(p: Tensor, q: Tensor, r: Tensor) -> Tensor:
    """Edge function: twice the signed area of (p, q, r). [N, 2] each → [N]"""
    return (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])
