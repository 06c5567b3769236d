"""Triangle-local frames: how a Gaussian bound to a mesh triangle follows the mesh (GaussianAvatars).

Each Gaussian lives in its parent triangle's frame (Qian et al. 2024, "GaussianAvatars", eq. 1–3): origin
at the triangle's centroid, axes from its first edge and its normal, unit length the triangle's size.
Its world mean, rotation and scale are

    mean = centroid + k · R · offset,   rotation = R · rotation_local,   scale = k · scale_local

so every expression, jaw or head pose the head model produces moves, turns and stretches the Gaussians
with the surface they sit on, and a Gaussian's learned parameters are independent of the pose.
"""

from __future__ import annotations

import torch
from pytorch3d.transforms import matrix_to_quaternion, quaternion_multiply
from torch import Tensor

from datasets.errors import ReplicaError


def triangle_frames(verts: Tensor, faces: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Origin, orientation and size of every triangle.

    Args:
        verts: mesh vertices, world metres. [..., V, 3]
        faces: triangles as vertex ids (long). [T, 3]

    Returns:
        A tuple:

        - **centroids**: triangle centres, world metres. [..., T, 3]
        - **rotations**: columns are the frame's axes in world coordinates: x along the edge v0→v1,
          z the unit normal (right-handed winding), y = z × x. [..., T, 3, 3]
        - **sizes**: the frame's unit length k, metres: the mean of the first edge's length and the
          triangle's height over it (GaussianAvatars' scale), so a frame is as large as its triangle. [..., T]
    """
    if verts.shape[-1] != 3 or faces.ndim != 2 or faces.shape[-1] != 3:
        raise ReplicaError("triangle_frames", f"expected verts [..., V, 3] and faces [T, 3], got "
                           f"{list(verts.shape)} and {list(faces.shape)}")
    v0, v1, v2 = (verts[..., faces[:, i], :] for i in range(3))
    edge, other = v1 - v0, v2 - v0
    normal = torch.linalg.cross(edge, other, dim=-1)
    edge_len = edge.norm(dim=-1).clamp_min(1e-12)
    # |e × f| / |e| is the height over e; degenerate triangles get a tiny but finite frame.
    height = normal.norm(dim=-1) / edge_len
    x_axis = edge / edge_len[..., None]
    z_axis = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    y_axis = torch.linalg.cross(z_axis, x_axis, dim=-1)
    rotations = torch.stack([x_axis, y_axis, z_axis], dim=-1)
    return (v0 + v1 + v2) / 3.0, rotations, (edge_len + height) / 2.0


def bind_to_triangles(
    verts: Tensor,
    faces: Tensor,
    parents: Tensor,
    offsets: Tensor,
    quats: Tensor,
    scales: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """World means, rotations and scales of Gaussians given in their parent triangles' frames.

    Args:
        verts: posed mesh vertices, world metres. [V, 3]
        faces: triangles as vertex ids (long). [T, 3]
        parents: the triangle each Gaussian is bound to (long). [N]
        offsets: mean in the parent frame, in units of the triangle's size. [N, 3]
        quats: rotation relative to the parent frame, (w, x, y, z), any norm. [N, 4]
        scales: standard deviations in units of the triangle's size (linear). [N, 3]

    Returns:
        A tuple:

        - **means**: world centres, metres. [N, 3]
        - **quats**: world rotations (w, x, y, z), unit. [N, 4]
        - **scales**: world standard deviations, metres. [N, 3]
    """
    centroids, rotations, sizes = triangle_frames(verts, faces)
    centroid, rotation, size = centroids[parents], rotations[parents], sizes[parents, None]
    means = centroid + size * (rotation @ offsets[..., None])[..., 0]
    frame_quats = matrix_to_quaternion(rotation)
    world_quats = quaternion_multiply(frame_quats, quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    return means, world_quats, size * scales
