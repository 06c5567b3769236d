"""Parts behind the face's openings: eyeballs with eye sockets, and the inner mouth (cavity, teeth, tongue).

Without them the eye and mouth holes of the face would show the inside of the skull. The eye socket and the
mouth cavity are lofted from the opening contours themselves, so they stay attached when lids and lips move.
Units are centimetres; every part is built symmetric about x = 0 so the mirror map is exact.
"""

from __future__ import annotations

import numpy as np

from foundation.head.mesh_builder import MeshBuilder, fan, grid
from foundation.head.landmarks import EYE_L, EYE_R, INNER_LIP, LOWER_INNER_LIP, UPPER_INNER_LIP

EYEBALL_RADIUS = 1.2
"""Adult eyeball radius (cm)."""
IRIS_RADIUS = 0.59
"""Iris radius (cm); the iris landmarks lie on this circle on the eyeball."""
EYE_RING_DEG = np.array([0.0, 12.0, 22.0, np.degrees(np.arcsin(IRIS_RADIUS / EYEBALL_RADIUS)), 40.0, 55.0, 72.0, 90.0, 110.0, 130.0, 150.0])
"""Polar angles of the eyeball's rings from the gaze axis; the back (> 150°) is never visible and left open."""
N_EYE_AROUND = 24
ARCH_HALF_WIDTH = 2.45
"""Half-width of the dental arch at the molars (cm)."""


def eye_centre(verts: np.ndarray, contour: np.ndarray) -> np.ndarray:
    """Eyeball centre behind an eye opening: centred on the opening, sunk so the lid margins rest on the ball."""
    opening = verts[contour]
    centre = np.array([0.5 * (opening[:, 0].min() + opening[:, 0].max()), opening[:, 1].mean(), 0.0])
    # The mid-lid points (nearest the gaze axis) should sit just outside the ball's surface.
    lateral = np.linalg.norm((opening - centre)[:, :2], axis=1)
    mid = lateral < np.percentile(lateral, 30)
    depth = np.sqrt(np.maximum(EYEBALL_RADIUS**2 - lateral[mid] ** 2, 0.0))
    centre[2] = float(np.mean(opening[mid, 2] - depth)) - 0.05
    return centre


def add_eyes(builder: MeshBuilder, centres: dict[str, np.ndarray]) -> None:
    """Add both eyeballs; their iris landmark vertices (right 468–472, left 473–477) are added first.

    `centres` maps "eye_r"/"eye_l" to eyeball centres (cm). The iris points are the front pole and the iris
    circle at image right (+x), top (+y), left and bottom.
    """
    alpha = np.radians(EYE_RING_DEG)
    phi = 2.0 * np.pi * np.arange(N_EYE_AROUND) / N_EYE_AROUND
    iris_ring = 3
    quarter = np.arange(4) * N_EYE_AROUND // 4
    local = np.concatenate([
        [[0.0, 0.0, 1.0]],
        np.stack([np.outer(np.sin(alpha[1:]), np.cos(phi)), np.outer(np.sin(alpha[1:]), np.sin(phi)), np.outer(np.cos(alpha[1:]), np.ones_like(phi))], -1).reshape(-1, 3),
    ])  # fmt: skip
    ring_start = 1 + (np.arange(1, len(alpha)) - 1) * N_EYE_AROUND
    iris_local = np.append(0, ring_start[iris_ring - 1] + quarter)
    rest_local = np.setdiff1d(np.arange(len(local)), iris_local)
    # Polar-disc UVs: gaze axis at the centre, the open back on the rim.
    radius = 0.5 * np.concatenate([[0.0], np.repeat(alpha[1:] / alpha[-1], N_EYE_AROUND)])
    angle = np.concatenate([[0.0], np.tile(phi, len(alpha) - 1)])
    uvs = np.stack([0.5 + radius * np.cos(angle), 0.5 - radius * np.sin(angle)], 1)
    global_ids = {}
    for name in ("eye_r", "eye_l"):
        ids = np.empty(len(local), dtype=np.int64)
        ids[iris_local] = builder.add_verts(centres[name] + EYEBALL_RADIUS * local[iris_local], name)
        global_ids[name] = ids
    for name in ("eye_r", "eye_l"):
        ids = global_ids[name]
        ids[rest_local] = builder.add_verts(centres[name] + EYEBALL_RADIUS * local[rest_local], name)
        uv_ids = builder.add_uvs(uvs, name)
        rows = [ids[ring_start[k] : ring_start[k] + N_EYE_AROUND] for k in range(len(ring_start))]
        uv_rows = [uv_ids[ring_start[k] : ring_start[k] + N_EYE_AROUND] for k in range(len(ring_start))]
        faces = np.concatenate([fan(rows[0], ids[0])[:, [1, 0, 2]], grid(rows, wrap=True)])
        faces_uvs = np.concatenate([fan(uv_rows[0], uv_ids[0])[:, [1, 0, 2]], grid(uv_rows, wrap=True)])
        builder.add_faces(faces, faces_uvs, centre=centres[name])


def add_eye_sockets(builder: MeshBuilder, centres: dict[str, np.ndarray]) -> None:
    """Close the gap between each lid contour and its eyeball with a short wall of skin (labelled face)."""
    verts = builder.all_verts()
    for name, contour in (("eye_l", EYE_L), ("eye_r", EYE_R)):
        direction = verts[contour] - centres[name]
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        # Just inside the ball, so the wall meets the eyeball without a visible crack.
        wall = centres[name] + 0.97 * EYEBALL_RADIUS * direction
        ids = builder.add_verts(wall, "face", anchor=contour, anchor_weight=np.zeros(len(contour)))
        uv_ids = builder.add_uvs(_face_uvs(builder, contour), "face")
        faces = grid([contour, ids], wrap=True)
        uv_faces = grid([_face_uv_ids(contour), uv_ids], wrap=True)
        builder.add_faces(faces, uv_faces, centre=centres[name], outward=False)


def _face_uv_ids(face_verts: np.ndarray) -> np.ndarray:
    # The face was added first with one UV per vertex, so its UV ids equal its vertex ids.
    return face_verts


def _face_uvs(builder: MeshBuilder, face_verts: np.ndarray) -> np.ndarray:
    """Face UVs of face vertices, mapped back into the face part's own unit square."""
    return builder.uvs[0][face_verts] / 0.5


def add_mouth(builder: MeshBuilder) -> None:
    """Mouth cavity hanging from the inner lip contour, upper and lower teeth, tongue."""
    verts = builder.all_verts()
    lip = verts[INNER_LIP]
    centre = lip.mean(axis=0)
    side = np.where(np.isin(INNER_LIP, UPPER_INNER_LIP[1:-1]), 1.0, np.where(np.isin(INNER_LIP, LOWER_INNER_LIP[1:-1]), -1.0, 0.0))
    # Each ring: (depth behind the lips or absolute z, x scale, vertical opening) in cm; the bag widens past the
    # teeth (vestibule) and narrows toward the throat.
    ring_specs = [(-0.35, 1.05, 0.45), (-1.0, 1.25, 1.35), (None, 1.3, 1.75), (None, 1.05, 1.6), (None, 0.6, 1.2)]
    ring_z = [None, None, 2.0, 0.0, -1.0]
    rows, uv_rows = [INNER_LIP], [_face_uv_ids(INNER_LIP)]
    follow = [0.8, 0.5, 0.2, 0.0, 0.0]
    for k, (depth, scale_x, opening) in enumerate(ring_specs):
        z = lip[:, 2] + depth if ring_z[k] is None else np.full(len(lip), ring_z[k])
        ring = np.stack([lip[:, 0] * scale_x, centre[1] + side * opening - 0.15 * k, z], axis=1)
        rows.append(builder.add_verts(ring, "mouth_cavity", INNER_LIP, np.full(len(lip), follow[k])))
        angle = 2 * np.pi * np.arange(len(lip)) / len(lip)
        r = 0.5 * (1.0 - (k + 1) / (len(ring_specs) + 1))
        uv_rows.append(builder.add_uvs(np.stack([0.5 + r * np.cos(angle), 0.5 + r * np.sin(angle)], 1), "mouth_cavity"))
    throat = builder.add_verts(np.array([[0.0, centre[1] - 0.9, -1.6]]), "mouth_cavity")[0]
    throat_uv = builder.add_uvs(np.array([[0.5, 0.5]]), "mouth_cavity")[0]
    builder.add_faces(
        np.concatenate([grid(rows, wrap=True), fan(rows[-1], throat)]),
        np.concatenate([grid(uv_rows, wrap=True), fan(uv_rows[-1], throat_uv)]),
        centre=np.array([0.0, centre[1], 1.5]),
        outward=False,
    )
    _add_teeth(builder, "teeth_upper", front_z=centre[2] - 0.45, top=centre[1] + 0.8, bottom=centre[1] - 0.25, scale=1.0)
    _add_teeth(builder, "teeth_lower", front_z=centre[2] - 1.05, top=centre[1] - 0.15, bottom=centre[1] - 1.05, scale=0.93)
    _add_tongue(builder, np.array([0.0, centre[1] - 1.05, 1.6]))


def _add_teeth(builder: MeshBuilder, part: str, front_z: float, top: float, bottom: float, scale: float, n: int = 25) -> None:
    """A tooth row as a band swept along a parabolic dental arch: outer face, biting edge, inner face."""
    x = scale * ARCH_HALF_WIDTH * np.linspace(-1.0, 1.0, n)
    depth_at_molars = 2.8 * scale
    z = front_z - depth_at_molars * (x / (scale * ARCH_HALF_WIDTH)) ** 2
    thickness = 0.6 * scale
    # Inward normal of the arch in the xz-plane, to offset the inner face.
    tangent = np.stack([np.ones(n), np.gradient(z, x)], 1)
    inward = np.stack([tangent[:, 1], -tangent[:, 0]], 1) / np.linalg.norm(tangent, axis=1, keepdims=True)
    inward *= np.sign(-inward[n // 2, 1])
    gum, edge = (top, bottom) if part == "teeth_upper" else (bottom, top)
    # Cross-section corners: outer gum, outer edge, inner edge, inner gum (the edge is slightly rounded in).
    sections = [
        (0.0, gum), (0.0, edge), (0.35, edge + 0.02 * np.sign(gum - edge)), (1.0, gum),
    ]  # fmt: skip
    rows, uv_rows = [], []
    for j, (offset, height) in enumerate(sections):
        pts = np.stack([x + inward[:, 0] * thickness * offset, np.full(n, height), z + inward[:, 1] * thickness * offset], 1)
        rows.append(builder.add_verts(pts, part))
        uv_rows.append(builder.add_uvs(np.stack([np.linspace(0, 1, n), np.full(n, j / 3)], 1), part))
    centre = np.array([0.0, 0.5 * (top + bottom), front_z - 1.5])
    builder.add_faces(grid(rows, wrap=False), grid(uv_rows, wrap=False), centre=centre)


def _add_tongue(builder: MeshBuilder, centre: np.ndarray, radii=(1.75, 0.6, 2.1), n_around: int = 20, n_rings: int = 8) -> None:
    """A flattened ellipsoid resting on the floor of the mouth, tip toward the teeth (+z)."""
    alpha = np.linspace(0.0, np.pi, n_rings + 1)[1:-1]
    phi = 2.0 * np.pi * np.arange(n_around) / n_around
    # Poles on the z axis (tip and root) so the rings run around the tongue's length.
    local = np.stack([np.outer(np.sin(alpha), np.cos(phi)), np.outer(np.sin(alpha), np.sin(phi)), np.outer(np.cos(alpha), np.ones_like(phi))], -1)
    pts = centre + np.asarray(radii) * np.concatenate([[[0.0, 0.0, 1.0]], local.reshape(-1, 3), [[0.0, 0.0, -1.0]]])
    ids = builder.add_verts(pts, "tongue")
    uv = np.concatenate([[[0.5, 0.0]], np.stack(np.meshgrid(phi / (2 * np.pi), alpha / np.pi), -1).reshape(-1, 2), [[0.5, 1.0]]])
    uv_ids = builder.add_uvs(uv, "tongue")
    rows = [ids[1 + k * n_around : 1 + (k + 1) * n_around] for k in range(len(alpha))]
    uv_rows = [uv_ids[1 + k * n_around : 1 + (k + 1) * n_around] for k in range(len(alpha))]
    faces = np.concatenate([fan(rows[0], ids[0]), grid(rows, wrap=True), fan(rows[-1], ids[-1])])
    faces_uvs = np.concatenate([fan(uv_rows[0], uv_ids[0]), grid(uv_rows, wrap=True), fan(uv_rows[-1], uv_ids[-1])])
    builder.add_faces(faces, faces_uvs, centre=centre)
