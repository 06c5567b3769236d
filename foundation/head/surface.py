"""Surface-graph tools the head construction is built from: boundary loops, geodesic distances, smooth falloffs.

Expressions and skinning weights are made local by measuring distance *along the surface*: the mouth and eye
openings are holes, so an upper-lip shape never leaks into the lower lip even though they are millimetres apart.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix, csgraph


def edges(faces: np.ndarray) -> np.ndarray:
    """Unique undirected edges. faces: [T, 3] → [E, 2] (smaller id first)."""
    pairs = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(pairs, axis=1), axis=0)


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Boundary loops, longest first, each ordered along its triangles' winding. faces: [T, 3] → list of [n]."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    interior = {(int(a), int(b)) for a, b in directed}
    following = {int(a): int(b) for a, b in directed if (int(b), int(a)) not in interior}
    loops, seen = [], set()
    for start in following:
        if start in seen:
            continue
        loop = [start]
        seen.add(start)
        while following[loop[-1]] != start:
            loop.append(following[loop[-1]])
            seen.add(loop[-1])
        loops.append(np.asarray(loop))
    return sorted(loops, key=len, reverse=True)


def geodesic(verts: np.ndarray, faces: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Shortest edge-path distance from each source vertex to every vertex (inf where unreachable).

    Args:
        verts: [V, 3] (any length unit; the result has the same unit)
        faces: [T, 3]
        sources: [S] vertex ids
    Returns:
        [S, V]
    """
    pairs = edges(faces)
    length = np.linalg.norm(verts[pairs[:, 0]] - verts[pairs[:, 1]], axis=1)
    graph = coo_matrix((length, (pairs[:, 0], pairs[:, 1])), shape=(len(verts), len(verts))).tocsr()
    return csgraph.dijkstra(graph, directed=False, indices=np.asarray(sources))


def falloff(distance: np.ndarray, radius: float) -> np.ndarray:
    """Smooth compact bump: 1 at distance 0, 0 from `radius` on, zero slope at both ends."""
    s = np.clip(np.asarray(distance) / radius, 0.0, 1.0)
    return (1.0 - s * s) ** 2


def smoothstep(edge0: float, edge1: float, value: np.ndarray) -> np.ndarray:
    """Hermite step from 0 (at edge0) to 1 (at edge1); edges may be given in either order."""
    s = np.clip((np.asarray(value) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def propagate(distance: np.ndarray, anchor_deltas: np.ndarray, radius: float) -> np.ndarray:
    """Spread displacements given at anchor vertices smoothly over the surface.

    Each vertex takes a distance-weighted blend of the anchors' displacements, scaled by the falloff of its
    distance to the nearest anchor, so anchors get exactly their own displacement and the field fades to zero
    at `radius`.

    Args:
        distance: geodesic distance from each anchor to every vertex. [A, V]
        anchor_deltas: displacement of each anchor. [A, 3]
        radius: support radius, same unit as `distance`.
    Returns:
        displacement of every vertex. [V, 3]
    """
    weights = 1.0 / (distance + 1e-6) ** 2
    weights = weights / weights.sum(axis=0, keepdims=True)
    blended = weights.T @ anchor_deltas
    return blended * falloff(distance.min(axis=0), radius)[:, None]


def mirror_map(verts: np.ndarray, tolerance: float) -> np.ndarray:
    """For each vertex, the vertex at its x-mirrored position (nearest neighbour); -1 where none within tolerance.

    verts: [V, 3] → [V] vertex ids.
    """
    from scipy.spatial import cKDTree

    flipped = verts * np.array([-1.0, 1.0, 1.0])
    distance, index = cKDTree(verts).query(flipped)
    return np.where(distance <= tolerance, index, -1)


def harmonic(verts: np.ndarray, faces: np.ndarray, fixed: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Smooth interpolation of values given at `fixed` vertices over the rest (graph Laplace equation).

    Used for skinning weights: the solution has no interior extrema, so weights stay in [0, 1] and blend
    smoothly between the constrained regions.

    Args:
        verts: [V, 3]; faces: [T, 3]
        fixed: [K] vertex ids with known values; values: [K]
    Returns:
        [V] (vertices not connected to any fixed vertex get 0)
    """
    from scipy.sparse import diags
    from scipy.sparse.linalg import spsolve

    n = len(verts)
    pairs = edges(faces)
    length = np.linalg.norm(verts[pairs[:, 0]] - verts[pairs[:, 1]], axis=1)
    # Inverse-length edge weights keep dense regions (lips, eyelids) from dominating sparse ones.
    weight = 1.0 / np.maximum(length, 1e-9)
    adjacency = coo_matrix(
        (np.concatenate([weight, weight]), (np.concatenate([pairs[:, 0], pairs[:, 1]]), np.concatenate([pairs[:, 1], pairs[:, 0]]))),
        shape=(n, n),
    ).tocsr()
    laplacian = (diags(np.asarray(adjacency.sum(axis=1)).ravel()) - adjacency).tocsr()
    result = np.zeros(n)
    result[fixed] = values
    free = np.setdiff1d(np.arange(n), fixed)
    reachable = np.asarray(adjacency[free].sum(axis=1)).ravel() > 0
    free = free[reachable]
    rhs = -laplacian[free][:, fixed] @ np.asarray(values, dtype=np.float64)
    system = laplacian[free][:, free]
    result[free] = spsolve(system.tocsc(), rhs)
    return np.clip(result, 0.0, 1.0)
