"""The rasterizer as a specification: hand-checkable scenes on CPU, the tiled torch backend against
the dense reference, gradients against finite differences, and (on a GPU) torch against gsplat."""

from __future__ import annotations

import math

import pytest
import torch
from gsplat.cuda import _torch_impl as gsplat_torch  # gsplat's own maths in plain torch: runs on CPU too

from datasets.errors import ReplicaError
from render.projection import project_gaussians
from render.raster import available_backends, default_backend, rasterize
from render.sh import SH_C0, rgb_to_sh, sh_bases

FOCAL = 100.0


def camera(width: int, height: int, distance: float = 2.0, dtype=torch.float32):
    """One camera at (0, 0, -distance) looking down +z, principal point at the image centre."""
    viewmat = torch.eye(4, dtype=dtype)
    viewmat[2, 3] = distance
    K = torch.tensor([[FOCAL, 0, width / 2], [0, FOCAL, height / 2], [0, 0, 1]], dtype=dtype)
    return viewmat[None], K[None]


def gaussians(means, scales, opacities, colors, quats=None, dtype=torch.float32):
    means = torch.as_tensor(means, dtype=dtype).reshape(-1, 3)
    n = len(means)
    quats = torch.tensor([[1.0, 0, 0, 0]] * n, dtype=dtype) if quats is None else torch.as_tensor(quats, dtype=dtype)
    scales = torch.as_tensor(scales, dtype=dtype).expand(n, 3).clone()
    opacities = torch.as_tensor(opacities, dtype=dtype).expand(n).clone()
    return means, quats, scales, opacities, torch.as_tensor(colors, dtype=dtype)


def random_scene(n: int, seed: int, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=gen, dtype=dtype) * 0.4
    quats = torch.randn(n, 4, generator=gen, dtype=dtype)
    scales = torch.rand(n, 3, generator=gen, dtype=dtype) * 0.06 + 0.01
    opacities = torch.rand(n, generator=gen, dtype=dtype) * 0.9 + 0.05
    return means, quats, scales, opacities, gen


def test_single_isotropic_gaussian_matches_the_analytic_footprint():
    width, height, depth, scale, opacity = 40, 30, 2.0, 0.05, 0.8
    viewmat, K = camera(width, height, distance=depth)
    # Put the principal point on a pixel centre so the footprint is symmetric about that pixel.
    K[0, 0, 2], K[0, 1, 2] = 20.5, 15.5
    color = torch.tensor([[0.2, 0.6, 1.0]])
    image, alpha, info = rasterize(*gaussians([0, 0, 0], scale, opacity, color), viewmat, K, width, height)

    variance = (FOCAL * scale / depth) ** 2 + 0.3  # pixels², eps2d included
    ys, xs = torch.meshgrid(torch.arange(height) - 15.0, torch.arange(width) - 20.0, indexing="ij")
    expected = opacity * torch.exp(-(xs**2 + ys**2) / (2 * variance))
    expected = torch.where(expected >= 1 / 255, expected, torch.zeros(()))
    assert alpha[0, ..., 0].argmax() == 15 * width + 20
    assert alpha[0, 15, 20, 0] == pytest.approx(opacity, rel=1e-5)
    torch.testing.assert_close(alpha[0, ..., 0], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(image[0], expected[..., None] * color, atol=1e-5, rtol=1e-5)
    centred = alpha[0, 1:, 1:, 0]  # rows 1..29, cols 1..39: centre pixel (15, 20) is the middle
    torch.testing.assert_close(centred, centred.flip(0), atol=1e-6, rtol=0)
    torch.testing.assert_close(centred[:, 9:30], centred[:, 9:30].flip(1), atol=1e-6, rtol=0)
    radius = math.ceil(min(3.33, math.sqrt(2 * math.log(opacity * 255))) * math.sqrt(variance))
    assert info["radii"][0, 0].tolist() == [radius, radius]
    torch.testing.assert_close(info["means2d"][0, 0], torch.tensor([20.5, 15.5]))


def test_nearer_gaussian_wins_where_they_overlap_regardless_of_input_order():
    width, height = 32, 32
    viewmat, K = camera(width, height)
    red, blue = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    near_red = gaussians([[0, 0, -0.5], [0.05, 0, 0.5]], 0.2, [0.9, 0.9], [red, blue])
    blue_first = [t.flip(0) for t in near_red]
    image, _, _ = rasterize(*near_red, viewmat, K, width, height)
    flipped, _, _ = rasterize(*blue_first, viewmat, K, width, height)
    torch.testing.assert_close(image, flipped)
    centre = image[0, 16, 16]
    assert centre[0] > 0.85 and centre[2] < 0.15


def test_background_shows_through_as_one_minus_alpha():
    width, height = 48, 32
    viewmat, K = camera(width, height)
    scene = gaussians([[0, 0, 0], [0.2, 0.1, 0.3]], 0.05, [0.7, 0.5], [[1.0, 0.5, 0.0], [0.0, 1.0, 0.0]])
    background = torch.tensor([[0.1, 0.2, 0.3]])
    plain, alpha, _ = rasterize(*scene, viewmat, K, width, height)
    over, alpha_over, _ = rasterize(*scene, viewmat, K, width, height, backgrounds=background)
    torch.testing.assert_close(over, plain + (1 - alpha) * background)
    torch.testing.assert_close(alpha_over, alpha)
    torch.testing.assert_close(over[0, 0, 0], background[0])


def test_rotated_anisotropic_gaussian_points_along_its_long_axis():
    width, height, angle = 64, 64, math.radians(30)
    viewmat, K = camera(width, height)
    # Long axis x, rotated by +30° about the camera's z axis; with y down in the image that is a
    # line descending to the right. The quaternion is deliberately not unit length.
    quat = 3.0 * torch.tensor([[math.cos(angle / 2), 0, 0, math.sin(angle / 2)]])
    scene = gaussians([0, 0, 0], [[0.2, 0.03, 0.03]], 0.9, [[1.0, 1.0, 1.0]], quats=quat)
    _, alpha, _ = rasterize(*scene, viewmat, K, width, height)
    weights = alpha[0, ..., 0]
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5 - 32, torch.arange(width) + 0.5 - 32, indexing="ij")
    cxx, cyy, cxy = (weights * xs * xs).sum(), (weights * ys * ys).sum(), (weights * xs * ys).sum()
    principal = 0.5 * math.atan2(2 * cxy, cxx - cyy)
    assert principal == pytest.approx(angle, abs=math.radians(1))
    long_var, short_var = torch.linalg.eigvalsh(torch.stack([torch.stack([cxx, cxy]), torch.stack([cxy, cyy])])).flip(0)
    assert long_var > 10 * short_var


def test_gaussians_behind_the_camera_or_off_screen_draw_nothing():
    width, height = 32, 32
    viewmat, K = camera(width, height, distance=2.0)
    behind, inside_near_plane, off_screen = [0, 0, -3.0], [0, 0, -1.995], [5.0, 0, 0]
    scene = gaussians([behind, inside_near_plane, off_screen], 0.1, 0.9, torch.ones(3, 3))
    image, alpha, info = rasterize(*scene, viewmat, K, width, height)
    assert image.abs().max() == 0 and alpha.abs().max() == 0
    assert (info["radii"] == 0).all()


def test_sh_degree_0_renders_the_same_as_plain_colors():
    width, height = 40, 24
    viewmat, K = camera(width, height)
    means, quats, scales, opacities, _ = random_scene(30, seed=1)
    rgb = torch.rand(30, 3, generator=torch.Generator().manual_seed(2))
    plain, _, _ = rasterize(means, quats, scales, opacities, rgb, viewmat, K, width, height)
    sh = torch.cat([rgb_to_sh(rgb)[:, None], torch.randn(30, 15, 3)], dim=1)  # higher bands ignored
    via_sh, _, _ = rasterize(means, quats, scales, opacities, sh, viewmat, K, width, height, sh_degree=0)
    torch.testing.assert_close(via_sh, plain)
    assert rgb_to_sh(torch.tensor([1.0])) == pytest.approx(0.5 / SH_C0)


def test_sh_colour_is_evaluated_toward_each_camera_position():
    width, height = 16, 16
    front, K = camera(width, height, distance=3.0)  # centre (0, 0, -3), looking +z
    back = torch.tensor([[[-1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 3], [0, 0, 0, 1]]])  # centre (0, 0, 3)
    coeffs = torch.zeros(1, 4, 3)
    coeffs[0, 2, 0] = 0.5  # the band-1 z basis, 0.4886 * dir_z, red channel
    scene = gaussians([0, 0, 0], 0.2, 0.99, coeffs)
    image, alpha, _ = rasterize(*scene, torch.cat([front, back]), K.expand(2, 3, 3), width, height, sh_degree=1)
    # dir = mean - camera centre: +z seen from the front camera, -z from the back one.
    red = 0.5 + 0.48860251190292 * 0.5 * torch.tensor([1.0, -1.0])
    torch.testing.assert_close(image[:, 8, 8, 0], red * alpha[:, 8, 8, 0])
    torch.testing.assert_close(image[:, 8, 8, 1], 0.5 * alpha[:, 8, 8, 0])


def test_sh_bases_match_gsplats_constants():
    dirs = torch.nn.functional.normalize(torch.randn(50, 3, generator=torch.Generator().manual_seed(3)), dim=-1)
    for degree in range(4):
        expected = gsplat_torch._eval_sh_bases_fast((degree + 1) ** 2, dirs)
        torch.testing.assert_close(sh_bases(degree, dirs), expected)


def test_projection_matches_gsplats_reference_maths():
    means, quats, scales, opacities, _ = random_scene(40, seed=4)
    viewmat, K = camera(64, 48)
    ours = project_gaussians(means, quats, scales, opacities, viewmat, K, 64, 48)
    covars, _ = gsplat_torch._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    _, means2d, depths, conics, _ = gsplat_torch._fully_fused_projection(means, covars, viewmat, K, 64, 48)
    drawn = (ours.radii > 0).all(-1)
    torch.testing.assert_close(ours.means2d[drawn], means2d[drawn])
    torch.testing.assert_close(ours.depths, depths)
    torch.testing.assert_close(ours.conics[drawn], conics[drawn], rtol=1e-4, atol=1e-6)


def test_depth_modes_render_the_gaussians_depth():
    width, height = 24, 24
    viewmat, K = camera(width, height, distance=2.5)
    scene = gaussians([0, 0, 0.5], 0.1, 0.9, [[1.0, 0.0, 0.0]])
    image, alpha, _ = rasterize(*scene, viewmat, K, width, height, render_mode="RGB+ED")
    assert image.shape == (1, height, width, 4)
    covered = alpha[0, ..., 0] > 0
    torch.testing.assert_close(image[0, ..., 3][covered], torch.full((int(covered.sum()),), 3.0))
    depth, _, _ = rasterize(*scene, viewmat, K, width, height, render_mode="D")
    torch.testing.assert_close(depth, 3.0 * alpha)


@pytest.mark.parametrize("sh_degree, tile_size", [(None, None), (3, 16)])
def test_tiled_backend_matches_dense_reference_in_values_and_gradients(sh_degree, tile_size):
    width, height = 70, 45  # not a multiple of the tile size: exercises the ragged edge
    means, quats, scales, opacities, gen = random_scene(150, seed=5)
    colors = torch.rand(150, 3, generator=gen) if sh_degree is None else torch.randn(150, 16, 3, generator=gen) * 0.3
    view_a, K = camera(width, height)
    view_b = view_a.clone()
    view_b[0, 0, 3] = 0.3  # a second camera, shifted sideways
    viewmats, Ks = torch.cat([view_a, view_b]), K.expand(2, 3, 3)
    backgrounds = torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]])
    weights = torch.rand(2, height, width, 4, generator=gen)

    def render(backend, chunk_elements=2**20):
        inputs = [t.clone().requires_grad_(True) for t in (means, quats, scales, opacities, colors, backgrounds)]
        image, alpha, info = rasterize(
            *inputs[:5], viewmats, Ks, width, height, sh_degree=sh_degree, backgrounds=inputs[5],
            backend=backend, tile_size=tile_size, chunk_elements=chunk_elements,
        )  # fmt: skip
        (torch.cat([image, alpha], dim=-1) * weights).sum().backward()
        return image, alpha, [t.grad for t in inputs]

    ref_image, ref_alpha, ref_grads = render("reference")
    # A tiny chunk forces many padded tile batches of different lengths.
    image, alpha, grads = render("torch", chunk_elements=4096)
    assert ref_alpha.max() > 0.9  # the scene covers part of the image, opaquely
    torch.testing.assert_close(image, ref_image, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alpha, ref_alpha, atol=1e-5, rtol=1e-4)
    for grad, ref in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref, atol=1e-4 * ref.abs().max(), rtol=1e-3)


def test_gradients_match_finite_differences():
    width, height = 20, 14
    viewmat, K = camera(width, height, dtype=torch.float64)
    means, quats, scales, opacities, gen = random_scene(4, seed=6, dtype=torch.float64)
    means = means * 0.5  # keep all four on screen and overlapping
    colors = torch.rand(4, 3, generator=gen, dtype=torch.float64)
    background = torch.tensor([[0.3, 0.3, 0.3]], dtype=torch.float64)

    def render(means, quats, scales, opacities, colors):
        image, alpha, _ = rasterize(
            means, quats, scales, opacities, colors, viewmat, K, width, height, backgrounds=background, tile_size=8
        )
        return image, alpha

    inputs = tuple(t.requires_grad_(True) for t in (means, quats, scales, opacities, colors))
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


def test_torch_backends_are_always_there_and_gsplat_only_with_cuda():
    expected = (["gsplat"] if torch.cuda.is_available() else []) + ["torch", "reference"]
    assert available_backends() == expected
    assert default_backend() == expected[0]
    scene = gaussians([0, 0, 0], 0.1, 0.9, [[1.0, 1.0, 1.0]])
    with pytest.raises(ReplicaError, match="gsplat needs CUDA"):
        rasterize(*scene, *camera(8, 8), 8, 8, backend="gsplat")


def test_malformed_inputs_raise_one_line_replica_errors():
    means, quats, scales, opacities, colors = gaussians([0, 0, 0], 0.1, 0.9, [[1.0, 1.0, 1.0]])
    viewmat, K = camera(8, 8)
    with pytest.raises(ReplicaError, match=r"scales: expected shape \[1, 3\]"):
        rasterize(means, quats, scales[:, :2], opacities, colors, viewmat, K, 8, 8)
    with pytest.raises(ReplicaError, match="colors: expected SH"):
        rasterize(means, quats, scales, opacities, colors, viewmat, K, 8, 8, sh_degree=1)


@pytest.mark.gpu
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_torch_backend_matches_gsplat_on_random_scenes(seed):
    # Tolerances: gsplat's kernels use fast-math exp and float32 transmittance products in a different
    # order, so single pixels near the 1/255 and 1e-4 thresholds can differ by a Gaussian's worth;
    # image max abs diff < 1e-2, mean < 1e-3; gradients within 5% relative (L2 norm over each tensor).
    assert "gsplat" in available_backends(), "on a CUDA machine gsplat's kernels must load"
    device = torch.device("cuda")
    width, height = 128, 96
    means, quats, scales, opacities, gen = random_scene(2000, seed=seed)
    colors = torch.randn(2000, 16, 3, generator=gen) * 0.3
    viewmat, K = camera(width, height, distance=3.0)
    backgrounds = torch.tensor([[0.2, 0.4, 0.6]])
    weights = torch.rand(1, height, width, 3, generator=gen).to(device)

    def render(backend):
        inputs = [t.to(device).requires_grad_(True) for t in (means, quats, scales, opacities, colors)]
        image, alpha, _ = rasterize(
            *inputs, viewmat.to(device), K.to(device), width, height, sh_degree=3,
            backgrounds=backgrounds.to(device), backend=backend,
        )  # fmt: skip
        ((image * weights).sum() + alpha.sum()).backward()
        return image.detach(), [t.grad for t in inputs]

    image, grads = render("gsplat")
    ours, our_grads = render("torch")
    assert (ours - image).abs().max() < 1e-2
    assert (ours - image).abs().mean() < 1e-3
    for grad, ours_grad in zip(grads, our_grads):
        assert (ours_grad - grad).norm() <= 0.05 * grad.norm() + 1e-6
