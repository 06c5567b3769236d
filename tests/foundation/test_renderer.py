"""The head model's one mesh renderer: the CPU rasterizer agrees with pytorch3d, the soft path with the hard one."""

from __future__ import annotations

import pytest
import torch

from datasets.errors import ReplicaError
from datasets.schema import EXPRESSION_NAMES
from foundation.camera import Camera
from foundation.head import FaceParams, UVTexture, default_head_model, rasterize, render_soft, silhouettes, vertex_normals

SIZE = 64


@pytest.fixture(scope="module")
def head():
    return default_head_model()


@pytest.fixture(scope="module")
def verts(head):
    params = FaceParams.neutral(2)
    params.jaw[1, 0] = 0.3  # the second frame opens the mouth: the inner mouth shows
    params.expr[1, EXPRESSION_NAMES.index("jawOpen")] = 0.8
    params.rot[1, 1] = 0.3
    with torch.no_grad():
        return head(params)


def camera(size: int = SIZE) -> Camera:
    return Camera.look_at((0.0, -0.02, 0.9), (0.0, -0.04, 0.0), fov_deg=20.0, width=size, height=size)


@pytest.mark.parametrize("cull", [True, False])
def test_torch_rasterizer_matches_pytorch3d(head, verts, cull):
    reference = rasterize(verts, head.faces, camera(), cull_backfaces=cull, backend="pytorch3d")
    ours = rasterize(verts, head.faces, camera(), cull_backfaces=cull, backend="torch")
    same = ours.face_ids == reference.face_ids
    assert same.float().mean() > 0.999
    hit = same & ours.covered
    assert hit.sum() > 0.2 * hit.numel()  # the head fills a good part of the frame
    assert torch.allclose(ours.depth[hit], reference.depth[hit], atol=1e-5)
    assert torch.allclose(ours.bary[hit], reference.bary[hit], atol=1e-3)


def test_soft_render_converges_to_the_hard_image_and_passes_gradients(head, verts):
    colors = (head.template - head.template.min(0).values) / (head.template.max(0).values - head.template.min(0).values)
    hard = rasterize(verts, head.faces, camera(), cull_backfaces=False)
    corners = colors[head.faces[hard.face_ids.clamp_min(0)]]  # [F, H, W, 3, 3]
    expected = torch.where(hard.covered[..., None], (hard.bary[..., None] * corners).sum(-2), torch.zeros(3))
    rgb, alpha = render_soft(verts, head.faces, camera(), colors, sigma=1e-7, gamma=1e-5)
    assert ((alpha > 0.5) == hard.covered).float().mean() > 0.99
    inside = hard.covered & (alpha > 0.99)
    assert (rgb[inside] - expected[inside]).abs().mean() < 0.02

    moving = verts.clone().requires_grad_(True)
    texture = torch.full((32, 32, 3), 0.5, requires_grad=True)
    rgb, alpha = render_soft(moving, head.faces, camera(), UVTexture(head.verts_uvs, head.faces_uvs, texture))
    (rgb.mean() + alpha.mean()).backward()
    assert moving.grad.abs().sum() > 0 and texture.grad.abs().sum() > 0


def test_silhouettes_cover_the_head_and_not_the_corners(head, verts):
    mask = silhouettes(verts, head.faces, camera())
    assert mask.shape == (2, SIZE, SIZE)
    assert mask[:, SIZE // 2, SIZE // 2].tolist() == [1.0, 1.0] and mask[:, 0, 0].tolist() == [0.0, 0.0]


def test_vertex_normals_point_out_of_the_face(head):
    normals = vertex_normals(head.template, head.faces)
    nose_tip = 1  # MediaPipe landmark 1 is the nose tip, a face vertex
    assert normals[head.landmark_index[nose_tip], 2] > 0.8
    assert torch.allclose(normals.norm(dim=-1), torch.ones(len(normals)), atol=1e-4)


def test_bad_shapes_are_user_errors(head):
    with pytest.raises(ReplicaError, match="expected \\[F, V, 3\\]"):
        rasterize(head.template, head.faces, camera())
    with pytest.raises(ReplicaError, match="unknown backend"):
        rasterize(head.template[None], head.faces, camera(), backend="opengl")
    with pytest.raises(ReplicaError, match="render_soft.colors"):
        render_soft(head.template[None], head.faces, camera(), torch.zeros(5, 3))
