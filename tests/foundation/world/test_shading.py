"""The synthetic world's shading: the mouth opens into a mouth, the forehead stays put, landmarks land on the face."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datasets.schema import EXPRESSION_NAMES
from foundation.camera import Camera
from foundation.head import FaceParams, HeadModel, default_head_model, project_landmarks
from foundation.world.appearance import sample_appearance
from foundation.world.scene import sample_background, sample_lighting
from foundation.world.shading import Topology, render_textured

SIZE = 96


@pytest.fixture(scope="module")
def head() -> HeadModel:
    return default_head_model()


@pytest.fixture(scope="module")
def look(head):
    return sample_appearance(head, np.random.default_rng(3), atlas_size=256)


def _params(head: HeadModel, jaw: float) -> FaceParams:
    expr = np.zeros((1, len(EXPRESSION_NAMES)), np.float32)
    expr[0, EXPRESSION_NAMES.index("jawOpen")] = jaw / 0.35
    zeros = np.zeros((1, 3), np.float32)
    jaw_pose = zeros.copy()
    jaw_pose[0, 0] = jaw
    return FaceParams.from_dict({"shape": np.zeros(head.n_shape, np.float32), "expr": expr, "jaw": jaw_pose,
                                 "neck": zeros, "rot": zeros, "trans": zeros})


def _camera():
    return Camera.look_at((0.0, -0.02, 0.9), (0.0, -0.04, 0.0), fov_deg=20.0, width=SIZE, height=SIZE)


def _render(head, look, jaw: float):
    with torch.no_grad():
        verts = head(_params(head, jaw))
    rng = np.random.default_rng(0)
    frames = render_textured(verts, Topology.of(head), torch.from_numpy(look.texture), _camera(), sample_lighting(rng),
                           sample_background(rng, SIZE, SIZE))
    return frames, project_landmarks(verts, head.landmark_index, _camera())


def _window(image: np.ndarray, point: np.ndarray, radius: int = 3) -> np.ndarray:
    col, row = int(point[0] * SIZE), int(point[1] * SIZE)
    return image[row - radius:row + radius + 1, col - radius:col + radius + 1].astype(np.float32)


def test_opening_the_jaw_changes_the_mouth_but_not_the_forehead(head, look):
    closed, lmk = _render(head, look, 0.0)
    opened, _ = _render(head, look, 0.3)
    mouth = lmk[0, [13, 14]].mean(0)
    forehead = lmk[0, 151]
    assert np.abs(_window(opened.rgb[0], mouth) - _window(closed.rgb[0], mouth)).mean() > 20
    assert np.abs(_window(opened.rgb[0], forehead) - _window(closed.rgb[0], forehead)).mean() < 2


def test_open_mouth_shows_a_dark_interior(head, look):
    opened, lmk = _render(head, look, 0.3)
    mouth = _window(opened.rgb[0], lmk[0, [13, 14]].mean(0), radius=1).mean()
    cheek = _window(opened.rgb[0], lmk[0, 205], radius=1).mean()
    assert mouth < 0.7 * cheek


def test_landmarks_land_on_the_rendered_head(head, look):
    frames, lmk = _render(head, look, 0.1)
    assert lmk.shape == (1, 478, 3)
    assert (lmk[..., :2] > 0.05).all() and (lmk[..., :2] < 0.95).all()
    rows = np.clip((lmk[0, :468, 1] * SIZE).astype(int), 0, SIZE - 1)
    cols = np.clip((lmk[0, :468, 0] * SIZE).astype(int), 0, SIZE - 1)
    assert (frames.alpha[0, rows, cols] > 0.5).mean() > 0.95  # a few lie on the silhouette
    # MediaPipe's z: the nose tip is nearer the camera (more negative) than the face's edge.
    assert lmk[0, 1, 2] < lmk[0, 234, 2]
