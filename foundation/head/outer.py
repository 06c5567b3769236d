"""The outer surface: the canonical face with its openings cut, a skull lofted from the face oval, and the bust.

Units are centimetres (the builder's); the face looks toward +z, y is up, the subject's left is +x.
"""

from __future__ import annotations

import numpy as np

from foundation.head import surface
from foundation.head.mesh_builder import MeshBuilder, fan, grid
from foundation.head.model import PARTS
from foundation.head.landmarks import EYE_L, EYE_R, INNER_LIP, LOWER_INNER_LIP, UPPER_INNER_LIP
from foundation.head.template import load_canonical_mesh

HEAD_CENTRE = np.array([0.0, 1.5, -2.0])
"""Centre of the skull ellipsoid (cm)."""
HEAD_RADII = np.array([7.9, 11.3, 10.3])
"""Skull half-axes (cm): ~16 cm wide, ~20 cm nose tip to back, ~23 cm chin to crown."""
BUST_RINGS = np.array([
    # y,     rx,   rz,   cz,   superellipse exponent
    [-3.0,   5.0,  5.0, -4.2, 2.0],
    [-7.0,   5.2,  5.3, -4.4, 2.0],
    [-11.0,  5.6,  5.6, -4.6, 2.0],
    [-13.0,  7.5,  6.5, -4.8, 2.2],
    [-14.8, 12.0,  8.2, -4.6, 2.6],
    [-16.8, 16.5,  9.6, -4.2, 3.0],
    [-19.5, 19.5, 10.6, -3.6, 3.2],
    [-23.5, 20.5, 11.0, -3.2, 3.2],
    [-29.0, 20.0, 11.0, -3.0, 3.0],
    [-34.0, 19.0, 10.5, -3.0, 3.0],
])  # fmt: skip
"""Horizontal cross-sections of neck and upper torso (cm); the neck's top ring hides inside the head."""
NECK_BOTTOM_Y = -13.5
"""Bust rings above this height (cm) are labelled neck, the rest shoulders."""


def add_face(builder: MeshBuilder) -> np.ndarray:
    """Add the canonical face with its eye and mouth openings cut and the lips brought together. Returns ids [468]."""
    canonical = load_canonical_mesh()
    verts = canonical.verts * 100.0
    openings = [set(EYE_L.tolist()), set(EYE_R.tolist()), set(INNER_LIP.tolist())]
    # The canonical mesh triangulates across the eye and mouth openings; removing those fills makes the holes.
    keep = np.array([not any(set(tri) <= hole for hole in openings) for tri in canonical.faces.tolist()])
    faces = canonical.faces[keep]
    verts = _close_lips(verts, faces)
    ids = builder.add_verts(verts, "face", anchor=np.arange(len(verts)), anchor_weight=np.ones(len(verts)))
    uv_ids = builder.add_uvs(canonical.uvs, "face")
    builder.add_faces(ids[faces], uv_ids[faces])
    return ids


def _close_lips(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The canonical face rests with its lips 5 mm apart; a talking head's neutral has them (almost) touching."""
    upper, lower = UPPER_INNER_LIP[1:-1], LOWER_INNER_LIP[1:-1]
    meet = 0.5 * (verts[upper, 1] + verts[lower, 1])
    anchors = np.concatenate([upper, lower])
    deltas = np.zeros((len(anchors), 3))
    # A 0.3 mm gap is kept so the two lip contours never coincide (coincident vertices confuse rasterizers).
    deltas[:, 1] = np.concatenate([meet - verts[upper, 1] + 0.015, meet - verts[lower, 1] - 0.015])
    return verts + surface.propagate(surface.geodesic(verts, faces, anchors), deltas, radius=1.6)


def add_skull(builder: MeshBuilder, face_ids: np.ndarray, n_rings: int = 14) -> None:
    """Loft the face oval back over a skull ellipsoid to a pole behind the head (closed back of the head)."""
    oval = face_ids[surface.boundary_loops(builder.faces[0])[0]]
    rim = builder.all_verts()[oval]
    scaled = (rim - HEAD_CENTRE) / HEAD_RADII
    unit = scaled / np.linalg.norm(scaled, axis=1, keepdims=True)
    alpha0 = np.arccos(np.clip(unit[:, 2], -1.0, 1.0))
    phi = np.arctan2(unit[:, 1], unit[:, 0])
    t = np.arange(1, n_rings) / n_rings
    alpha = alpha0[None] + (np.pi - alpha0[None]) * t[:, None]
    direction = np.stack([np.sin(alpha) * np.cos(phi), np.sin(alpha) * np.sin(phi), np.cos(alpha)], axis=-1)
    rings = HEAD_CENTRE + HEAD_RADII * direction
    # Ease from the face rim onto the ellipsoid over the first third of the loft so the seam has no crease.
    rim_offset = rim - (HEAD_CENTRE + HEAD_RADII * unit)
    rings = rings + rim_offset[None] * (1.0 - surface.smoothstep(0.0, 0.35, t))[:, None, None]
    # An ellipsoid alone reads as an egg: raise and deepen the occiput a little.
    back = surface.smoothstep(-2.0, -9.0, rings[..., 2]) * surface.smoothstep(-6.0, 4.0, rings[..., 1])
    rings = rings + np.array([0.0, 0.6, -0.6]) * back[..., None]
    pole = HEAD_CENTRE + np.array([0.0, 0.8, -HEAD_RADII[2] - 0.5])
    points = np.concatenate([rings.reshape(-1, 3), pole[None]])
    # Hair covers the top and back; the loft below the ears and under the jaw is skin (labelled neck).
    hair = (points[:, 1] > 0.5) | ((points[:, 2] < -5.5) & (points[:, 1] > -5.0))
    part = np.where(hair, PARTS.index("scalp"), PARTS.index("neck"))
    # Skin next to the face oval follows the face's expressions, fading out over the first rings.
    follow = np.repeat(1.0 - surface.smoothstep(0.0, 0.3, t), len(oval))
    ids = builder.add_verts(points, part, np.append(np.tile(oval, n_rings - 1), -1), np.append(follow, 0.0))
    # Polar-disc UVs: the face rim on the disc's edge, the back pole at its centre, so no seam is needed.
    radius = 0.5 * np.append(np.repeat(1.0 - t, len(oval)), 0.0)
    angle = np.append(np.tile(phi, n_rings - 1), 0.0)
    uv_ids = builder.add_uvs(np.stack([0.5 + radius * np.cos(angle), 0.5 - radius * np.sin(angle)], 1), "scalp")
    rim_uv = builder.add_uvs(np.stack([0.5 + 0.5 * np.cos(phi), 0.5 - 0.5 * np.sin(phi)], 1), "scalp")
    rows = [oval, *ids[:-1].reshape(n_rings - 1, len(oval))]
    uv_rows = [rim_uv, *uv_ids[:-1].reshape(n_rings - 1, len(oval))]
    builder.add_faces(
        np.concatenate([grid(rows, wrap=True), fan(rows[-1], ids[-1])]),
        np.concatenate([grid(uv_rows, wrap=True), fan(uv_rows[-1], uv_ids[-1])]),
        centre=HEAD_CENTRE,
    )


def add_bust(builder: MeshBuilder, n_around: int = 48) -> None:
    """Neck and upper torso as superelliptic rings, closed at the bottom; the top ring hides inside the head."""
    # Columns start at the back (phi = -90°) so the cylindrical UV seam runs down the back.
    phi = -np.pi / 2 + 2.0 * np.pi * np.arange(n_around) / n_around
    cos, sin = np.cos(phi), np.sin(phi)
    u = np.arange(n_around + 1) / n_around
    rows, uv_rows = [], []
    for k, (y, rx, rz, cz, exponent) in enumerate(BUST_RINGS):
        power = 2.0 / exponent
        ring = np.stack([rx * np.sign(cos) * np.abs(cos) ** power, np.full(n_around, y), cz + rz * np.sign(sin) * np.abs(sin) ** power], 1)
        ids = builder.add_verts(ring, "neck" if y > NECK_BOTTOM_Y else "shoulders")
        rows.append(np.append(ids, ids[0]))
        uv_rows.append(builder.add_uvs(np.stack([u, np.full(n_around + 1, k / len(BUST_RINGS))], 1), "neck"))
    y, _, _, cz, _ = BUST_RINGS[-1]
    pole = builder.add_verts(np.array([[0.0, y, cz]]), "shoulders")[0]
    pole_uv = builder.add_uvs(np.array([[0.5, 1.0]]), "neck")[0]
    builder.add_faces(
        np.concatenate([grid(rows, wrap=False), fan(rows[-1], pole, wrap=False)]),
        np.concatenate([grid(uv_rows, wrap=False), fan(uv_rows[-1], pole_uv, wrap=False)]),
        centre=np.array([0.0, -15.0, -4.0]),
    )
