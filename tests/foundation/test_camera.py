"""Camera: the gsplat/OpenCV pinhole every stage projects with."""

import numpy as np
import pytest
import torch

from datasets.errors import ReplicaError
from foundation.camera import Camera


def test_target_projects_to_image_centre_at_its_distance():
    cam = Camera.look_at(eye=(0.0, 0.0, 1.0), target=(0.0, 0.0, 0.0), fov_deg=30.0, width=640, height=480)
    pixels, depth = cam.project(torch.zeros(3))
    assert torch.allclose(pixels, torch.tensor([320.0, 240.0]))
    assert depth.item() == pytest.approx(1.0)


def test_frontal_camera_keeps_world_right_right_and_up_up():
    cam = Camera.look_at(eye=(0.0, 0.0, 1.0), fov_deg=30.0, width=512, height=512)
    focal = cam.K[0, 0].item()
    points = torch.tensor([[0.1, 0.0, 0.0], [0.0, 0.1, 0.0]])
    pixels, _ = cam.project(points)
    # x = 0.1 m at 1 m depth lands focal * 0.1 px right of the centre; world up is image up (smaller v).
    assert pixels[0, 0].item() == pytest.approx(256 + 0.1 * focal, rel=1e-5)
    assert pixels[1, 1].item() == pytest.approx(256 - 0.1 * focal, rel=1e-5)


def test_fov_maps_half_angle_to_image_edge():
    cam = Camera.look_at(eye=(0.0, 0.0, 2.0), fov_deg=60.0, width=100, height=100)
    edge_y = 2.0 * np.tan(np.radians(30.0))
    pixels, _ = cam.project(torch.tensor([0.0, edge_y, 0.0]))
    assert pixels[1].item() == pytest.approx(0.0, abs=1e-3)


def test_side_camera_sees_positive_depth_and_its_centre_round_trips():
    cam = Camera.look_at(eye=(1.0, 0.2, 0.5), target=(0.0, 0.0, 0.0))
    assert torch.allclose(cam.center, torch.tensor([1.0, 0.2, 0.5]), atol=1e-6)
    _, depth = cam.project(torch.zeros(2, 5, 3))
    assert depth.shape == (2, 5)
    assert torch.allclose(depth, torch.full((2, 5), float(np.sqrt(1.0 + 0.04 + 0.25))))


def test_projection_is_differentiable_in_points():
    cam = Camera.look_at(eye=(0.0, 0.0, 1.0))
    points = (torch.randn(4, 3) * 0.1).requires_grad_()
    pixels, _ = cam.project(points)
    pixels.sum().backward()
    assert points.grad is not None and torch.isfinite(points.grad).all()


def test_dict_round_trip_through_npz(tmp_path):
    cam = Camera.look_at(eye=(0.3, 0.1, 0.9), fov_deg=25.0, width=320, height=240)
    np.savez(tmp_path / "cams.npz", **cam.as_dict(prefix="front_"))
    loaded = Camera.from_dict(np.load(tmp_path / "cams.npz"), prefix="front_")
    assert torch.equal(loaded.viewmat, cam.viewmat) and torch.equal(loaded.K, cam.K)
    assert (loaded.width, loaded.height) == (320, 240)


def test_bad_shapes_and_degenerate_look_at_are_user_errors():
    with pytest.raises(ReplicaError, match="viewmat"):
        Camera(viewmat=torch.eye(3), K=torch.eye(3), width=10, height=10)
    with pytest.raises(ReplicaError, match="parallel"):
        Camera.look_at(eye=(0.0, 1.0, 0.0), target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0))
    with pytest.raises(ReplicaError, match="missing"):
        Camera.from_dict({"viewmat": np.eye(4)})
