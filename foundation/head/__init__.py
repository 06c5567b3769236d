"""The morphable head-and-shoulders model (3DMM) every stage is measured on, and how it is drawn.

Public API:
    HeadModel            the model (`nn.Module`): `forward(FaceParams) -> verts [F, V, 3]` metres
    FaceParams           per-frame parameters (shape, expr, jaw, neck, rot, trans); the `mm.npz` layout
    PersonParams, save_params, load_params
                         a person's per-frame parameters + camera + fps on storage (`params.npz`, versioned)
    default_head_model() the shipped model (MediaPipe canonical face + procedural head, neck, shoulders,
                         eyes, inner mouth), cached per process
    convert_model()      write a licensed FLAME/BFM-style model into our `.npz` format
    rasterize, silhouettes, render_soft, UVTexture, MeshFragments, vertex_normals, project_landmarks
                         the one mesh renderer (`foundation.head.renderer`): hard and differentiable paths
    PARTS, ATLAS, N_SHAPE, LMK68, FORMAT_VERSION, axis_angle_to_matrix, linear_blend_skinning

The 52 expression columns are `datasets.schema.EXPRESSION_NAMES` (one definition for data and model).
World frame: metres, y up, the face looks toward +z, origin near the centre of the head, subject's left +x.
See docs/head_model.md for the file format, the part labels and the texture-atlas layout.
"""

from __future__ import annotations

from functools import lru_cache

from foundation.head.convert import SourceMapping, convert_model
from foundation.head.default import build_default_arrays
from foundation.head.format import FORMAT_VERSION
from foundation.head.landmarks import LMK68
from foundation.head.model import ATLAS, PARTS, HeadModel, axis_angle_to_matrix, linear_blend_skinning
from foundation.head.params import N_SHAPE, FaceParams, PersonParams, load_params, save_params
from foundation.head.renderer import (MeshFragments, UVTexture, project_landmarks, rasterize, render_soft,
                                      silhouettes, vertex_normals)

__all__ = [
    "ATLAS", "FORMAT_VERSION", "LMK68", "N_SHAPE", "PARTS", "FaceParams", "HeadModel", "MeshFragments",
    "PersonParams", "SourceMapping", "UVTexture", "axis_angle_to_matrix", "convert_model", "default_head_model",
    "linear_blend_skinning", "load_params", "project_landmarks", "rasterize", "render_soft", "save_params",
    "silhouettes", "vertex_normals",
]  # fmt: skip


@lru_cache(maxsize=1)
def _default_arrays():
    # Building is deterministic and takes about two seconds, so no built file ships that could go stale.
    return build_default_arrays()


def default_head_model() -> HeadModel:
    """A fresh copy of the default head model on CPU, built from the shipped MediaPipe mesh (cached per process)."""
    return HeadModel(_default_arrays())
