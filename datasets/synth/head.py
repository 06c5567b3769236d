"""What the synthetic world needs of a head model, as a Protocol, so `datasets` never imports `foundation`.

`foundation.head.HeadModel` provides every attribute; `cluster.synth.PosedHead` adds `pose` (parameters
in the `mm.npz` layout → vertices). A FLAME or BFM model converted into replica's head format fits the same way.
Texture painting relies only on the topology, the part names and the 478 MediaPipe landmark vertices, not on
vertex counts.
"""

from __future__ import annotations

from typing import Mapping, Protocol

import numpy as np
from torch import Tensor


class HeadLike(Protocol):
    """A morphable head: mesh topology, texture atlas layout, landmarks, and posing from parameters.

    Attributes:
        template: rest vertex positions, metres; y up, the face looks toward +z. [V, 3]
        faces: triangles, counter-clockwise seen from the side they are viewed from (long). [T, 3]
        verts_uvs: texture coordinates in [0, 1]², image convention (v down). [Vt, 2]
        faces_uvs: per-triangle indices into `verts_uvs` (long). [T, 3]
        part: index into `part_names` per vertex (long). [V]
        part_names: names such as "face", "scalp", "neck", "shoulders", "eye_l", "teeth_upper", "mouth_cavity".
        landmark_index: vertex id of each MediaPipe landmark; 0–467 face, 468–477 irises (long). [478]
        n_shape: number of identity coefficients.
    """

    template: Tensor
    faces: Tensor
    verts_uvs: Tensor
    faces_uvs: Tensor
    part: Tensor
    part_names: tuple[str, ...]
    landmark_index: Tensor

    @property
    def n_shape(self) -> int: ...

    def pose(self, params: Mapping[str, np.ndarray]) -> Tensor:
        """Posed vertices, world metres. params: `mm.npz` arrays shape [S], expr [F, 52], jaw/neck/rot/trans
        [F, 3]. → [F, V, 3]"""
        ...
