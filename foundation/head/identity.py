"""Identity (shape) basis of the default head: smooth spatial deformations, orthogonalised, PCA-like scaled.

Each component starts as a displacement field defined over space (face width, nose size, jaw width, ...),
so every part — skin, teeth, cavity — deforms consistently with its surroundings; eyeballs move rigidly
with the field at their centre so they stay spheres. Named anatomical fields come first, then random smooth
fields (symmetric, a few asymmetric) fill up to `N_SHAPE`. Gram–Schmidt in that order keeps the leading
components' meaning; each component keeps the size of the part of its field that is new (fields are sized as
one standard deviation), so coefficients ~N(0, 1) give plausible people.
"""

from __future__ import annotations

import numpy as np

from foundation.head.model import PARTS
from foundation.head.mesh import HeadMesh
from foundation.head.surface import smoothstep

SEED = 20240601


def _bump(points: np.ndarray, centre, radius: float) -> np.ndarray:
    d2 = (((points - np.asarray(centre, dtype=np.float64)) / radius) ** 2).sum(axis=1)
    return np.exp(-d2)[:, None]


def _named_fields(p: np.ndarray, is_bust: np.ndarray) -> list[np.ndarray]:
    """Anatomical deformation fields (cm per unit coefficient) at points p [N, 3] in cm."""
    x, y, z = p[:, 0:1], p[:, 1:2], p[:, 2:3]
    zero = np.zeros_like(x)
    head = 1.0 - is_bust[:, None]
    front = smoothstep(-3.0, 3.0, z) * head
    sign = np.sign(x)
    return [
        0.045 * (p - [0.0, 0.0, -2.0]) * head,  # head size
        np.concatenate([0.07 * x * front, zero, zero], 1),  # face width
        np.concatenate([zero, 0.07 * np.minimum(y - 2.0, 0.0) * front, zero], 1),  # lower-face length
        np.concatenate([zero, zero, 0.25 * _bump(p, [0, -0.5, 7.0], 2.2)], 1),  # nose projection
        0.18 * (p - [0.0, -1.5, 5.5]) * _bump(p, [0, -1.0, 6.5], 2.3),  # nose size
        np.concatenate([0.09 * x * _bump(p, [0, -6.5, 1.0], 5.0), zero, zero], 1),  # jaw width
        np.concatenate([0.35 * sign * (_bump(p, [4.2, -2.5, 3.5], 2.2) + _bump(p, [-4.2, -2.5, 3.5], 2.2)), zero, zero], 1),  # cheek fullness
        np.concatenate([zero, zero, 0.3 * (_bump(p, [2.8, 4.2, 4.5], 2.2) + _bump(p, [-2.8, 4.2, 4.5], 2.2))], 1),  # brow ridge
        np.concatenate([zero, -0.25 * _bump(p, [0, -8.8, 4.5], 2.5), 0.35 * _bump(p, [0, -8.8, 4.5], 2.5)], 1),  # chin
        np.concatenate([0.22 * sign * (_bump(p, [3.15, 2.6, 3.0], 1.9) + _bump(p, [-3.15, 2.6, 3.0], 1.9)), zero, zero], 1),  # eye spacing
        np.concatenate([0.1 * x * _bump(p, [0, -4.3, 4.5], 2.4), zero, zero], 1),  # mouth width
        # Lip fullness grows away from the lip line (zero on it) so the lips never part.
        np.concatenate([zero, 0.25 * (y + 4.27) * _bump(p, [0, -4.3, 5.2], 1.2), 0.12 * np.abs(y + 4.27) * _bump(p, [0, -4.3, 5.2], 1.2)], 1),  # lip fullness
        np.concatenate([zero, zero, -0.3 * smoothstep(4.0, 9.0, y) * front], 1),  # forehead slope
        np.concatenate([zero, zero, -0.7 * smoothstep(-3.0, -9.0, z) * head], 1),  # skull length
        np.concatenate([zero, 0.6 * smoothstep(5.0, 12.0, y) * head, zero], 1),  # skull height
        np.concatenate([0.05 * (x * smoothstep(-2.0, -9.0, z)) * head, zero, zero], 1),  # skull width
        np.concatenate([0.09 * x * is_bust[:, None] * smoothstep(-15.0, -10.0, y), zero, 0.09 * (z + 4.5) * is_bust[:, None] * smoothstep(-15.0, -10.0, y)], 1),  # neck girth
        np.concatenate([1.2 * sign * is_bust[:, None] * smoothstep(8.0, 18.0, np.abs(x)), zero, zero], 1),  # shoulder width
        np.concatenate([zero, zero, 0.06 * z * front], 1),  # face depth
    ]


def _random_fields(p: np.ndarray, count: int, rng: np.random.Generator, anchors: np.ndarray) -> list[np.ndarray]:
    """Sums of a few Gaussian bumps with random directions, mostly mirror-symmetric."""
    fields = []
    for k in range(count):
        field = np.zeros_like(p)
        for _ in range(3):
            centre = anchors[rng.integers(len(anchors))]
            radius = rng.uniform(1.5, 4.0)
            direction = rng.normal(size=3) * 0.15
            field += _bump(p, centre, radius) * direction
            if k % 5 != 4:  # four in five are symmetric: faces are mostly, not perfectly, symmetric
                field += _bump(p, centre * [-1, 1, 1], radius) * direction * [-1, 1, 1]
        fields.append(field)
    return fields


def shape_basis(mesh: HeadMesh, is_bust: np.ndarray, n_shape: int) -> np.ndarray:
    """Orthogonal identity basis, metres per unit coefficient. [n_shape, V, 3]"""
    points = mesh.verts.astype(np.float64) * 100.0
    part = np.asarray(PARTS)[mesh.part]
    # Eyeballs translate rigidly with the field at their centre.
    sample = points.copy()
    for k, name in enumerate(("eye_l", "eye_r")):
        sample[part == name] = mesh.eye_centres[k] * 100.0
    bust = is_bust.astype(np.float64)
    fields = _named_fields(sample, bust)
    rng = np.random.default_rng(SEED)
    fields += _random_fields(sample, max(n_shape - len(fields), 0), rng, points[:468])
    flat = np.stack([f.ravel() for f in fields[:n_shape]])
    # Gram–Schmidt (QR): each component is the part of its field not explained by the ones before it, at that
    # part's own size, so a field mostly covered by earlier ones adds a small component, not amplified noise.
    q, r = np.linalg.qr(flat.T)
    basis = (q * np.diag(r)[None]).T
    return (basis.reshape(n_shape, -1, 3) * 0.01).astype(np.float32)
