"""Skeleton and skinning weights of the default head: root (torso), neck, jaw and two eye joints.

Jaw weights are harmonic over the connected head surface (face, skull, eye sockets, mouth cavity), pinned to 1
on the lower lip, chin and lower jaw line and to 0 on the upper lip, mid-face and skull, so they fall off
smoothly across the cheeks and under the jaw. Neck weights are 1 on the head and fade down the neck, so the
shoulders near the neck base partly follow a head turn.
"""

from __future__ import annotations

import numpy as np

from foundation.head import surface
from foundation.head.model import PARTS
from foundation.head.landmarks import CHIN, LOWER_INNER_LIP, UPPER_INNER_LIP
from foundation.head.mesh import HeadMesh

JOINT_NAMES = ("root", "neck", "jaw", "eye_l", "eye_r")
JOINT_PARENTS = np.array([-1, 0, 1, 1, 1])
NECK_JOINT = np.array([0.0, -0.055, -0.04])
"""Head-on-neck pivot (metres): upper cervical spine, behind the jaw."""
JAW_JOINT = np.array([0.0, 0.005, -0.03])
"""Temporomandibular pivot (metres): in front of the ears, at about ear-canal height."""
ROOT_JOINT = np.array([0.0, -0.2, -0.04])


def joint_positions(mesh: HeadMesh) -> np.ndarray:
    """Rest positions of `JOINT_NAMES` in metres. [5, 3]"""
    return np.stack([ROOT_JOINT, NECK_JOINT, JAW_JOINT, mesh.eye_centres[0], mesh.eye_centres[1]]).astype(np.float32)


def jaw_weights(mesh: HeadMesh) -> np.ndarray:
    """How much each vertex follows the jaw, in [0, 1]. [V]"""
    verts = mesh.verts.astype(np.float64) * 100.0  # cm
    part = np.asarray(PARTS)[mesh.part]
    head_surface = np.isin(part, ["face", "scalp", "neck", "mouth_cavity"]) & ~is_bust(mesh)
    faces = mesh.faces[head_surface[mesh.faces].all(axis=1)]
    x, y, z = verts.T
    is_face = np.arange(len(verts)) < 468
    one = np.zeros(len(verts), dtype=bool)
    one[LOWER_INNER_LIP[1:-1]] = True
    one[CHIN] = True
    one |= is_face & (y < -6.8)
    zero = np.zeros(len(verts), dtype=bool)
    zero[UPPER_INNER_LIP[1:-1]] = True
    zero |= is_face & (y > -3.0) & ~one
    zero |= (part == "scalp") | ((part == "neck") & ((y > -2.0) | (z < -4.5)))
    fixed = np.flatnonzero(one | zero)
    weights = surface.harmonic(verts, faces, fixed, one[fixed].astype(np.float64))
    weights[~head_surface] = 0.0
    weights[np.isin(part, ["teeth_lower", "tongue"])] = 1.0
    # The canonical triangulation is not exactly mirror-symmetric; averaging with the mirror image makes the
    # weights (and so the jaw shapes) exactly symmetric. A smoothstep then sharpens the lip line a little.
    mirror = surface.mirror_map(verts, tolerance=1e-4)
    weights = 0.5 * (weights + weights[mirror])
    return surface.smoothstep(0.0, 1.0, weights)


def is_bust(mesh: HeadMesh) -> np.ndarray:
    """Vertices of the neck-and-shoulders bust (the skull loft below the ears is labelled neck too). [V] bool"""
    # Skull-loft vertices inherit expressions from the face oval (anchor >= 0); bust vertices never do.
    part = np.asarray(PARTS)[mesh.part]
    return np.isin(part, ["neck", "shoulders"]) & (mesh.anchor < 0)


def neck_weights(mesh: HeadMesh) -> np.ndarray:
    """How much each vertex follows the neck joint (1 on the whole head), in [0, 1]. [V]"""
    bust = is_bust(mesh)
    weights = np.ones(len(mesh.verts))
    weights[bust] = surface.smoothstep(-0.16, -0.04, mesh.verts[bust, 1])
    return weights


def skin_weights(mesh: HeadMesh) -> np.ndarray:
    """Linear-blend-skinning weights over `JOINT_NAMES`, rows summing to 1. [V, 5]"""
    part = np.asarray(PARTS)[mesh.part]
    neck = neck_weights(mesh)
    jaw = jaw_weights(mesh)
    eye_l = (part == "eye_l").astype(np.float64)
    eye_r = (part == "eye_r").astype(np.float64)
    head = 1.0 - jaw - eye_l - eye_r
    weights = np.stack([1.0 - neck, neck * head, neck * jaw, neck * eye_l, neck * eye_r], axis=1)
    return weights.astype(np.float32)
