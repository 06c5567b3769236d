"""The Gaussian avatar: binding to the mesh, training on a tiny synthetic person, save/load, quality metrics."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from datasets.errors import ReplicaError
from datasets.schema import EXPRESSION_NAMES
from foundation.head import FaceParams, axis_angle_to_matrix, default_head_model
from render.avatar import Avatar, AvatarConfig, render, render_frames
from render.avatar_train import select_frames, train_avatar
from render.binding import bind_to_triangles, triangle_frames
from render.quality import PSNR_CAP_DB, flicker, psnr, ssim
from tests.render.person import make_person

N_FRAMES, N_TRAIN = 40, 32
TINY = AvatarConfig(image_size=64, sh_degree=1, iterations=100, densify_from=40, densify_until=90, densify_every=25,
                    max_gaussians=5000, backend="torch")


def person():
    return make_person(N_FRAMES, 64)


@functools.cache
def trained(iterations: int) -> Avatar:
    p = person()
    cfg = TINY.model_copy(update={"iterations": iterations})
    return train_avatar(p.frames[:N_TRAIN], select_frames(p.params, torch.arange(N_TRAIN)), p.camera, cfg,
                        progress=False)


def heldout_psnr(avatar: Avatar) -> float:
    p = person()
    rows = torch.arange(N_TRAIN, N_FRAMES)
    renders = render_frames(avatar, select_frames(p.params, rows), p.camera)
    return psnr(renders, torch.as_tensor(p.frames[N_TRAIN:]).float() / 255.0)


def test_gaussians_on_the_chin_follow_the_opening_jaw_and_forehead_ones_stay():
    head = default_head_model()
    closed = FaceParams.neutral(2)
    closed.jaw[1, 0] = 0.3
    closed.expr[1, EXPRESSION_NAMES.index("jawOpen")] = 1.0
    verts = head(closed)
    faces = head.faces
    centroids = triangle_frames(verts[0], faces)[0]
    face = head.part_mask("face")[faces].all(-1)
    chin = (face & (centroids[:, 1] < -0.08)).nonzero()[:, 0]
    forehead = (face & (centroids[:, 1] > 0.06)).nonzero()[:, 0]
    parents = torch.cat([chin, forehead])
    gen = torch.Generator().manual_seed(0)
    offsets, quats = torch.randn(len(parents), 3, generator=gen) * 0.3, torch.randn(len(parents), 4, generator=gen)
    scales = torch.full((len(parents), 3), 0.4)
    means = [bind_to_triangles(v, faces, parents, offsets, quats, scales)[0] for v in verts]
    moved = (means[1] - means[0]).norm(dim=-1)
    chin_verts = faces[chin].flatten()
    chin_motion = (verts[1, chin_verts] - verts[0, chin_verts]).norm(dim=-1).mean()
    assert moved[: len(chin)].mean() > 0.8 * chin_motion > 0.005  # chin Gaussians move as far as the chin
    assert moved[len(chin):].max() < 1e-4  # the forehead does not move at all


def test_bound_gaussian_keeps_its_place_on_its_triangle_under_any_rigid_motion():
    head = default_head_model()
    params = FaceParams.neutral(2)
    params.rot[1] = torch.tensor([0.3, -0.5, 0.2])
    params.trans[1] = torch.tensor([0.05, -0.02, 0.1])
    verts = head(params)
    parents = torch.tensor([10, 500, 2000])
    offsets = torch.tensor([[0.2, -0.1, 0.3]] * 3)
    quats, scales = torch.tensor([[1.0, 0.2, 0.0, 0.0]] * 3), torch.ones(3, 3) * 0.5
    before, after = (bind_to_triangles(v, head.faces, parents, offsets, quats, scales) for v in verts)
    rotation = axis_angle_to_matrix(params.rot[1])
    torch.testing.assert_close(after[0], before[0] @ rotation.T + params.trans[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(after[2], before[2], atol=1e-6, rtol=0)  # scales are pose-independent here


def test_training_lowers_the_loss_and_beats_the_untrained_avatar_on_heldout_frames():
    avatar = trained(TINY.iterations)
    losses = avatar.history["loss"]
    assert np.mean(losses[-15:]) < 0.6 * np.mean(losses[:15])
    untrained = heldout_psnr(trained(1))
    assert heldout_psnr(avatar) > untrained + 2.0
    assert avatar.history["densify"] and avatar.n_gaussians <= TINY.max_gaussians


def test_save_and_load_round_trip_renders_identically(tmp_path):
    avatar = trained(TINY.iterations)
    url = str(tmp_path / "avatar.pt")
    avatar.save(url)
    loaded = Avatar.load(url)
    p = person()
    frame = select_frames(p.params, torch.tensor([N_FRAMES - 1]))
    with torch.no_grad():
        torch.testing.assert_close(render(loaded, frame, p.camera), render(avatar, frame, p.camera), atol=0, rtol=0)
    assert loaded.history["loss"] == avatar.history["loss"]
    assert loaded.camera is not None and loaded.camera.width == 64


def test_load_rejects_a_file_that_is_not_an_avatar(tmp_path):
    bad = tmp_path / "not-avatar.pt"
    bad.write_bytes(b"hello")
    with pytest.raises(ReplicaError, match="not-avatar.pt: not an avatar file"):
        Avatar.load(str(bad))


def test_training_rejects_params_of_the_wrong_length():
    p = person()
    with pytest.raises(ReplicaError, match="params: 40 frames of parameters for 10 video frames"):
        train_avatar(p.frames[:10], p.params, p.camera, TINY, progress=False)


def test_psnr_of_identical_images_is_capped_and_of_known_noise_matches_the_formula():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 32, 32, 3, generator=gen, dtype=torch.float64)
    assert psnr(image, image) == PSNR_CAP_DB
    noisy = image + 0.05 * torch.where(torch.rand(image.shape, generator=gen) < 0.5, -1.0, 1.0).double()
    assert psnr(noisy, image) == pytest.approx(10 * np.log10(1 / 0.05**2), abs=1e-6)


def test_ssim_is_one_for_identical_images_and_matches_scikit_image():
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(24, 28, 3, generator=gen)
    other = (image + 0.1 * torch.randn(image.shape, generator=gen)).clamp(0, 1)
    assert float(ssim(image, image)) == pytest.approx(1.0, abs=1e-6)
    expected = structural_similarity(image.numpy(), other.numpy(), channel_axis=-1, data_range=1.0,
                                     gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    # skimage averages over its cropped valid region exactly as the 'valid' convolution does
    assert float(ssim(other, image)) == pytest.approx(expected, abs=1e-4)


def test_flicker_is_zero_when_changes_match_the_truth_and_grows_with_jitter():
    truth = torch.linspace(0, 1, 5)[:, None, None, None].expand(5, 8, 8, 3)
    assert flicker(truth + 0.1, truth) == pytest.approx(0.0, abs=1e-7)  # a constant offset does not flicker
    jitter = torch.tensor([0.0, 0.02, 0.0, 0.02, 0.0])[:, None, None, None]
    assert flicker(truth + jitter, truth) == pytest.approx(0.02, abs=1e-7)


@pytest.mark.gpu
def test_gsplat_training_runs_on_cuda_and_renders_like_the_torch_backend():
    p = person()
    cfg = TINY.model_copy(update={"iterations": 30, "densify_from": 10, "densify_every": 10, "densify_until": 25,
                                  "backend": "gsplat"})
    avatar = train_avatar(p.frames[:N_TRAIN], select_frames(p.params, torch.arange(N_TRAIN)), p.camera, cfg,
                          device="cuda", progress=False)
    assert np.mean(avatar.history["loss"][-5:]) < np.mean(avatar.history["loss"][:5])
    frame = select_frames(p.params, torch.tensor([N_FRAMES - 1]))
    with torch.no_grad():
        fast = render(avatar, frame, p.camera, backend="gsplat")
        slow = render(avatar, frame, p.camera, backend="torch")
    assert (fast - slow).abs().mean() < 2e-3
