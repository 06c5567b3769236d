"""The 52 ARKit expression blendshapes of the default head, built from the mesh's own regions.

Each shape is a displacement field on the face: displacements prescribed at a few landmark anchors and spread
over the surface by geodesic distance with a smooth compact falloff, so a shape is local and cannot cross the
eye or mouth openings. Parts hanging from the face (skull loft, eye sockets, mouth cavity) inherit their
anchor vertex's displacement; jaw shapes move everything skinned to the jaw. Right shapes are the mirror
images of left ones through the template's x-symmetry. Magnitudes are in centimetres at weight 1.
"""

from __future__ import annotations

import numpy as np

from foundation.head import surface
from foundation.head.model import PARTS
from foundation.head.inner import EYEBALL_RADIUS
from foundation.head.landmarks import (
    BROW_INNER_L, BROW_L, BROW_OUTER_L, CHEEK_L, CHEEKBONE_L, CHIN, INNER_LIP, LOWER_INNER_LIP, LOWER_LID_L,
    LOWER_OUTER_LIP, MOUTH_CORNER_L, NOSE_WING_L, UPPER_INNER_LIP, UPPER_LID_L, UPPER_OUTER_LIP,
)  # fmt: skip
from foundation.head.mesh import HeadMesh
from datasets.schema import EXPRESSION_NAMES

N_FACE = 468
GAZE_LIMITS = {"In": 0.45, "Out": 0.45, "Up": 0.35, "Down": 0.45}
"""Eye rotation (radians) at eyeLook* weight 1."""


class _Face:
    """Geodesic distances on the canonical face (with its openings cut) and helpers to spread anchors."""

    def __init__(self, mesh: HeadMesh, jaw: np.ndarray) -> None:
        self.verts = mesh.verts[:N_FACE].astype(np.float64) * 100.0
        self.faces = mesh.faces[(mesh.faces < N_FACE).all(axis=1)]
        self.jaw = jaw
        self._cache: dict[tuple, np.ndarray] = {}

    def distance(self, anchors: np.ndarray) -> np.ndarray:
        key = tuple(int(a) for a in anchors)
        if key not in self._cache:
            self._cache[key] = surface.geodesic(self.verts, self.faces, np.asarray(anchors))
        return self._cache[key]

    def spread(self, anchors, deltas, radius: float) -> np.ndarray:
        """Face displacement [468, 3] from anchor ids [A] with displacements [A, 3] (or one [3] for all)."""
        anchors = np.atleast_1d(np.asarray(anchors))
        deltas = np.broadcast_to(np.asarray(deltas, dtype=np.float64), (len(anchors), 3))
        return surface.propagate(self.distance(anchors), deltas, radius)

    def left(self, ids: np.ndarray) -> np.ndarray:
        return ids[self.verts[ids, 0] > 0.05]


def _left_shapes(face: _Face) -> dict[str, np.ndarray]:
    """Face displacements (cm) of the subject's-left shapes, including the left side of jawLeft/mouthLeft."""
    lips = np.concatenate([INNER_LIP, UPPER_OUTER_LIP, LOWER_OUTER_LIP])
    upper_lip = np.concatenate([UPPER_INNER_LIP[1:-1], UPPER_OUTER_LIP[1:-1]])
    lower_lip = np.concatenate([LOWER_INNER_LIP[1:-1], LOWER_OUTER_LIP[1:-1]])
    # Outer (291) and inner (308) corner of the mouth move together.
    corner = [MOUTH_CORNER_L, 308]
    return {
        "browDownLeft": face.spread(BROW_L, (-0.12, -0.45, 0.08), 2.2),
        "browOuterUpLeft": face.spread(BROW_OUTER_L, (0.0, 0.55, 0.0), 2.6),
        "cheekSquintLeft": face.spread(CHEEKBONE_L, (0.0, 0.3, 0.12), 2.0),
        "eyeBlinkLeft": _blink(face, UPPER_LID_L, LOWER_LID_L),
        "eyeLookDownLeft": _lids(face, UPPER_LID_L, LOWER_LID_L, (0.0, -0.18, 0.0), (0.0, -0.06, 0.0)),
        "eyeLookInLeft": _lids(face, UPPER_LID_L, LOWER_LID_L, (-0.08, 0.0, 0.0), (-0.05, 0.0, 0.0)),
        "eyeLookOutLeft": _lids(face, UPPER_LID_L, LOWER_LID_L, (0.08, 0.0, 0.0), (0.05, 0.0, 0.0)),
        "eyeLookUpLeft": _lids(face, UPPER_LID_L, LOWER_LID_L, (0.0, 0.14, 0.0), (0.0, 0.05, 0.0)),
        "eyeSquintLeft": _lids(face, UPPER_LID_L, LOWER_LID_L, (0.0, -0.05, 0.0), (0.0, 0.18, 0.03)),
        "eyeWideLeft": _lids(face, UPPER_LID_L, LOWER_LID_L, (0.0, 0.22, 0.03), (0.0, -0.03, 0.0)),
        "mouthDimpleLeft": face.spread([MOUTH_CORNER_L], (0.15, 0.0, -0.3), 1.6),
        "mouthFrownLeft": face.spread([MOUTH_CORNER_L, 308], (0.1, -0.45, 0.0), 1.9),
        "mouthLowerDownLeft": face.spread(face.left(lower_lip), (0.0, -0.45, 0.08), 1.3),
        "mouthPressLeft": face.spread(
            np.concatenate([face.left(upper_lip), face.left(lower_lip)]),
            np.concatenate([np.tile([0.0, -0.08, -0.1], (len(face.left(upper_lip)), 1)), np.tile([0.0, 0.08, -0.1], (len(face.left(lower_lip)), 1))]),
            1.0,
        ),
        "mouthSmileLeft": face.spread(corner, (0.6, 0.55, -0.35), 2.3) + face.spread(CHEEKBONE_L, (0.0, 0.12, 0.05), 1.6),
        "mouthStretchLeft": face.spread(corner, (0.5, -0.25, -0.2), 2.0),
        "mouthUpperUpLeft": face.spread(face.left(upper_lip), (0.0, 0.35, 0.05), 1.3),
        "noseSneerLeft": face.spread(NOSE_WING_L, (0.0, 0.25, 0.02), 1.2),
        "mouthLeft": face.spread(lips, (0.55, 0.0, -0.05), 2.2),
    }


def _lids(face: _Face, upper: np.ndarray, lower: np.ndarray, upper_delta, lower_delta) -> np.ndarray:
    """Move the upper and lower lid margins (eye corners held still) with falloff into the surrounding skin."""
    anchors = np.concatenate([upper[1:-1], lower[1:-1], [upper[0], upper[-1]]])
    deltas = np.concatenate([np.tile(upper_delta, (len(upper) - 2, 1)), np.tile(lower_delta, (len(lower) - 2, 1)), np.zeros((2, 3))])
    return face.spread(anchors, deltas, 1.1)


def _blink(face: _Face, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Close the eye: the upper lid comes down to meet the lower lid (which rises a little) over the eyeball."""
    v = face.verts
    inner_upper, inner_lower = upper[1:-1], lower[1:-1]
    lower_curve = v[lower][np.argsort(v[lower, 0])]
    upper_curve = v[upper][np.argsort(v[upper, 0])]

    def meeting_point(x: np.ndarray) -> np.ndarray:
        low = np.interp(x, lower_curve[:, 0], lower_curve[:, 1])
        high = np.interp(x, upper_curve[:, 0], upper_curve[:, 1])
        return low + 0.25 * (high - low)

    def on_ball(points: np.ndarray) -> np.ndarray:
        # Keep the closed lid on the eyeball's surface (plus lid thickness) rather than cutting through it.
        centre = _eye_centre_near(face, points)
        offset = points - centre
        lateral = np.minimum((offset[:, :2] ** 2).sum(1), (EYEBALL_RADIUS + 0.1) ** 2 - 1e-3)
        z = centre[2] + np.sqrt((EYEBALL_RADIUS + 0.1) ** 2 - lateral)
        return np.stack([points[:, 0], points[:, 1], np.maximum(points[:, 2], z)], 1)

    target_upper = on_ball(np.stack([v[inner_upper, 0], meeting_point(v[inner_upper, 0]), v[inner_upper, 2]], 1))
    target_lower = on_ball(np.stack([v[inner_lower, 0], meeting_point(v[inner_lower, 0]) - 0.01, v[inner_lower, 2]], 1))
    anchors = np.concatenate([inner_upper, inner_lower, [upper[0], upper[-1]]])
    deltas = np.concatenate([target_upper - v[inner_upper], target_lower - v[inner_lower], np.zeros((2, 3))])
    return face.spread(anchors, deltas, 1.2)


def _eye_centre_near(face: _Face, points: np.ndarray) -> np.ndarray:
    return face.eye_centres[0] if points[:, 0].mean() > 0 else face.eye_centres[1]


def _symmetric_shapes(face: _Face, mesh: HeadMesh) -> dict[str, np.ndarray]:
    """Face displacements (cm) of shapes without a side, built on both halves at once."""
    v = face.verts
    both = lambda ids: np.concatenate([ids, face.mirror[ids]])  # noqa: E731
    lips = np.concatenate([INNER_LIP, UPPER_OUTER_LIP, LOWER_OUTER_LIP])
    upper_lip = np.concatenate([UPPER_INNER_LIP[1:-1], UPPER_OUTER_LIP[1:-1]])
    lower_lip = np.concatenate([LOWER_INNER_LIP[1:-1], LOWER_OUTER_LIP[1:-1]])
    half_width = v[MOUTH_CORNER_L, 0]
    inward = lambda ids, amount: np.stack([-amount * v[ids, 0] / half_width, np.zeros(len(ids)), np.zeros(len(ids))], 1)  # noqa: E731
    cheeks = both(CHEEK_L)
    return {
        "browInnerUp": face.spread(both(BROW_INNER_L), (0.0, 0.55, 0.05), 2.5),
        "cheekPuff": face.spread(cheeks, np.stack([0.55 * np.sign(v[cheeks, 0]), np.zeros(len(cheeks)), np.full(len(cheeks), 0.15)], 1), 2.6),
        "mouthClose": face.spread(np.concatenate([upper_lip, lower_lip]), np.concatenate([np.tile([0.0, -0.4, 0.0], (len(upper_lip), 1)), np.tile([0.0, 0.9, 0.05], (len(lower_lip), 1))]), 1.4),
        "mouthFunnel": face.spread(lips, inward(lips, 0.3) + np.stack([np.zeros(len(lips)), 0.2 * np.sign(v[lips, 1] - v[INNER_LIP, 1].mean()), np.full(len(lips), 0.4)], 1), 1.8),
        "mouthPucker": face.spread(lips, inward(lips, 0.45) + np.array([0.0, 0.0, 0.55]), 1.9),
        "mouthRollLower": face.spread(lower_lip, np.where(np.isin(lower_lip, LOWER_OUTER_LIP)[:, None], [0.0, 0.15, -0.35], [0.0, 0.05, -0.2]), 1.2),
        "mouthRollUpper": face.spread(upper_lip, np.where(np.isin(upper_lip, UPPER_OUTER_LIP)[:, None], [0.0, -0.15, -0.35], [0.0, -0.05, -0.2]), 1.2),
        "mouthShrugLower": face.spread(np.concatenate([lower_lip, CHIN]), (0.0, 0.25, 0.15), 2.2),
        "mouthShrugUpper": face.spread(upper_lip, (0.0, 0.25, 0.05), 1.5),
    }


def expression_basis(mesh: HeadMesh, jaw_weight: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Displacement of every vertex at weight 1 for each of `EXPRESSION_NAMES`, metres. [52, V, 3]

    Args:
        mesh: the template.
        jaw_weight: how much each vertex follows the jaw. [V]
        mirror: vertex id of each vertex's x-mirror image. [V]
    """
    face = _Face(mesh, jaw_weight)
    face.mirror = mirror[:N_FACE]
    face.eye_centres = mesh.eye_centres.astype(np.float64) * 100.0
    face_shapes = {**_left_shapes(face), **_symmetric_shapes(face, mesh)}
    flip = np.array([-1.0, 1.0, 1.0])
    for name in list(face_shapes):
        if name.endswith("Left"):
            face_shapes[name[:-4] + "Right"] = face_shapes[name][face.mirror] * flip
    face_shapes["mouthRight"] = face_shapes["mouthLeft"][face.mirror] * flip
    n_verts = len(mesh.verts)
    has_anchor = mesh.anchor >= 0
    jaw = jaw_weight[:, None]
    tongue = (np.asarray(PARTS)[mesh.part] == "tongue")[:, None]
    tongue_tip = surface.smoothstep(0.0, 3.5, mesh.verts[:, 2:3] * 100.0)
    body = {
        "jawForward": jaw * [0.0, 0.0, 0.55],
        "jawLeft": jaw * [0.55, 0.0, 0.0],
        "jawRight": jaw * [-0.55, 0.0, 0.0],
        # Corrective for the jaw joint: the condyle glides forward as the mouth opens, so the chin drops
        # rather than swinging back.
        "jawOpen": jaw * [0.0, -0.2, 1.4],
        "tongueOut": tongue * tongue_tip * [0.0, -0.35, 2.4],
    }
    basis = np.zeros((len(EXPRESSION_NAMES), n_verts, 3))
    for k, name in enumerate(EXPRESSION_NAMES):
        if name in face_shapes:
            on_face = face_shapes[name]
            basis[k, has_anchor] = on_face[mesh.anchor[has_anchor]] * mesh.anchor_weight[has_anchor, None]
        if name in body:
            basis[k] += body[name]
    return (basis * 0.01).astype(np.float32)


def gaze_matrix() -> np.ndarray:
    """Linear map from expression weights to eye rotations: [eye (left, right), (yaw, pitch), 52] radians.

    Yaw rotates about +y (positive looks toward the subject's left, +x); pitch about +x (positive looks down).
    The eyeLook* blendshapes move only the lids; the eyeballs turn through these eye-joint rotations.
    """
    gaze = np.zeros((2, 2, len(EXPRESSION_NAMES)), dtype=np.float32)
    for eye, side, outward in ((0, "Left", 1.0), (1, "Right", -1.0)):
        gaze[eye, 0, EXPRESSION_NAMES.index(f"eyeLookOut{side}")] = outward * GAZE_LIMITS["Out"]
        gaze[eye, 0, EXPRESSION_NAMES.index(f"eyeLookIn{side}")] = -outward * GAZE_LIMITS["In"]
        gaze[eye, 1, EXPRESSION_NAMES.index(f"eyeLookDown{side}")] = GAZE_LIMITS["Down"]
        gaze[eye, 1, EXPRESSION_NAMES.index(f"eyeLookUp{side}")] = -GAZE_LIMITS["Up"]
    return gaze
