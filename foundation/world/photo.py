"""Identities with a real face: a photo warped onto the face region of the texture atlas.

MediaPipe's FaceLandmarker finds the photo's 478 landmarks; the head model's landmark vertices are the same
anatomical points (the first 468 are MediaPipe's canonical face), so each face triangle between landmark
vertices has a matching triangle in the photo, and every face texel takes the photo pixel at the same
barycentric position (a piecewise-affine warp). Scalp, neck, eyes, mouth and clothing stay procedural, with
the skin tone taken from the photo's cheeks so the face blends into the rest of the head.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from datasets.errors import ReplicaError
from datasets.faces import track_faces
from foundation.head import HeadModel
from foundation.world.appearance import Appearance, sample_appearance
from foundation.world.texels import TexelMap, fill_gutters

FEATHER = 0.05
"""Width of the blend from photo to procedural skin at the face's edge, as a fraction of the atlas side."""
_CHEEK_SAMPLES = (50, 280, 205, 425, 101, 330)
"""MediaPipe landmarks on the cheeks, where the photo's skin colour is measured."""


def photo_landmarks(photo: np.ndarray) -> np.ndarray:
    """The photo's 478 MediaPipe landmarks in pixels (column, row). photo: uint8 [H, W, 3] RGB → [478, 2]"""
    track = track_faces(np.asarray(photo)[None])
    if not track.found.all():
        raise ReplicaError(f"photo {list(photo.shape)}", "no face found by MediaPipe FaceLandmarker")
    return track.lmk[0, :, :2] * np.array([photo.shape[1], photo.shape[0]], np.float32)


def photo_appearance(head: HeadModel, photo: np.ndarray, rng: np.random.Generator, texels: TexelMap) -> Appearance:
    """A procedural identity (hair, eyes, mouth, clothes from `rng`) whose face is the photo's.

    photo: uint8 [H, W, 3] RGB with one clearly visible, roughly frontal face.
    """
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[-1] != 3 or photo.dtype != np.uint8:
        raise ReplicaError(f"photo {photo.dtype} {list(photo.shape)}", "expected uint8 [H, W, 3] RGB")
    lmk = photo_landmarks(photo)
    image = photo.astype(np.float32) / 255.0
    patches = [image[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4].reshape(-1, 3) for x, y in lmk[list(_CHEEK_SAMPLES)]]
    skin = np.median(np.concatenate(patches), axis=0)
    base = sample_appearance(head, rng, texels=texels, skin_rgb=skin)

    # Vertex → landmark (face landmarks only: the iris points lie on the eyeballs, which stay procedural).
    landmark_of = np.full(len(head.template), -1)
    landmark_of[head.landmark_index.cpu().numpy()[:468]] = np.arange(468)
    corner_landmarks = np.where(texels.corners >= 0, landmark_of[np.maximum(texels.corners, 0)], -1)
    valid = texels.mask("face") & (corner_landmarks >= 0).all(-1)
    xy = np.einsum("nk,nkc->nc", texels.bary[valid], lmk[corner_landmarks[valid]])
    colour = np.stack([ndimage.map_coordinates(image[..., c], [xy[:, 1], xy[:, 0]], order=1, mode="nearest")
                       for c in range(3)], -1)
    warped = np.zeros((texels.size, texels.size, 3), np.float32)
    warped[valid] = colour
    alpha = np.clip(ndimage.distance_transform_edt(valid) / (FEATHER * texels.size), 0.0, 1.0)
    alpha = alpha * alpha * (3 - 2 * alpha)
    texture = base.texture.copy()
    texture[..., :3] = texture[..., :3] * (1 - alpha[..., None]) + warped * alpha[..., None]
    texture[..., 3] = np.where(valid, 0.06, texture[..., 3])
    traits = {**base.traits, "photo": True}
    return Appearance(fill_gutters(texture, texels.covered), base.skin_rgb, traits)
