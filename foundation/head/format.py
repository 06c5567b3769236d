"""The versioned `.npz` file a head model is stored in (documented in docs/head_model.md).

One flat `.npz` of plain arrays, so any tool (NumPy, a converter for licensed FLAME/BFM models) can write it.
Reading validates every array's presence, dtype family and shape against the others and names the first
problem, so a bad file fails at load time with a one-line reason rather than deep inside a forward pass.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from datasets import storage
from datasets.errors import ReplicaError

FORMAT_VERSION = 1

REQUIRED = (
    "format_version", "template", "faces", "verts_uvs", "faces_uvs", "part", "part_names", "atlas",
    "shape_basis", "expr_basis", "expression_names", "joint_names", "joint_positions", "joint_parents",
    "skin_weights", "gaze", "landmark_index", "lmk68", "mouth_vertex_ids",
)  # fmt: skip


def validate(arrays: dict[str, np.ndarray], subject: object = "head model") -> None:
    """Raise `ReplicaError` naming the first missing or inconsistent array."""
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise ReplicaError(subject, f"missing arrays {missing}")
    version = int(np.asarray(arrays["format_version"]))
    if version != FORMAT_VERSION:
        raise ReplicaError(subject, f"format_version {version}, this code reads {FORMAT_VERSION}")
    n_verts = np.asarray(arrays["template"]).shape[0]
    n_joints = len(arrays["joint_names"])
    n_expr = len(arrays["expression_names"])
    expected = {
        "template": (n_verts, 3),
        "part": (n_verts,),
        "skin_weights": (n_verts, n_joints),
        "joint_positions": (n_joints, 3),
        "joint_parents": (n_joints,),
        "gaze": (2, 2, n_expr),
        "landmark_index": (478,),
        "lmk68": (68,),
        "atlas": (len(arrays["part_names"]), 4),
    }
    for key, shape in expected.items():
        if tuple(np.shape(arrays[key])) != shape:
            raise ReplicaError(subject, f"{key} has shape {list(np.shape(arrays[key]))}, expected {list(shape)}")
    for key, tail in (("shape_basis", (n_verts, 3)), ("expr_basis", (n_verts, 3))):
        if np.ndim(arrays[key]) != 3 or tuple(np.shape(arrays[key])[1:]) != tail:
            raise ReplicaError(subject, f"{key} has shape {list(np.shape(arrays[key]))}, expected [K, {n_verts}, 3]")
    if np.shape(arrays["expr_basis"])[0] != n_expr:
        raise ReplicaError(subject, f"expr_basis has {np.shape(arrays['expr_basis'])[0]} shapes for {n_expr} names")
    if np.shape(arrays["faces"])[1:] != (3,) or np.shape(arrays["faces_uvs"]) != np.shape(arrays["faces"]):
        raise ReplicaError(subject, "faces and faces_uvs must both be [T, 3]")
    for key, bound in (("faces", n_verts), ("landmark_index", n_verts), ("lmk68", n_verts), ("mouth_vertex_ids", n_verts), ("faces_uvs", len(arrays["verts_uvs"]))):
        values = np.asarray(arrays[key])
        if values.size and (values.min() < 0 or values.max() >= bound):
            raise ReplicaError(subject, f"{key} indexes outside [0, {bound})")
    parents = np.asarray(arrays["joint_parents"])
    if parents[0] != -1 or np.any(parents[1:] >= np.arange(1, n_joints)) or np.any(parents[1:] < 0):
        raise ReplicaError(subject, "joint_parents must list the root (-1) first and every parent before its child")
    if not np.allclose(np.asarray(arrays["skin_weights"]).sum(1), 1.0, atol=1e-4):
        raise ReplicaError(subject, "skin_weights rows must sum to 1")


def read_arrays(url: str | Path) -> dict[str, np.ndarray]:
    """Load and validate a head-model `.npz` from any storage URL."""
    try:
        with np.load(io.BytesIO(storage.read_bytes(str(url))), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ReplicaError:
        raise
    except (OSError, ValueError) as err:
        raise ReplicaError(url, f"not a readable head-model .npz ({err})") from err
    validate(arrays, url)
    return arrays


def write_arrays(url: str | Path, arrays: dict[str, np.ndarray]) -> str:
    """Validate and write to any storage URL; storage writes are atomic, so a crash never leaves half a model."""
    validate(arrays, url)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    storage.write_bytes(str(url), buffer.getvalue())
    return str(url)
