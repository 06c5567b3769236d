"""The head-and-shoulders template mesh: MediaPipe's canonical face plus procedurally built parts.

Vertices 0–467 are MediaPipe's canonical face (so they *are* the face landmarks) and 468–477 are the iris
points on the eyeballs. Everything else is generated deterministically around them: a closed skull lofted
from the face oval to a pole behind the head, a neck-and-shoulders bust, eyeballs in eye sockets, and an
inner mouth (cavity, upper and lower teeth, tongue) so an open mouth renders as a mouth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foundation.head.mesh_builder import MeshBuilder
from foundation.head.model import ATLAS, PARTS
from foundation.head.inner import add_eye_sockets, add_eyes, add_mouth, eye_centre
from foundation.head.landmarks import EYE_L, EYE_R, LOWER_OUTER_LIP, UPPER_OUTER_LIP
from foundation.head.outer import add_bust, add_face, add_skull

__all__ = ["ATLAS", "PARTS", "HeadMesh", "build_head_mesh"]


@dataclass(frozen=True)
class HeadMesh:
    """The template surface and its static annotations. Positions in metres, world frame (y up, face toward +z).

    Fields:
        verts: template vertex positions. [V, 3]
        faces: triangles, counter-clockwise seen from the side the surface is viewed from. [T, 3]
        verts_uvs: texture coordinates into the atlas `ATLAS`, image convention (v down). [Vt, 2]
        faces_uvs: per-triangle indices into `verts_uvs`. [T, 3]
        part: index into `PARTS` per vertex. [V]
        landmark_index: vertex id of each MediaPipe landmark (0–467 face, 468–477 irises). [478]
        mouth_vertex_ids: lip vertices (inside the outer lip contour), for lip-sync error metrics. [M]
        anchor: face vertex whose expression displacement each vertex inherits, -1 for none. [V]
        anchor_weight: fraction of the anchor's displacement inherited, in [0, 1]. [V]
        eye_centres: eyeball centres, subject's left eye first. [2, 3]
    """

    verts: np.ndarray
    faces: np.ndarray
    verts_uvs: np.ndarray
    faces_uvs: np.ndarray
    part: np.ndarray
    landmark_index: np.ndarray
    mouth_vertex_ids: np.ndarray
    anchor: np.ndarray
    anchor_weight: np.ndarray
    eye_centres: np.ndarray


def build_head_mesh() -> HeadMesh:
    """Build the template deterministically from the canonical face shipped with MediaPipe's FaceLandmarker."""
    builder = MeshBuilder()
    face_ids = add_face(builder)
    face_verts = builder.all_verts()
    centres = {"eye_l": eye_centre(face_verts, EYE_L), "eye_r": eye_centre(face_verts, EYE_R)}
    add_eyes(builder, centres)
    add_skull(builder, face_ids)
    add_bust(builder)
    add_eye_sockets(builder, centres)
    add_mouth(builder)
    outer_lip = np.concatenate([LOWER_OUTER_LIP, UPPER_OUTER_LIP[::-1]])
    mouth = np.union1d(np.flatnonzero(_inside_polygon(face_verts[:, :2], face_verts[outer_lip, :2])), outer_lip)
    cm = 0.01
    return HeadMesh(
        verts=(builder.all_verts() * cm).astype(np.float32),
        faces=builder.all_faces().astype(np.int64),
        verts_uvs=np.concatenate(builder.uvs).astype(np.float32),
        faces_uvs=np.concatenate(builder.faces_uvs).astype(np.int64),
        part=np.concatenate(builder.part).astype(np.int64),
        landmark_index=np.arange(478, dtype=np.int64),
        mouth_vertex_ids=mouth.astype(np.int64),
        anchor=np.concatenate(builder.anchor).astype(np.int64),
        anchor_weight=np.concatenate(builder.anchor_weight).astype(np.float32),
        eye_centres=(np.stack([centres["eye_l"], centres["eye_r"]]) * cm).astype(np.float32),
    )


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule point-in-polygon test. points: [N, 2], polygon: [P, 2] → [N] bool."""
    a, b = polygon, np.roll(polygon, -1, axis=0)
    x, y = points[:, None, 0], points[:, None, 1]
    crosses = (a[None, :, 1] > y) != (b[None, :, 1] > y)
    at_x = a[None, :, 0] + (y - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / (b[None, :, 1] - a[None, :, 1] + 1e-12)
    return (crosses & (x < at_x)).sum(axis=1) % 2 == 1
