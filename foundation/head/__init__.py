"""The morphable head-and-shoulders model (3DMM) every stage is measured on.

Public API:
    HeadModel            the model (`nn.Module`): `forward(FaceParams) -> verts [F, V, 3]` metres
    FaceParams           per-frame parameters (shape, expr, jaw, neck, rot, trans); the `mm.npz` layout
    default_head_model() the shipped model (MediaPipe canonical face + procedural head, neck, shoulders,
                         eyes, inner mouth), cached per process
    convert_model()      write a licensed FLAME/BFM-style model into our `.npz` format
    EXPRESSION_NAMES, N_SHAPE, N_EXPR, PARTS, ATLAS, LMK68, FORMAT_VERSION

World frame: metres, y up, the face looks toward +z, origin near the centre of the head, subject's left +x.
See docs/head_model.md for the file format, the part labels and the texture-atlas layout.
"""

from __future__ import annotations

from functools import lru_cache

from foundation.head.build import build_default_arrays
from foundation.head.builder import ATLAS, PARTS
from foundation.head.convert import SourceMapping, convert_model
from foundation.head.format import FORMAT_VERSION
from foundation.head.landmarks import LMK68
from foundation.head.model import HeadModel, axis_angle_to_matrix, linear_blend_skinning
from foundation.head.params import EXPRESSION_NAMES, N_EXPR, N_SHAPE, FaceParams

__all__ = [
    "ATLAS", "EXPRESSION_NAMES", "FORMAT_VERSION", "LMK68", "N_EXPR", "N_SHAPE", "PARTS",
    "FaceParams", "HeadModel", "SourceMapping", "axis_angle_to_matrix", "convert_model",
    "default_head_model", "linear_blend_skinning",
]  # fmt: skip


@lru_cache(maxsize=1)
def _default_arrays():
    # Building is deterministic and takes about two seconds, so no built file ships that could go stale.
    return build_default_arrays()


def default_head_model() -> HeadModel:
    """A fresh copy of the default head model on CPU, built from the shipped MediaPipe mesh (cached per process)."""
    return HeadModel(_default_arrays())
