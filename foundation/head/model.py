"""`HeadModel`: the morphable head as a plain `nn.Module` (template + identity + expressions + joints, LBS).

    verts = G · LBS(template + shape_basis·shape + expr_basis·expr, joints(neck, jaw, gaze(expr)))

where G is the global rigid motion (`rot` about the world origin, then `trans`). Everything is a buffer, so
`.to(device)` moves the whole model and the forward is differentiable in every parameter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from datasets.errors import ReplicaError
from foundation.head.format import FORMAT_VERSION, read_arrays, write_arrays
from datasets.schema import EXPRESSION_NAMES
from foundation.head.params import FaceParams

PARTS = (
    "face", "scalp", "neck", "shoulders", "eye_l", "eye_r",
    "teeth_upper", "teeth_lower", "tongue", "mouth_cavity",
)  # fmt: skip
"""Part names; a mesh's `part` array holds indices into this tuple."""

ATLAS = {
    "face": (0.0, 0.0, 0.5, 0.5),
    "scalp": (0.5, 0.0, 1.0, 0.5),
    "neck": (0.0, 0.5, 1.0, 0.75),
    "eye_l": (0.0, 0.75, 0.125, 0.875),
    "eye_r": (0.125, 0.75, 0.25, 0.875),
    "teeth_upper": (0.25, 0.75, 0.625, 0.8125),
    "teeth_lower": (0.25, 0.8125, 0.625, 0.875),
    "tongue": (0.625, 0.75, 0.8125, 0.9375),
    "mouth_cavity": (0.8125, 0.75, 1.0, 0.9375),
}
"""Texture-atlas rectangles (u0, v0, u1, v1) in image convention: (0, 0) is the top-left texel, v grows down."""


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula, safe and differentiable at zero. [..., 3] radians → [..., 3, 3]"""
    angle2 = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]
    # Taylor expansions near zero keep the gradient finite where sin(θ)/θ is 0/0.
    small = angle2 < 1e-8
    angle = torch.sqrt(torch.where(small, torch.ones_like(angle2), angle2))
    sin_over = torch.where(small, 1.0 - angle2 / 6.0, torch.sin(angle) / angle)
    cos_term = torch.where(small, 0.5 - angle2 / 24.0, (1.0 - torch.cos(angle)) / torch.where(small, torch.ones_like(angle2), angle2))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(skew)
    return eye + sin_over * skew + cos_term * (skew @ skew)


class HeadModel(nn.Module):
    """Morphable head-and-shoulders model. Build the default with `default_head_model()`, or `HeadModel.load`.

    Buffers (float32 unless noted; V vertices, T triangles, S shape, E = 52 expressions, J joints):
        template: rest vertex positions, metres. [V, 3]
        faces: triangles (long). [T, 3]
        verts_uvs: atlas texture coordinates, image convention (v down). [Vt, 2]
        faces_uvs: per-triangle UV ids (long). [T, 3]
        part: part index per vertex into `part_names` (long). [V]
        shape_basis: identity displacement per unit coefficient, metres. [S, V, 3]
        expr_basis: expression displacement at weight 1, metres, order `EXPRESSION_NAMES`. [E, V, 3]
        joint_positions: rest joint positions, metres. [J, 3]
        joint_parents: parent joint id, -1 for the root (long). [J]
        skin_weights: LBS weights, rows sum to 1. [V, J]
        gaze: expression → eye rotation, [eye (left, right), (yaw, pitch), E] radians per unit weight. [2, 2, E]
        landmark_index: vertex id of each MediaPipe landmark (long). [478]
        lmk68: vertex id of each iBUG-68 landmark (long). [68]
        mouth_vertex_ids: lip-region vertex ids for lip metrics (long). [M]
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.part_names: tuple[str, ...] = tuple(str(n) for n in arrays["part_names"])
        self.joint_names: tuple[str, ...] = tuple(str(n) for n in arrays["joint_names"])
        self.atlas: dict[str, tuple[float, ...]] = {
            name: tuple(float(c) for c in rect) for name, rect in zip(self.part_names, arrays["atlas"])
        }
        for name in ("template", "verts_uvs", "shape_basis", "expr_basis", "joint_positions", "skin_weights", "gaze"):
            self.register_buffer(name, torch.as_tensor(np.asarray(arrays[name], dtype=np.float32)))
        for name in ("faces", "faces_uvs", "part", "joint_parents", "landmark_index", "lmk68", "mouth_vertex_ids"):
            self.register_buffer(name, torch.as_tensor(np.asarray(arrays[name], dtype=np.int64)))
        self._joint = {name: k for k, name in enumerate(self.joint_names)}

    @property
    def n_shape(self) -> int:
        return self.shape_basis.shape[0]

    @property
    def n_verts(self) -> int:
        return self.template.shape[0]

    def part_mask(self, *names: str) -> Tensor:
        """Boolean mask of the vertices in any of the named parts. [V]"""
        unknown = [n for n in names if n not in self.part_names]
        if unknown:
            raise ReplicaError("HeadModel.part_mask", f"unknown parts {unknown}; known: {list(self.part_names)}")
        ids = torch.tensor([self.part_names.index(n) for n in names], device=self.part.device)
        return torch.isin(self.part, ids)

    def shaped(self, shape: Tensor, expr: Tensor) -> Tensor:
        """Rest-pose vertices with identity and expression offsets, before any joint moves. [F, V, 3] metres

        Args:
            shape: [S] or [F, S] (coefficients beyond the model's S are an error, fewer are zero-padded)
            expr: [F, E]
        """
        if shape.shape[-1] > self.n_shape:
            raise ReplicaError("FaceParams.shape", f"{shape.shape[-1]} coefficients, model has {self.n_shape}")
        basis = self.shape_basis[: shape.shape[-1]].flatten(1)
        identity = (shape @ basis).reshape(*shape.shape[:-1], -1, 3)
        expression = (expr @ self.expr_basis.flatten(1)).reshape(expr.shape[0], -1, 3)
        return self.template + identity + expression

    def joint_rotations(self, params: FaceParams) -> Tensor:
        """Local rotation of each joint. [F, J, 3, 3]"""
        n_frames = params.n_frames
        axis_angles = torch.zeros(n_frames, len(self.joint_names), 3, dtype=params.expr.dtype, device=params.expr.device)
        if "neck" in self._joint:
            axis_angles[:, self._joint["neck"]] = params.neck
        if "jaw" in self._joint:
            axis_angles[:, self._joint["jaw"]] = params.jaw
        gaze = torch.einsum("abe,fe->fab", self.gaze, params.expr)  # [F, eye, (yaw, pitch)]
        for eye, name in enumerate(("eye_l", "eye_r")):
            if name in self._joint:
                # Pitch turns about +x, yaw about +y.
                axis_angles[:, self._joint[name], 0] = gaze[:, eye, 1]
                axis_angles[:, self._joint[name], 1] = gaze[:, eye, 0]
        return axis_angle_to_matrix(axis_angles)

    def forward(self, params: FaceParams) -> Tensor:
        """Posed vertex positions in world metres. [F, V, 3]"""
        if params.expr.shape[1] != self.expr_basis.shape[0]:
            raise ReplicaError("FaceParams.expr", f"has {params.expr.shape[1]} weights, model has {self.expr_basis.shape[0]}")
        verts = self.shaped(params.shape, params.expr)
        verts = linear_blend_skinning(verts, self.joint_rotations(params), self.joint_positions, self.joint_parents, self.skin_weights)
        return verts @ axis_angle_to_matrix(params.rot).transpose(1, 2) + params.trans[:, None, :]

    def landmarks(self, verts: Tensor) -> Tensor:
        """The 478 MediaPipe landmark positions of posed vertices. [F, V, 3] → [F, 478, 3]"""
        return verts[:, self.landmark_index]

    def arrays(self) -> dict[str, np.ndarray]:
        """The model as the arrays of the `.npz` format (see docs/head_model.md)."""
        out = {name: buf.detach().cpu().numpy() for name, buf in self.named_buffers()}
        out.update(
            format_version=np.asarray(FORMAT_VERSION),
            part_names=np.asarray(self.part_names),
            joint_names=np.asarray(self.joint_names),
            expression_names=np.asarray(EXPRESSION_NAMES),
            atlas=np.asarray([self.atlas[n] for n in self.part_names], dtype=np.float32),
        )
        return out

    def save(self, url: str | Path) -> str:
        """Write the model in the `.npz` format to any storage URL; returns the URL."""
        return write_arrays(url, self.arrays())

    @classmethod
    def load(cls, url: str | Path) -> HeadModel:
        """Read a model in the `.npz` format from any storage URL (validated)."""
        return cls(read_arrays(url))


def linear_blend_skinning(verts: Tensor, rotations: Tensor, joints: Tensor, parents: Tensor, weights: Tensor) -> Tensor:
    """Pose vertices with a kinematic chain (each joint rotates about its rest position).

    Args:
        verts: rest-pose vertices, metres. [F, V, 3]
        rotations: local joint rotations. [F, J, 3, 3]
        joints: rest joint positions, metres. [J, 3]
        parents: parent of each joint, -1 for the root; parents precede children. [J]
        weights: skinning weights. [V, J]
    Returns:
        posed vertices. [F, V, 3]
    """
    n_joints = joints.shape[0]
    world_rot: list[Tensor] = []
    world_trans: list[Tensor] = []
    for j in range(n_joints):
        # Rotation about the joint's rest position: x → R (x - p) + p.
        local_trans = joints[j] - rotations[:, j] @ joints[j]
        parent = int(parents[j])
        if parent < 0:
            world_rot.append(rotations[:, j])
            world_trans.append(local_trans)
        else:
            world_rot.append(world_rot[parent] @ rotations[:, j])
            world_trans.append((world_rot[parent] @ local_trans[..., None])[..., 0] + world_trans[parent])
    rot = torch.stack(world_rot, 1)  # [F, J, 3, 3]
    trans = torch.stack(world_trans, 1)  # [F, J, 3]
    blended_rot = torch.einsum("vj,fjab->fvab", weights, rot)
    blended_trans = torch.einsum("vj,fja->fva", weights, trans)
    return (blended_rot @ verts[..., None])[..., 0] + blended_trans
