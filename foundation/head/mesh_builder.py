"""Incremental mesh assembly for the procedural head: parts, UV-atlas rectangles and consistent winding.

Vertex ids are global across parts; UV ids are separate so wrapped parts (the bust) can carry a seam in UV
space without duplicating geometry.
"""

from __future__ import annotations

import numpy as np

from foundation.head.model import ATLAS, PARTS

class MeshBuilder:
    """Accumulates vertices (cm), triangles, UVs and per-vertex annotations part by part."""

    def __init__(self) -> None:
        self.verts: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.uvs: list[np.ndarray] = []
        self.faces_uvs: list[np.ndarray] = []
        self.part: list[np.ndarray] = []
        self.anchor: list[np.ndarray] = []
        self.anchor_weight: list[np.ndarray] = []
        self.n_verts = 0
        self.n_uvs = 0

    def add_verts(
        self,
        verts: np.ndarray,
        part: str | np.ndarray,
        anchor: np.ndarray | None = None,
        anchor_weight: np.ndarray | None = None,
    ) -> np.ndarray:
        """Append vertices [n, 3] of one part (name, or per-vertex part indices [n]); returns their ids [n]."""
        n = len(verts)
        ids = np.arange(self.n_verts, self.n_verts + n)
        self.verts.append(np.asarray(verts, dtype=np.float64))
        self.part.append(np.full(n, PARTS.index(part)) if isinstance(part, str) else np.asarray(part))
        self.anchor.append(np.full(n, -1) if anchor is None else np.asarray(anchor))
        self.anchor_weight.append(np.zeros(n) if anchor_weight is None else np.asarray(anchor_weight, dtype=np.float64))
        self.n_verts += n
        return ids

    def add_uvs(self, uvs: np.ndarray, region: str) -> np.ndarray:
        """Append UVs given in [0, 1]² of the part's own square, placed into its atlas rectangle; returns ids."""
        u0, v0, u1, v1 = ATLAS[region]
        ids = np.arange(self.n_uvs, self.n_uvs + len(uvs))
        self.uvs.append(np.stack([u0 + uvs[:, 0] * (u1 - u0), v0 + uvs[:, 1] * (v1 - v0)], axis=1))
        self.n_uvs += len(uvs)
        return ids

    def add_faces(self, faces: np.ndarray, faces_uvs: np.ndarray, centre: np.ndarray | None = None, outward: bool = True) -> None:
        """Append triangles [T, 3] and their UV triangles [T, 3].

        With `centre`, the winding is flipped where needed so normals point away from it (`outward`) or
        toward it (inner surfaces such as the mouth cavity, which are seen from inside).
        """
        if centre is not None:
            tri = self.all_verts()[faces]
            normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            facing = np.einsum("ij,ij->i", normal, tri.mean(axis=1) - centre)
            if ((facing > 0).mean() > 0.5) != outward:
                faces, faces_uvs = faces[:, ::-1], faces_uvs[:, ::-1]
        self.faces.append(np.ascontiguousarray(faces))
        self.faces_uvs.append(np.ascontiguousarray(faces_uvs))

    def all_verts(self) -> np.ndarray:
        return np.concatenate(self.verts)

    def all_faces(self) -> np.ndarray:
        return np.concatenate(self.faces)


def strip(row_a: np.ndarray, row_b: np.ndarray, wrap: bool) -> np.ndarray:
    """Triangles joining two equally long id rows; `wrap` closes the strip into a band. [2 * quads, 3]"""
    n = len(row_a)
    i = np.arange(n if wrap else n - 1)
    j = (i + 1) % n
    return np.concatenate([
        np.stack([row_a[i], row_a[j], row_b[j]], axis=1),
        np.stack([row_a[i], row_b[j], row_b[i]], axis=1),
    ])  # fmt: skip


def grid(rows: list[np.ndarray], wrap: bool) -> np.ndarray:
    """Triangles of a sequence of equally long id rows (a lofted surface). [T, 3]"""
    return np.concatenate([strip(a, b, wrap) for a, b in zip(rows[:-1], rows[1:])])


def fan(row: np.ndarray, pole: int, wrap: bool = True) -> np.ndarray:
    """Triangles closing a row onto one pole vertex. [n, 3]"""
    n = len(row)
    i = np.arange(n if wrap else n - 1)
    return np.stack([row[i], row[(i + 1) % n], np.full_like(i, pole)], axis=1)
