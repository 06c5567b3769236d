"""Hard mesh rasterization of the head model through a `Camera` (pytorch3d), for what splats cannot tell:
which triangle covers a pixel.

Avatar training uses it for the head model's silhouette (the alpha target and the background plate) and
to see which triangles are visible when it initialises Gaussian colours from a frame. pytorch3d's kernels
run on CPU and CUDA; on CPU it tests every triangle against every pixel, which is fast enough at the
small sizes CPU training uses (~0.1 s for a 64² frame of the default head).
"""

from __future__ import annotations

import torch
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.structures import Meshes
from torch import Tensor

from datasets.errors import ReplicaError
from foundation.camera import Camera


@torch.no_grad()
def rasterize_mesh(verts: Tensor, faces: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
    """The nearest triangle and its barycentric coordinates at every pixel centre.

    Args:
        verts: posed vertices, world metres. [F, V, 3]
        faces: triangles as vertex ids (long). [T, 3]
        camera: the pinhole camera (its width and height give the image size).

    Returns:
        A tuple:

        - **face_ids**: triangle index per pixel, -1 where no triangle covers it (long). [F, H, W]
        - **barys**: perspective-correct barycentric coordinates in that triangle. [F, H, W, 3]
    """
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ReplicaError("rasterize_mesh.verts", f"expected [F, V, 3], got {list(verts.shape)}")
    width, height = camera.width, camera.height
    pixels, depth = camera.to(verts.device).project(verts)
    # pytorch3d's screen NDC: +x left, +y up, the shorter image side spans [-1, 1].
    half = min(width, height) / 2.0
    ndc = torch.stack([-(pixels[..., 0] - width / 2.0) / half, -(pixels[..., 1] - height / 2.0) / half, depth], -1)
    meshes = Meshes(verts=list(ndc.float()), faces=[faces] * verts.shape[0])
    face_ids, _, barys, _ = rasterize_meshes(
        meshes, image_size=(height, width), blur_radius=0.0, faces_per_pixel=1, bin_size=0, perspective_correct=True,
        cull_backfaces=False,
    )  # fmt: skip
    face_ids = face_ids[..., 0]
    # pytorch3d packs face ids over the batch (f + frame · T); make them per-frame triangle indices.
    offsets = torch.arange(verts.shape[0], device=verts.device)[:, None, None] * faces.shape[0]
    face_ids = torch.where(face_ids >= 0, face_ids - offsets, face_ids)
    return face_ids, barys[..., 0, :]


def silhouettes(verts: Tensor, faces: Tensor, camera: Camera) -> Tensor:
    """Where the mesh covers each pixel: 1.0 or 0.0. [F, H, W]

    Args:
        verts: posed vertices, world metres. [F, V, 3]
        faces: triangles as vertex ids (long). [T, 3]
        camera: the pinhole camera.
    """
    return (rasterize_mesh(verts, faces, camera)[0] >= 0).float()
