"""The one mesh renderer of the head model: which triangle covers each pixel, and a differentiable image.

Every stage that draws the head mesh goes through here, one function per capability:

- `rasterize`: hard rasterization — the nearest triangle, its depth and perspective-correct barycentrics at
  every pixel centre. Two backends give the same answer (tested against each other): pytorch3d's
  `MeshRasterizer` (binned, fast on CUDA) and a vectorised torch rasterizer for CPUs. pytorch3d bins only on
  CUDA; on a CPU it tests every triangle against every pixel (~3 s for one 256² frame of the head), too slow
  for the synthetic world, so the torch path enumerates only each triangle's bounding-box pixels, for all
  triangles of all frames at once, and resolves visibility with one scatter-min per pixel.
- `silhouettes`: where the mesh covers the image (avatar training's alpha target).
- `render_soft`: a differentiable colour image — pytorch3d's soft rasterizer (several faces per pixel,
  sigmoid edge coverage) and softmax blending (Liu et al. 2019, "Soft Rasterizer"), so gradients reach the
  vertices (and through them the head parameters) and the colours; tracking's photometric refinement uses it.
- `vertex_normals`, `project_landmarks`: the geometry the renderers and the trackers share.

Cameras are `foundation.camera.Camera` (OpenCV convention: x right, y down, z forward; pixel (i, j) has its
centre at (j + 0.5, i + 0.5)); vertices are world metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from datasets.errors import ReplicaError
from foundation.camera import Camera

NEAR_M = 1e-3
"""Triangles with a corner closer to the camera than this (metres) are dropped."""
_DEPTH_STEPS_PER_M = 1 << 22
"""Depth quantisation for the packed (depth, face) z-test key: ~0.24 µm steps, up to ~500 m."""
_FACE_BITS = 20
"""Low bits of the z-test key holding the face id (up to ~1M triangles per frame)."""

Backend = Literal["auto", "torch", "pytorch3d"]


@dataclass(frozen=True)
class MeshFragments:
    """What hard rasterization sees at every pixel.

    Fields:
        face_ids: index into `faces` of the nearest triangle, -1 where none covers the pixel (long). [F, H, W]
        depth: camera-frame depth of that surface point, metres; -1 on background. [F, H, W]
        bary: its perspective-correct barycentric coordinates in the triangle (0 on background). [F, H, W, 3]
    """

    face_ids: Tensor
    depth: Tensor
    bary: Tensor

    @property
    def covered(self) -> Tensor:
        """True where a triangle covers the pixel. [F, H, W] bool"""
        return self.face_ids >= 0


def rasterize(verts: Tensor, faces: Tensor, camera: Camera, *, cull_backfaces: bool = True,
              backend: Backend = "auto") -> MeshFragments:
    """The nearest triangle, its depth and perspective-correct barycentrics at every pixel centre.

    Args:
        verts: vertices, world metres. [F, V, 3]
        faces: triangles, vertex ids, counter-clockwise seen from their front (long). [T, 3]
        camera: the pinhole camera; its width and height give the image size.
        cull_backfaces: skip triangles seen from behind (closed, consistently wound meshes only).
        backend: "torch", "pytorch3d", or "auto" (pytorch3d on CUDA, torch otherwise).
    Returns:
        MeshFragments of F frames at the camera's size.
    """
    if verts.dim() != 3 or verts.shape[-1] != 3:
        raise ReplicaError("rasterize.verts", f"expected [F, V, 3], got {list(verts.shape)}")
    if faces.dim() != 2 or faces.shape[-1] != 3 or faces.shape[0] >= 1 << _FACE_BITS:
        raise ReplicaError("rasterize.faces", f"expected [T, 3] with T < {1 << _FACE_BITS}, got {list(faces.shape)}")
    if backend == "auto":
        backend = "pytorch3d" if verts.is_cuda else "torch"
    if backend not in ("torch", "pytorch3d"):
        raise ReplicaError("rasterize.backend", f"unknown backend {backend!r}; use torch, pytorch3d or auto")
    camera = camera.to(verts.device)
    faces = faces.to(verts.device)
    verts_cam = camera.world_to_camera(verts.float())
    if backend == "torch":
        return _rasterize_torch(verts_cam, faces, camera.K, camera.height, camera.width, cull_backfaces)
    return _rasterize_pytorch3d(verts_cam, faces, camera.K, camera.height, camera.width, cull_backfaces)


def silhouettes(verts: Tensor, faces: Tensor, camera: Camera, backend: Backend = "auto") -> Tensor:
    """1.0 where the mesh covers a pixel centre, else 0.0 (both sides of every triangle count). [F, H, W]

    Args:
        verts: posed vertices, world metres. [F, V, 3]
        faces: triangles as vertex ids (long). [T, 3]
        camera: the pinhole camera.
    """
    return rasterize(verts, faces, camera, cull_backfaces=False, backend=backend).covered.float()


@dataclass(frozen=True)
class UVTexture:
    """A texture image mapped by per-corner UVs (the head model's atlas layout).

    Fields:
        verts_uvs: texture coordinates in [0, 1]², image convention (v down). [Vt, 2]
        faces_uvs: per-triangle indices into `verts_uvs` (long). [T, 3]
        image: RGB texels in [0, 1]; differentiable. [S, S, 3]
    """

    verts_uvs: Tensor
    faces_uvs: Tensor
    image: Tensor


def render_soft(verts: Tensor, faces: Tensor, camera: Camera, colors: Tensor | UVTexture, *,
                sigma: float = 1e-5, gamma: float = 1e-4, faces_per_pixel: int = 8,
                background: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """A differentiable colour image of the mesh (soft rasterization + softmax blending, pytorch3d).

    Args:
        verts: posed vertices, world metres. [F, V, 3]
        faces: triangles (long). [T, 3]
        camera: the pinhole camera.
        colors: per-vertex RGB in [0, 1], [V, 3] or [F, V, 3]; or a `UVTexture`.
        sigma: edge softness (NDC² units): a triangle's coverage falls off as a sigmoid of the squared
            distance to its edge over sigma; smaller is sharper (→ the hard silhouette).
        gamma: depth softness of the blend between the faces stacked on a pixel; smaller picks the nearest.
        faces_per_pixel: nearest faces blended per pixel.
        background: RGB behind the mesh, [3] (default black).
    Returns:
        rgb: colours composited over the background. [F, H, W, 3]
        alpha: soft coverage in [0, 1]. [F, H, W]
    Gradients flow to `verts`, `colors` (or the texture image) and the camera's tensors.
    """
    from pytorch3d.renderer import (BlendParams, MeshRasterizer, RasterizationSettings, TexturesUV,
                                    TexturesVertex, softmax_rgb_blend)
    from pytorch3d.structures import Meshes

    if verts.dim() != 3 or verts.shape[-1] != 3:
        raise ReplicaError("render_soft.verts", f"expected [F, V, 3], got {list(verts.shape)}")
    n_frames, device = verts.shape[0], verts.device
    faces = faces.to(device)
    if isinstance(colors, UVTexture):
        textures = TexturesUV(maps=colors.image.to(device)[None].expand(n_frames, -1, -1, -1),
                              faces_uvs=colors.faces_uvs.to(device)[None].expand(n_frames, -1, -1),
                              verts_uvs=_pytorch3d_uvs(colors.verts_uvs.to(device))[None].expand(n_frames, -1, -1))
    else:
        if colors.shape[-2:] != (verts.shape[1], 3):
            raise ReplicaError("render_soft.colors", f"expected [V, 3] or [F, V, 3] with V={verts.shape[1]}, "
                               f"got {list(colors.shape)}")
        textures = TexturesVertex(colors.to(device).expand(n_frames, -1, -1))
    meshes = Meshes(verts=verts.float(), faces=faces[None].expand(n_frames, -1, -1), textures=textures)
    settings = RasterizationSettings(image_size=(camera.height, camera.width),
                                     blur_radius=math.log(1.0 / 1e-4 - 1.0) * sigma, faces_per_pixel=faces_per_pixel,
                                     perspective_correct=True, cull_backfaces=False)
    fragments = MeshRasterizer(cameras=_pytorch3d_cameras(camera.to(device), n_frames), raster_settings=settings)(meshes)
    texels = meshes.sample_textures(fragments)  # [F, H, W, K, 3]
    background = torch.zeros(3, device=device) if background is None else background.to(device)
    blend = BlendParams(sigma=sigma, gamma=gamma, background_color=background)
    # znear/zfar only normalise the depth weights; they bracket a head in front of the camera.
    rgba = softmax_rgb_blend(texels, fragments, blend, znear=0.01, zfar=100.0)
    return rgba[..., :3], rgba[..., 3]


def vertex_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted unit vertex normals. verts [..., V, 3], faces [T, 3] (long) → [..., V, 3]"""
    tri = verts[..., faces, :]  # [..., T, 3, 3]
    face_normal = torch.linalg.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :], dim=-1)
    normals = torch.zeros_like(verts)
    for k in range(3):
        normals.index_add_(-2, faces[:, k], face_normal)
    return F.normalize(normals, dim=-1)


def project_landmarks(verts: Tensor, landmark_index: Tensor, camera: Camera) -> np.ndarray:
    """MediaPipe-convention landmarks of posed vertices as `camera` sees them.

    Args:
        verts: posed vertices, world metres. [F, V, 3]
        landmark_index: vertex id of each landmark (long). [478]
        camera: the camera.
    Returns:
        [F, 478, 3] float32: x = column / width, y = row / height (pixel-centre convention, so [0, 1] spans
        the image), z = depth relative to the landmarks' mean depth, in the units of x (negative toward the
        camera), as MediaPipe's FaceLandmarker reports it.
    """
    points = verts[:, landmark_index.to(verts.device)].detach().float().cpu()
    pixels, depth = camera.to("cpu").project(points)
    depth = depth[..., None]
    reference = depth.mean(1, keepdim=True)
    # A depth offset d at distance Z moves a point by d · fx / Z pixels sideways; MediaPipe scales z like x.
    z = (depth - reference) * camera.K[0, 0].cpu() / reference / camera.width
    out = torch.cat([pixels[..., :1] / camera.width, pixels[..., 1:2] / camera.height, z], -1)
    return out.numpy().astype(np.float32)


def _pytorch3d_cameras(camera: Camera, n_frames: int):
    from pytorch3d.utils import cameras_from_opencv_projection

    device = camera.K.device
    return cameras_from_opencv_projection(
        R=camera.viewmat[:3, :3].expand(n_frames, 3, 3), tvec=camera.viewmat[:3, 3].expand(n_frames, 3),
        camera_matrix=camera.K.expand(n_frames, 3, 3),
        image_size=torch.tensor([[camera.height, camera.width]], device=device).expand(n_frames, 2))


def _pytorch3d_uvs(verts_uvs: Tensor) -> Tensor:
    """Our UVs have v down (image convention); pytorch3d's TexturesUV has v up."""
    return torch.stack([verts_uvs[:, 0], 1.0 - verts_uvs[:, 1]], -1)


def _rasterize_pytorch3d(verts_cam: Tensor, faces: Tensor, K: Tensor, height: int, width: int,
                         cull_backfaces: bool) -> MeshFragments:
    from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
    from pytorch3d.structures import Meshes

    n_frames = verts_cam.shape[0]
    identity = Camera(torch.eye(4, device=verts_cam.device), K, width, height)
    settings = RasterizationSettings(image_size=(height, width), blur_radius=0.0, faces_per_pixel=1,
                                     cull_backfaces=cull_backfaces, perspective_correct=True)
    meshes = Meshes(verts=verts_cam, faces=faces.expand(n_frames, -1, -1))
    fragments = MeshRasterizer(cameras=_pytorch3d_cameras(identity, n_frames), raster_settings=settings)(meshes)
    packed = fragments.pix_to_face[..., 0]
    # pytorch3d packs face ids over the batch (f + frame · T); ours are per frame.
    offsets = torch.arange(n_frames, device=packed.device)[:, None, None] * faces.shape[0]
    face_ids = torch.where(packed >= 0, packed - offsets, packed)
    return MeshFragments(face_ids, fragments.zbuf[..., 0], fragments.bary_coords[..., 0, :])


def _rasterize_torch(verts_cam: Tensor, faces: Tensor, K: Tensor, height: int, width: int,
                     cull_backfaces: bool) -> MeshFragments:
    n_frames, n_faces = verts_cam.shape[0], faces.shape[0]
    device = verts_cam.device
    depth = verts_cam[..., 2]
    pixels = verts_cam[..., :2] / depth.clamp_min(NEAR_M)[..., None] * K[[0, 1], [0, 1]].to(verts_cam) + K[:2, 2].to(verts_cam)
    corner_xy = pixels[:, faces]  # [F, T, 3, 2] pixel units, pixel (i, j)'s centre at (j + 0.5, i + 0.5)
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
    face_ids = torch.full((n_frames * height * width,), -1, dtype=torch.long, device=device)
    face_ids[pixel[won]] = tri[won] % n_faces
    zbuf = torch.full((n_frames * height * width,), -1.0, dtype=verts_cam.dtype, device=device)
    zbuf[pixel[won]] = z[won]
    bary_coords = torch.zeros(n_frames * height * width, 3, dtype=verts_cam.dtype, device=device)
    bary_coords[pixel[won]] = bary[won]
    shape = (n_frames, height, width)
    return MeshFragments(face_ids.view(shape), zbuf.view(shape), bary_coords.view(*shape, 3))


def _cross(p: Tensor, q: Tensor, r: Tensor) -> Tensor:
    """Edge function: twice the signed area of (p, q, r). [N, 2] each → [N]"""
    return (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])
