"""Assemble the default head model's arrays from the procedural mesh (deterministic, about a second)."""

from __future__ import annotations

import numpy as np

from foundation.head.model import ATLAS, PARTS
from foundation.head.expressions import expression_basis, gaze_matrix
from foundation.head.format import FORMAT_VERSION
from foundation.head.identity import shape_basis
from foundation.head.landmarks import LMK68
from foundation.head.mesh import build_head_mesh
from datasets.schema import EXPRESSION_NAMES
from foundation.head.params import N_SHAPE
from foundation.head.skinning import JOINT_NAMES, JOINT_PARENTS, is_bust, joint_positions, skin_weights
from foundation.head.surface import mirror_map


def build_default_arrays(n_shape: int = N_SHAPE) -> dict[str, np.ndarray]:
    """The default model in the `.npz` layout (see docs/head_model.md)."""
    mesh = build_head_mesh()
    weights = skin_weights(mesh)
    mirror = mirror_map(mesh.verts.astype(np.float64), tolerance=1e-6)
    jaw = weights[:, JOINT_NAMES.index("jaw")]
    return {
        "format_version": np.asarray(FORMAT_VERSION),
        "template": mesh.verts,
        "faces": mesh.faces,
        "verts_uvs": mesh.verts_uvs,
        "faces_uvs": mesh.faces_uvs,
        "part": mesh.part,
        "part_names": np.asarray(PARTS),
        "atlas": np.asarray([ATLAS.get(name, ATLAS["neck"]) for name in PARTS], dtype=np.float32),
        "shape_basis": shape_basis(mesh, is_bust(mesh), n_shape),
        "expr_basis": expression_basis(mesh, jaw, mirror),
        "expression_names": np.asarray(EXPRESSION_NAMES),
        "joint_names": np.asarray(JOINT_NAMES),
        "joint_positions": joint_positions(mesh),
        "joint_parents": JOINT_PARENTS,
        "skin_weights": weights,
        "gaze": gaze_matrix(),
        "landmark_index": mesh.landmark_index,
        "lmk68": mesh.landmark_index[LMK68],
        "mouth_vertex_ids": mesh.mouth_vertex_ids,
    }
