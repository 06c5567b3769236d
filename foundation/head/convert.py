"""Convert a licensed linear head model (FLAME, BFM, ...) into replica's head-model `.npz`.

We cannot ship FLAME or BFM, but a user who holds a licence can load its arrays (e.g. FLAME's pickle) into a
dict and convert once; every stage then uses the result through `HeadModel.load`. The defaults of
`SourceMapping` name FLAME's arrays. The source's expression space (e.g. FLAME's 100 PCA components) is mapped
onto the 52 ARKit names by a user-supplied linear `expression_map`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.errors import ReplicaError
from foundation.head.model import ATLAS, PARTS
from foundation.head.expressions import gaze_matrix
from foundation.head.format import FORMAT_VERSION, write_arrays
from foundation.head.landmarks import LMK68
from datasets.schema import EXPRESSION_NAMES


@dataclass
class SourceMapping:
    """Where each part of our format comes from in the source dict (defaults: FLAME 2020 key names).

    Fields:
        landmark_index: source vertex id of each MediaPipe landmark (e.g. the nearest vertex of FLAME's
            MediaPipe landmark embedding), [478]; required, nothing downstream works without landmarks.
        template: key of the rest vertices [V, 3], metres.
        faces: key of the triangles [T, 3].
        shape_basis: key of identity directions [V, 3, K], metres per unit coefficient.
        shape_components: (start, stop) slice of the last axis of `shape_basis` that is identity.
        expression_basis: key of expression directions [V, 3, K].
        expression_components: (start, stop) slice of the last axis of `expression_basis`.
        expression_map: [52, K_expr] source expression coefficients produced by ARKit weight 1 of each of
            `EXPRESSION_NAMES`; None if the sliced source components already are those 52, in order.
        joints: key of a joint regressor [J, V] or of rest joint positions [J, 3] (metres).
        parents: key of the kinematic tree: [2, J] with parents in row 0 (FLAME's kintree_table) or [J].
        skin_weights: key of the LBS weights [V, J].
        joint_names: our name for each source joint, in source order; "neck", "jaw", "eye_l", "eye_r" are
            driven by FaceParams (eyes by the eyeLook* weights), others stay at rest.
        verts_uvs, faces_uvs: keys of texture coordinates [Vt, 2] and UV triangles [T, 3]; None if absent.
        uv_origin_bottom: True if the source's v axis points up (OpenGL, FLAME); ours points down.
        part: part index per vertex into `PARTS`, [V]; None labels every vertex "face".
        mouth_vertex_ids: lip vertices for lip metrics, [M]; None uses the MediaPipe lip landmarks' vertices.
    """

    landmark_index: np.ndarray
    template: str = "v_template"
    faces: str = "f"
    shape_basis: str = "shapedirs"
    shape_components: tuple[int, int] = (0, 300)
    expression_basis: str = "shapedirs"
    expression_components: tuple[int, int] = (300, 400)
    expression_map: np.ndarray | None = None
    joints: str = "J_regressor"
    parents: str = "kintree_table"
    skin_weights: str = "weights"
    joint_names: tuple[str, ...] = ("root", "neck", "jaw", "eye_l", "eye_r")
    verts_uvs: str | None = "vt"
    faces_uvs: str | None = "ft"
    uv_origin_bottom: bool = True
    part: np.ndarray | None = None
    mouth_vertex_ids: np.ndarray | None = None


def _get(source: dict, key: str) -> np.ndarray:
    if key not in source:
        raise ReplicaError(f"source[{key!r}]", f"missing; keys present: {sorted(source)}")
    value = source[key]
    # FLAME ships scipy sparse matrices (J_regressor) and chumpy arrays; both convert to dense arrays.
    value = value.toarray() if hasattr(value, "toarray") else value
    return np.asarray(value, dtype=np.float64 if np.asarray(value).dtype.kind == "f" else None)


def convert_model(source: dict, mapping: SourceMapping, path: str | Path) -> str:
    """Write `source` (a dict of arrays) as a replica head-model `.npz` at `path` (any storage URL); returns it.

    The result loads with `HeadModel.load(path)`; its forward reproduces the source's linear model (template +
    shape + mapped expressions, LBS over the source skeleton).
    """
    template = _get(source, mapping.template)
    n_verts = len(template)
    faces = _get(source, mapping.faces).astype(np.int64)
    shape_dirs = _get(source, mapping.shape_basis)[..., slice(*mapping.shape_components)]
    expr_dirs = _get(source, mapping.expression_basis)[..., slice(*mapping.expression_components)]
    expr_map = np.eye(len(EXPRESSION_NAMES)) if mapping.expression_map is None else np.asarray(mapping.expression_map, dtype=np.float64)
    if expr_map.shape != (len(EXPRESSION_NAMES), expr_dirs.shape[-1]):
        raise ReplicaError("SourceMapping.expression_map", f"expected [52, {expr_dirs.shape[-1]}], got {list(expr_map.shape)}")
    joints = _get(source, mapping.joints)
    joints = joints @ template if joints.shape[1] == n_verts else joints
    parents = _get(source, mapping.parents).astype(np.int64)
    parents = parents[0] if parents.ndim == 2 else parents
    # FLAME marks the root's parent with a huge unsigned value; we use -1.
    parents = np.where((parents < 0) | (parents >= len(parents)), -1, parents)
    if len(mapping.joint_names) != len(joints):
        raise ReplicaError("SourceMapping.joint_names", f"{len(mapping.joint_names)} names for {len(joints)} source joints")
    if mapping.verts_uvs and mapping.verts_uvs in source:
        verts_uvs = _get(source, mapping.verts_uvs)[:, :2].copy()
        faces_uvs = _get(source, mapping.faces_uvs).astype(np.int64)
        if mapping.uv_origin_bottom:
            verts_uvs[:, 1] = 1.0 - verts_uvs[:, 1]
    else:
        verts_uvs, faces_uvs = np.zeros((n_verts, 2)), faces.copy()
    landmark_index = np.asarray(mapping.landmark_index, dtype=np.int64)
    if landmark_index.shape != (478,):
        raise ReplicaError("SourceMapping.landmark_index", f"expected 478 vertex ids, got shape {list(landmark_index.shape)}")
    has_eyes = {"eye_l", "eye_r"} <= set(mapping.joint_names)
    lips = np.unique(landmark_index[LMK68[48:]])
    arrays = {
        "format_version": np.asarray(FORMAT_VERSION),
        "template": template.astype(np.float32),
        "faces": faces,
        "verts_uvs": verts_uvs.astype(np.float32),
        "faces_uvs": faces_uvs,
        "part": np.zeros(n_verts, dtype=np.int64) if mapping.part is None else np.asarray(mapping.part, dtype=np.int64),
        "part_names": np.asarray(PARTS),
        "atlas": np.asarray([ATLAS.get(name, ATLAS["neck"]) for name in PARTS], dtype=np.float32),
        "shape_basis": np.moveaxis(shape_dirs, -1, 0).astype(np.float32),
        "expr_basis": np.einsum("ek,vck->evc", expr_map, expr_dirs).astype(np.float32),
        "expression_names": np.asarray(EXPRESSION_NAMES),
        "joint_names": np.asarray(mapping.joint_names),
        "joint_positions": joints.astype(np.float32),
        "joint_parents": parents,
        "skin_weights": _get(source, mapping.skin_weights).astype(np.float32),
        "gaze": gaze_matrix() if has_eyes else np.zeros((2, 2, len(EXPRESSION_NAMES)), dtype=np.float32),
        "landmark_index": landmark_index,
        "lmk68": landmark_index[LMK68],
        "mouth_vertex_ids": lips if mapping.mouth_vertex_ids is None else np.asarray(mapping.mouth_vertex_ids, dtype=np.int64),
    }
    return write_arrays(path, arrays)
