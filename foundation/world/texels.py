"""The head's texture atlas seen as geometry: for every texel, where it sits on the template surface.

Appearance is painted as a function of 3D position (a hairline is a height on the skull, a neckline a height
on the bust), so paint stays continuous across UV seams and across the atlas rectangles of different parts,
whatever UV layout a head model uses. Facial features are painted at MediaPipe landmarks, whose texel
positions come from the same map. Also: smooth 3D value noise and fractal noise for skin, hair and cloth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from skimage.draw import polygon as fill_polygon

from foundation.camera import Camera
from foundation.head import HeadModel
from foundation.head.renderer import rasterize, vertex_normals

MAX_UV_SPREAD = 0.1
"""A UV triangle wider than this (in [0, 1] atlas units) spans atlas regions; real triangles are far smaller."""


@dataclass(frozen=True)
class TexelMap:
    """Per-texel surface attributes of a square atlas of `size`² texels (row = v, column = u).

    Fields:
        size: texels per side.
        covered: texel lies inside some UV triangle. [S, S] bool
        position: template surface point, metres (world frame, y up, face toward +z); 0 where uncovered. [S, S, 3]
        normal: template surface normal (unit; 0 where uncovered). [S, S, 3]
        part: index into `part_names`, -1 where uncovered. [S, S] int
        vertex: the mesh vertex nearest in barycentric weight, -1 where uncovered. [S, S] int
        bary: barycentric weights of the texel in its triangle. [S, S, 3]
        corners: vertex ids of the texel's triangle, -1 where uncovered. [S, S, 3] int
        landmark_px: texel (column, row) of each MediaPipe landmark in its own part's region. [478, 2]
        part_names: as the head's.
    """

    size: int
    covered: np.ndarray
    position: np.ndarray
    normal: np.ndarray
    part: np.ndarray
    vertex: np.ndarray
    bary: np.ndarray
    corners: np.ndarray
    landmark_px: np.ndarray
    part_names: tuple[str, ...]

    def mask(self, *names: str) -> np.ndarray:
        """Texels of the named parts (unknown names select nothing). [S, S] bool"""
        ids = [self.part_names.index(n) for n in names if n in self.part_names]
        return np.isin(self.part, ids)


def texel_map(head: HeadModel, size: int) -> TexelMap:
    """Rasterize the head's UV triangles into a `size`² atlas and interpolate template attributes over them."""
    faces = head.faces.cpu()
    faces_uvs = head.faces_uvs.cpu()
    uv = head.verts_uvs.cpu().float()
    # A triangle whose UVs sit in two atlas regions (a strip joining two parts) would smear across the atlas
    # between them; it owns no texels.
    corner_uv = uv[faces_uvs]
    spread = (corner_uv.max(1).values - corner_uv.min(1).values).max(1).values
    faces_uvs = torch.where((spread > MAX_UV_SPREAD)[:, None], torch.zeros_like(faces_uvs), faces_uvs)
    # UV space as an image seen by a pinhole at unit depth with K = I: pixel coordinates are uv * size.
    uv_points = torch.cat([uv * size, torch.ones(len(uv), 1)], 1)[None]
    uv_camera = Camera(torch.eye(4), torch.eye(3), size, size)
    fragments = rasterize(uv_points, faces_uvs, uv_camera, cull_backfaces=False, backend="torch")
    face = fragments.face_ids[0].numpy()
    bary = fragments.bary[0].numpy()
    covered = face >= 0
    corners = np.where(covered[..., None], faces.numpy()[np.maximum(face, 0)], -1)

    template = head.template.cpu().numpy().astype(np.float64)
    normals = vertex_normals(torch.as_tensor(template), faces).numpy()
    position = np.where(covered[..., None], np.einsum("hwk,hwkc->hwc", bary, template[np.maximum(corners, 0)]), 0.0)
    normal = np.einsum("hwk,hwkc->hwc", bary, normals[np.maximum(corners, 0)])
    normal = np.where(covered[..., None], normal / np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-9), 0.0)
    vertex = np.where(covered, np.take_along_axis(np.maximum(corners, 0), bary.argmax(-1)[..., None], -1)[..., 0], -1)
    part_of_vertex = head.part.cpu().numpy()
    part = np.where(covered, part_of_vertex[np.maximum(vertex, 0)], -1)
    landmark_px = _landmark_texels(head, size)
    return TexelMap(size, covered, position.astype(np.float32), normal.astype(np.float32), part, vertex,
                    bary.astype(np.float32), corners, landmark_px, tuple(head.part_names))


def _landmark_texels(head: HeadModel, size: int) -> np.ndarray:
    """Texel of each landmark vertex, taken from a triangle lying wholly in the vertex's part. [478, 2]"""
    faces = head.faces.cpu().numpy()
    faces_uvs = head.faces_uvs.cpu().numpy()
    part = head.part.cpu().numpy()
    # A vertex on a part boundary (the face oval, say) has a UV in each part's atlas region; the one of its
    # own part is the one painted features belong to.
    same = (part[faces] == part[faces][:, :1]).all(1)
    vertex_uv = np.full((len(part), 2), np.nan)
    vertex_uv[faces[same].ravel()] = head.verts_uvs.cpu().numpy()[faces_uvs[same].ravel()]
    return vertex_uv[head.landmark_index.cpu().numpy()] * size


def fill_gutters(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Copy each uncovered texel from its nearest covered one, so bilinear lookups at UV seams see no black.

    image: [S, S, C]; covered: [S, S] bool → [S, S, C]
    """
    _, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return image[rows, cols]


def polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    """Filled polygon in texel space. points: [P, 2] (column, row) texels → [S, S] float {0, 1}"""
    mask = np.zeros((size, size), np.float32)
    rows, cols = fill_polygon(points[:, 1], points[:, 0], shape=(size, size))
    mask[rows, cols] = 1.0
    return mask


def value_noise(points: np.ndarray, cell_m: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise in [-1, 1] over 3D space: hashed random values at the corners of `cell_m` cubes, blended
    with smoothstep weights. Hashing (not a stored lattice) keeps sub-millimetre cells cheap.

    points: [..., 3] metres → [...] float32
    """
    offset = rng.uniform(0, 1e4, 3)
    seed = np.uint64(rng.integers(1, 1 << 62))
    coords = points / cell_m + offset
    base = np.floor(coords)
    frac = (coords - base).astype(np.float32)
    frac = frac * frac * (3.0 - 2.0 * frac)
    weights = [(1.0 - frac[..., k], frac[..., k]) for k in range(3)]
    cell = base.astype(np.int64).astype(np.uint64)
    out = np.zeros(points.shape[:-1], np.float32)
    for i, j, k in np.ndindex(2, 2, 2):
        corner = np.array([i, j, k], np.uint64)
        out += weights[0][i] * weights[1][j] * weights[2][k] * _hash_unit(cell + corner, seed)
    return out


def _hash_unit(cell: np.ndarray, seed: np.uint64) -> np.ndarray:
    """A pseudo-random value in [-1, 1] per integer 3D cell (splitmix64 over the mixed coordinates). [..., 3] → [...]"""
    with np.errstate(over="ignore"):
        key = seed ^ (cell[..., 0] * np.uint64(0x9E3779B97F4A7C15)) ^ (cell[..., 1] * np.uint64(0xC2B2AE3D27D4EB4F)) \
            ^ (cell[..., 2] * np.uint64(0x165667B19E3779F9))
        key = (key ^ (key >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        key = (key ^ (key >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        key = key ^ (key >> np.uint64(31))
    return ((key >> np.uint64(40)).astype(np.float32) / float(1 << 24)) * 2.0 - 1.0


def fractal_noise(points: np.ndarray, cell_m: float, rng: np.random.Generator, octaves: int = 3) -> np.ndarray:
    """Sum of `octaves` value noises, each at half the cell size and half the amplitude; roughly in [-1, 1]."""
    total = np.zeros(points.shape[:-1], np.float32)
    for octave in range(octaves):
        total += 0.5**octave * value_noise(points, cell_m / 2**octave, rng)
    return total / (2.0 - 0.5 ** (octaves - 1))
