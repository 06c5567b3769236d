"""The world's look: a textured head shaded under studio lights, composited over a backdrop, anti-aliased.

Shading is Blinn–Phong in linear light with the atlas of `appearance`: albedo, a specular strength (skin is
nearly matte, lips glossy, eyes wet) and baked occlusion that darkens the mouth cavity and the eye sockets
(there are no cast shadows). Diffuse light is "wrapped" a little past the terminator, the cheap stand-in for
light scattering under skin. Triangles are rendered two-sided with back faces culled: the mesh is closed and
consistently wound, and the inner mouth faces inward, so an open jaw shows cavity, teeth and tongue behind
the lips. Frames are rendered at `supersample`× the output size and box-filtered down (anti-aliasing).
Visibility comes from the head model's one mesh renderer (`foundation.head.renderer.rasterize`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from datasets.errors import ReplicaError
from foundation.camera import Camera
from foundation.head import HeadModel
from foundation.head.renderer import rasterize, vertex_normals
from foundation.world.scene import Lighting
from foundation.world.texels import MAX_UV_SPREAD

WRAP = 0.25
"""Diffuse wrap: light reaches this far (in cos θ) past the terminator, softening skin shading."""
SHININESS = 30.0
"""Blinn–Phong exponent."""


@dataclass(frozen=True)
class Topology:
    """The mesh the renderer draws (a head model's topology).

    Fields:
        faces: triangles (long). [T, 3]
        verts_uvs: texture coordinates, image convention (v down). [Vt, 2]
        faces_uvs: per-triangle UV ids (long). [T, 3]
        bust: triangles of the neck and shoulders. [T] bool
        inner_mouth: triangles of the mouth cavity, teeth and tongue. [T] bool
    """

    faces: Tensor
    verts_uvs: Tensor
    faces_uvs: Tensor
    bust: Tensor
    inner_mouth: Tensor

    @classmethod
    def of(cls, head: HeadModel) -> Topology:
        """The topology of a head model, with the bust and inner mouth found from its part names."""
        def triangles_of(*names: str) -> Tensor:
            ids = torch.tensor([head.part_names.index(n) for n in names if n in head.part_names], dtype=torch.long)
            return torch.isin(head.part.cpu(), ids)[head.faces.cpu()].all(1)

        return cls(head.faces.cpu(), head.verts_uvs.cpu(), head.faces_uvs.cpu(), triangles_of("neck", "shoulders"),
                   triangles_of("mouth_cavity", "teeth_upper", "teeth_lower", "tongue"))


@dataclass(frozen=True)
class Frames:
    """Rendered frames.

    Fields:
        rgb: images over the background (sRGB). [F, H, W, 3] uint8
        alpha: fraction of each pixel covered by the head. [F, H, W] float32 in [0, 1]
    """

    rgb: np.ndarray
    alpha: np.ndarray


def render_textured(verts: Tensor, mesh: Topology, texture: Tensor, camera: Camera, lighting: Lighting,
                    background: np.ndarray, supersample: int = 2, backend: str = "auto") -> Frames:
    """Render posed heads with their texture atlas, shaded, over a background.

    Args:
        verts: posed vertices, world metres. [F, V, 3]
        mesh: faces and UVs of the head.
        texture: `Appearance.texture` (albedo RGB, specular, occlusion). [S, S, 5] float in [0, 1]
        camera: the pinhole camera (image size from it).
        lighting: directional lights + ambient, world frame.
        background: [H, W, 3] float sRGB in [0, 1].
        supersample: render at this multiple of the size and box-filter down (1 = no anti-aliasing).
        backend: mesh rasterizer backend (`foundation.head.renderer.rasterize`).
    """
    height, width = camera.height, camera.width
    if tuple(background.shape) != (height, width, 3):
        raise ReplicaError("render_textured.background", f"expected [{height}, {width}, 3], got {list(background.shape)}")
    if verts.dim() != 3 or verts.shape[-1] != 3:
        raise ReplicaError("render_textured.verts", f"expected [F, V, 3], got {list(verts.shape)}")
    device = verts.device
    camera = camera.to(device)
    big = Camera(camera.viewmat, camera.K * torch.tensor([[supersample], [supersample], [1.0]], device=device),
                 width * supersample, height * supersample)
    verts = verts.float()
    big_h, big_w = big.height, big.width
    faces = mesh.faces.to(device)
    local, bary = _visible_faces(verts, mesh, big, backend)
    covered = local >= 0
    frame_ids = torch.arange(verts.shape[0], device=device).repeat_interleave(big_h * big_w)[covered]
    local, bary = local[covered], bary[covered]

    uv = _pixel_uvs(mesh, local, bary)
    texels = _sample(texture.to(device), uv)
    normals = vertex_normals(verts, faces)  # [F, V, 3]
    corners = faces[local]  # [P, 3]
    normal = (normals[frame_ids[:, None], corners] * bary[..., None]).sum(1)
    point = (verts[frame_ids[:, None], corners] * bary[..., None]).sum(1)
    centre = camera.center
    colour = _shade(texels, F.normalize(normal, dim=-1), F.normalize(centre - point, dim=-1), lighting)

    bg = torch.as_tensor(background, dtype=torch.float32, device=device)
    bg = bg.repeat_interleave(supersample, 0).repeat_interleave(supersample, 1)
    image = bg.expand(verts.shape[0], big_h, big_w, 3).reshape(-1, 3).clone()
    image[covered] = colour
    coverage = covered.float().view(-1, big_h, big_w, 1)
    image = torch.cat([image.view(-1, big_h, big_w, 3), coverage], -1).permute(0, 3, 1, 2)
    image = F.avg_pool2d(image, supersample).permute(0, 2, 3, 1)
    rgb = (image[..., :3].clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
    return Frames(rgb=rgb.cpu().numpy(), alpha=image[..., 3].cpu().numpy())


def _visible_faces(verts: Tensor, mesh: Topology, camera: Camera, backend: str) -> tuple[Tensor, Tensor]:
    """Nearest triangle (index into `mesh.faces`, -1 for none) [F·H·W] and its barycentrics [F·H·W, 3].

    A bust's top may hide inside the head, in front of the back of the mouth: invisible with the lips closed,
    but it would show through an open mouth. The bust is therefore rasterized on its own and drawn only where
    it is nearer than the rest and the rest is not the inner mouth — never in front of the mouth from a
    head-and-shoulders view.
    """
    faces = mesh.faces.to(verts.device)
    passes = []
    for subset in (~mesh.bust, mesh.bust):
        ids = torch.nonzero(subset.to(verts.device))[:, 0]
        fragments = rasterize(verts, faces[ids], camera, cull_backfaces=True, backend=backend)
        hit = fragments.face_ids.flatten()
        local = torch.where(hit >= 0, ids[hit.clamp_min(0)], -1) if len(ids) else hit
        passes.append((local, fragments.depth.flatten(), fragments.bary.reshape(-1, 3)))
    (head, head_z, head_bary), (bust, bust_z, bust_bary) = passes
    inner = mesh.inner_mouth.to(verts.device)[head.clamp_min(0)] & (head >= 0)
    use_bust = (bust >= 0) & ((head < 0) | ((bust_z < head_z) & ~inner))
    return torch.where(use_bust, bust, head), torch.where(use_bust[:, None], bust_bary, head_bary)


def _pixel_uvs(mesh: Topology, faces: Tensor, bary: Tensor) -> Tensor:
    """Texture coordinates of covered pixels. faces [P], bary [P, 3] → [P, 2]"""
    corner_uv = mesh.verts_uvs.to(bary)[mesh.faces_uvs.to(faces.device)[faces]]  # [P, 3, 2]
    # A triangle whose UVs lie in two atlas regions (a strip joining two parts) takes the texel of its nearest
    # corner instead of interpolating across the atlas between the regions.
    spread = (corner_uv.max(1).values - corner_uv.min(1).values).max(1).values
    nearest = F.one_hot(bary.argmax(1), 3).to(bary)
    weights = torch.where((spread > MAX_UV_SPREAD)[:, None], nearest, bary)
    return (corner_uv * weights[..., None]).sum(1)


def _sample(texture: Tensor, uv: Tensor) -> Tensor:
    """Bilinear texture lookup. texture [S, S, C], uv [P, 2] in [0, 1] image convention → [P, C]"""
    grid = (uv * 2.0 - 1.0).view(1, 1, -1, 2)
    sampled = F.grid_sample(texture.permute(2, 0, 1)[None].float(), grid, mode="bilinear", align_corners=False,
                            padding_mode="border")
    return sampled[0, :, 0].T


def _shade(texels: Tensor, normal: Tensor, view: Tensor, lighting: Lighting) -> Tensor:
    """Blinn–Phong with wrapped diffuse, in linear light. texels [P, 5], normal/view [P, 3] unit → sRGB [P, 3]"""
    albedo = texels[:, :3].clamp(0, 1) ** 2.2
    specular_strength, occlusion = texels[:, 3:4], texels[:, 4:5]
    # Two-sided: a normal interpolated to face away from the camera (silhouettes, the lip edge) is flipped.
    normal = torch.where(((normal * view).sum(-1, keepdim=True) < 0), -normal, normal)
    directions = torch.as_tensor(lighting.directions, dtype=torch.float32, device=normal.device)
    colours = torch.as_tensor(lighting.colours, dtype=torch.float32, device=normal.device)
    ambient = torch.as_tensor(lighting.ambient, dtype=torch.float32, device=normal.device)
    cosine = normal @ directions.T  # [P, L]
    diffuse = ((cosine + WRAP) / (1.0 + WRAP)).clamp_min(0) @ colours
    half = F.normalize(directions[None] + view[:, None], dim=-1)  # [P, L, 3]
    highlight = ((half * normal[:, None]).sum(-1).clamp_min(0) ** SHININESS) * (cosine > 0)
    specular = specular_strength * (highlight @ colours)
    linear = occlusion * (albedo * (ambient + diffuse) + specular)
    return linear.clamp(0, 1) ** (1.0 / 2.2)
