"""The synthetic world's renderer: fast rasterizer vs pytorch3d, the mouth opens into a mouth, landmarks land on the face."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cluster.synth import PosedHead
from datasets.synth.appearance import sample_appearance
from datasets.synth.rasterize import rasterize
from datasets.synth.render import Topology, project_landmarks, render_frames
from datasets.synth.scene import look_at, sample_background, sample_lighting
from foundation.head import EXPRESSION_NAMES, default_head_model

SIZE = 96


@pytest.fixture(scope="module")
def head() -> PosedHead:
    return PosedHead(default_head_model())


@pytest.fixture(scope="module")
def look(head):
    return sample_appearance(head, np.random.default_rng(3), atlas_size=256)


def _params(head: PosedHead, jaw: float) -> dict[str, np.ndarray]:
    expr = np.zeros((1, len(EXPRESSION_NAMES)), np.float32)
    expr[0, EXPRESSION_NAMES.index("jawOpen")] = jaw / 0.35
    zeros = np.zeros((1, 3), np.float32)
    jaw_pose = zeros.copy()
    jaw_pose[0, 0] = jaw
    return {"shape": np.zeros(head.n_shape, np.float32), "expr": expr, "jaw": jaw_pose, "neck": zeros,
            "rot": zeros, "trans": zeros}


def _camera():
    return look_at(np.array([0.0, -0.02, 0.9]), np.array([0.0, -0.04, 0.0]), 20.0, SIZE, SIZE)


def _render(head, look, jaw: float):
    with torch.no_grad():
        verts = head.pose(_params(head, jaw))
    rng = np.random.default_rng(0)
    frames = render_frames(verts, Topology.of(head), torch.from_numpy(look.texture), _camera(), sample_lighting(rng),
                           sample_background(rng, SIZE, SIZE))
    return frames, project_landmarks(verts, head.landmark_index, _camera())


def test_torch_rasterizer_matches_pytorch3d(head):
    with torch.no_grad():
        verts = head.pose(_params(head, 0.3))
    camera = _camera()
    viewmat = torch.as_tensor(camera.viewmat, dtype=torch.float32)
    verts_cam = verts @ viewmat[:3, :3].T + viewmat[:3, 3]
    K = torch.as_tensor(camera.K, dtype=torch.float32)
    reference = rasterize(verts_cam, head.faces, K * torch.tensor([[64 / SIZE], [64 / SIZE], [1.0]]), 64, 64,
                          backend="pytorch3d")
    ours = rasterize(verts_cam, head.faces, K * torch.tensor([[64 / SIZE], [64 / SIZE], [1.0]]), 64, 64, backend="torch")
    same = ours.pix_to_face == reference.pix_to_face
    assert same.float().mean() > 0.999
    hit = same & (ours.pix_to_face >= 0)
    assert torch.allclose(ours.zbuf[hit], reference.zbuf[hit], atol=1e-5)
    assert torch.allclose(ours.bary_coords[hit[..., 0]], reference.bary_coords[hit[..., 0]], atol=1e-3)


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
