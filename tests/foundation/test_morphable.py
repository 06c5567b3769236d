"""The morphable head model: template, bases, skinning, file format, converter."""

import numpy as np
import pytest
import torch

from datasets.errors import ReplicaError
from datasets.schema import EXPRESSION_NAMES, N_EXPR
from foundation.head import (
    LMK68, PARTS, FaceParams, HeadModel, PersonParams, SourceMapping, convert_model, default_head_model,
    linear_blend_skinning, load_params, save_params,
)  # fmt: skip
from foundation.camera import Camera
from foundation.head.surface import mirror_map
from foundation.head.template import load_canonical_mesh


@pytest.fixture(scope="module")
def model() -> HeadModel:
    return default_head_model()


@pytest.fixture(scope="module")
def neutral(model) -> torch.Tensor:
    return model(FaceParams.neutral(1))[0]


def posed(model, expr=None, jaw=0.0, shape=None) -> torch.Tensor:
    params = FaceParams.neutral(1, model.n_shape)
    for name, weight in (expr or {}).items():
        params.expr[0, EXPRESSION_NAMES.index(name)] = weight
    params.jaw[0, 0] = jaw
    if shape is not None:
        params.shape = shape
    return model(params)[0]


def test_expression_names_are_mediapipe_order_plus_tongue_out():
    assert len(EXPRESSION_NAMES) == N_EXPR == 52
    # MediaPipe lists its categories alphabetically after `_neutral`.
    assert list(EXPRESSION_NAMES[:-1]) == sorted(EXPRESSION_NAMES[:-1])
    assert EXPRESSION_NAMES[-1] == "tongueOut" and "mouthUpperUpLeft" in EXPRESSION_NAMES


def test_canonical_face_is_the_first_468_vertices_in_metres(model):
    canonical = load_canonical_mesh()
    assert canonical.verts.shape == (468, 3) and canonical.faces.shape == (898, 3)
    lips = np.isin(np.arange(468), model.mouth_vertex_ids.numpy())
    away_from_lips = np.linalg.norm(canonical.verts - model.template[:468].numpy(), axis=1)[~lips]
    # Only the lips differ (closed at rest); the rest is MediaPipe's canonical face, cm converted to m.
    assert np.median(away_from_lips) < 1e-6
    assert torch.equal(model.landmark_index, torch.arange(478))


def test_every_part_is_present_and_uvs_lie_in_their_atlas_rectangle(model):
    for k, name in enumerate(PARTS):
        assert (model.part == k).any(), name
    face_uvs = model.verts_uvs[model.faces_uvs[(model.part[model.faces] == PARTS.index("face")).all(dim=1)]]
    u0, v0, u1, v1 = model.atlas["face"]
    assert face_uvs[..., 0].min() >= u0 and face_uvs[..., 0].max() <= u1
    assert face_uvs[..., 1].min() >= v0 and face_uvs[..., 1].max() <= v1


def test_iris_landmarks_sit_on_the_eyeballs_in_front_of_the_eye_centres(model, neutral):
    eye_l = model.part_mask("eye_l")
    assert eye_l[473:478].all() and model.part_mask("eye_r")[468:473].all()
    assert neutral[473, 0] > 0 > neutral[468, 0]  # subject's left eye is at +x
    assert (neutral[468:478, 2] > model.joint_positions[3:, 2].min()).all()


def test_neutral_params_reproduce_the_template(model, neutral):
    assert torch.allclose(neutral, model.template, atol=1e-7)


def test_forward_is_batched_and_differentiable_in_every_parameter(model):
    params = FaceParams.neutral(3, model.n_shape)
    params.expr.uniform_(0, 0.5)
    params.jaw[:, 0] = 0.2
    params.rot.normal_(0, 0.1)
    for name in ("shape", "expr", "jaw", "neck", "rot", "trans"):
        getattr(params, name).requires_grad_(True)
    verts = model(params)
    assert verts.shape == (3, model.n_verts, 3)
    verts.square().sum().backward()
    for name in ("shape", "expr", "jaw", "neck", "rot", "trans"):
        grad = getattr(params, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_lbs_with_zero_rotations_is_the_identity():
    verts = torch.randn(2, 50, 3)
    weights = torch.softmax(torch.randn(50, 3), dim=1)
    rotations = torch.eye(3).expand(2, 3, 3, 3)
    out = linear_blend_skinning(verts, rotations, torch.randn(3, 3), torch.tensor([-1, 0, 1]), weights)
    assert torch.allclose(out, verts, atol=1e-6)


def test_jaw_opening_opens_the_mouth_two_to_three_cm_and_leaves_the_forehead(model, neutral):
    opened = posed(model, {"jawOpen": 1.0}, jaw=0.3)
    gap = (opened[13, 1] - opened[14, 1]) - (neutral[13, 1] - neutral[14, 1])
    assert 0.02 <= gap.item() <= 0.03
    moved = (opened - neutral).norm(dim=1)
    assert moved[152] > 0.015  # chin
    assert moved[model.part_mask("teeth_lower")].min() > 0.01
    assert moved[[10, 151, 9]].max() < 1e-6  # forehead
    assert moved[model.part_mask("teeth_upper")].max() < 1e-6


def test_blink_closes_the_eyelid_fully(model, neutral):
    blink = posed(model, {"eyeBlinkLeft": 1.0})
    assert neutral[386, 1] - neutral[374, 1] > 0.005
    assert abs(blink[386, 1] - blink[374, 1]) < 0.001


def test_smile_pulls_the_mouth_corner_about_a_centimetre(model, neutral):
    smile = posed(model, {"mouthSmileLeft": 1.0})
    assert 0.007 < (smile[291] - neutral[291]).norm() < 0.013
    assert smile[291, 1] > neutral[291, 1]


def test_blendshapes_are_local(model, neutral):
    moved = (posed(model, {"eyeBlinkLeft": 1.0}) - neutral).norm(dim=1)
    assert moved[[159, 145, 33, 133]].max() < 1e-7  # right eye
    assert moved[model.mouth_vertex_ids].max() < 1e-7
    moved = (posed(model, {"mouthLowerDownLeft": 1.0}) - neutral).norm(dim=1)
    assert moved[[13, 0, 386, 159]].max() < 1e-7  # upper lip, eyes


def test_left_and_right_blendshapes_mirror_each_other(model):
    mirror = torch.as_tensor(mirror_map(model.template.numpy().astype(np.float64), 1e-6))
    assert (mirror >= 0).all()
    flip = torch.tensor([-1.0, 1.0, 1.0])
    for name in EXPRESSION_NAMES:
        if name.endswith("Left"):
            left = model.expr_basis[EXPRESSION_NAMES.index(name)]
            right = model.expr_basis[EXPRESSION_NAMES.index(name[:-4] + "Right")]
            assert torch.allclose(right, left[mirror] * flip, atol=1e-6), name


def test_identity_basis_is_orthogonal_and_deforms_plausibly(model):
    flat = model.shape_basis.flatten(1).double()
    norms = flat.norm(dim=1)
    gram = (flat / norms[:, None]) @ (flat / norms[:, None]).T
    assert torch.allclose(gram, torch.eye(model.n_shape, dtype=torch.float64), atol=1e-5)
    # Coefficients ~N(0, 1) move the face by millimetres, not centimetres.
    offset = (posed(model, shape=torch.randn(model.n_shape, generator=torch.Generator().manual_seed(0))) - model.template).norm(dim=1)
    assert 0.0005 < offset[:468].mean() < 0.01


@pytest.mark.parametrize("where", ["local", "s3"])
def test_save_load_round_trip(where, request, model):
    root = request.getfixturevalue("local_root" if where == "local" else "s3_root")
    path = model.save(f"{root}/head.npz")
    loaded = HeadModel.load(path)
    params = FaceParams.neutral(2, model.n_shape)
    params.expr.uniform_(0, 1)
    params.neck.normal_(0, 0.1)
    assert torch.equal(loaded(params), model(params))
    assert loaded.part_names == model.part_names and loaded.atlas == model.atlas


def test_loading_a_bad_file_names_the_problem(tmp_path, model):
    arrays = model.arrays()
    arrays["format_version"] = np.asarray(99)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ReplicaError, match="format_version 99"):
        HeadModel.load(tmp_path / "bad.npz")


def test_params_file_round_trips_params_camera_fps_and_extras(any_root):
    params = FaceParams.neutral(4)
    params.expr.uniform_(0, 1)
    camera = Camera.look_at((0.0, 0.0, 0.8), width=96, height=64)
    lmk = np.random.default_rng(0).uniform(0, 1, (4, 478, 3)).astype(np.float32)
    url = f"{any_root}/person.params.npz"
    save_params(url, PersonParams(params, camera, 30.0, {"lmk": lmk, "voice": np.asarray("flite:slt")}))
    loaded = load_params(url, require_camera=True)
    assert torch.equal(loaded.params.expr, params.expr) and loaded.params.shape.shape == (50,)
    assert torch.equal(loaded.camera.K, camera.K) and (loaded.camera.width, loaded.camera.height) == (96, 64)
    assert loaded.fps == 30.0 and str(loaded.extras["voice"]) == "flite:slt"
    np.testing.assert_array_equal(loaded.extras["lmk"], lmk)


def test_params_file_names_what_is_wrong(tmp_path):
    good = FaceParams.neutral(4).as_dict()
    cases = {
        "missing arrays \\['trans'\\]": {k: v for k, v in good.items() if k != "trans"},
        "jaw has shape \\[3, 3\\], expected \\[4, 3\\]": {**good, "jaw": good["jaw"][:3]},
        "expr has dtype int64": {**good, "expr": good["expr"].astype(np.int64)},
        "lmk has 2 rows for 4 frames": {**good, "lmk": np.zeros((2, 478, 3), np.float32)},
        "params format version 9": {**good, "params_version": np.asarray(9)},
        "has no camera": good,
    }
    for reason, arrays in cases.items():
        np.savez(tmp_path / "p.npz", **arrays)
        with pytest.raises(ReplicaError, match=f"p.npz: .*{reason}"):
            load_params(str(tmp_path / "p.npz"), require_camera=True)
    with pytest.raises(ReplicaError, match="no such object"):
        load_params(str(tmp_path / "none.npz"))
    with pytest.raises(ReplicaError, match="expr"):
        FaceParams(torch.zeros(50), torch.zeros(4, 51), *[torch.zeros(4, 3)] * 4)


def _toy_flame() -> dict[str, np.ndarray]:
    """A FLAME-shaped toy: a 4×4 vertex sheet, 2 shape and 2 expression components, 3 joints."""
    rng = np.random.default_rng(0)
    xs, ys = np.meshgrid(np.linspace(-0.05, 0.05, 4), np.linspace(-0.05, 0.05, 4))
    template = np.stack([xs.ravel(), ys.ravel(), np.zeros(16)], 1)
    faces = np.array([[r * 4 + c, r * 4 + c + 1, (r + 1) * 4 + c] for r in range(3) for c in range(3)])
    weights = rng.uniform(size=(16, 3))
    regressor = np.zeros((3, 16))
    regressor[[0, 1, 2], [5, 6, 9]] = 1.0
    return {
        "v_template": template,
        "f": faces,
        "shapedirs": rng.normal(size=(16, 3, 4)) * 0.01,
        "J_regressor": regressor,
        "kintree_table": np.array([[4294967295, 0, 1], [0, 1, 2]]),
        "weights": weights / weights.sum(1, keepdims=True),
    }


def test_converter_round_trips_a_toy_model(tmp_path):
    source = _toy_flame()
    expression_map = np.zeros((52, 2))
    expression_map[EXPRESSION_NAMES.index("jawOpen"), 0] = 1.0
    expression_map[EXPRESSION_NAMES.index("mouthSmileLeft"), 1] = 0.5
    mapping = SourceMapping(
        landmark_index=np.arange(478) % 16,
        shape_components=(0, 2),
        expression_components=(2, 4),
        expression_map=expression_map,
        joint_names=("root", "neck", "jaw"),
    )
    model = HeadModel.load(convert_model(source, mapping, tmp_path / "toy.npz"))
    params = FaceParams.neutral(1, n_shape=2)
    params.shape = torch.tensor([1.0, -2.0])
    params.expr[0, EXPRESSION_NAMES.index("mouthSmileLeft")] = 1.0
    expected = source["v_template"] + source["shapedirs"][..., 0] - 2 * source["shapedirs"][..., 1] + 0.5 * source["shapedirs"][..., 3]
    assert np.allclose(model(params)[0].numpy(), expected, atol=1e-6)
    assert (model.lmk68.numpy() == LMK68 % 16).all()
    # Joints come from the regressor applied to the template (FLAME's convention); jaw rotation now poses.
    assert np.allclose(model.joint_positions.numpy(), source["v_template"][[5, 6, 9]])
    params.jaw[0, 0] = 0.3
    assert not np.allclose(model(params)[0].numpy(), expected, atol=1e-4)


def test_converter_rejects_a_mismatched_expression_map(tmp_path):
    mapping = SourceMapping(landmark_index=np.zeros(478, dtype=int), shape_components=(0, 2), expression_components=(2, 4), expression_map=np.zeros((52, 3)), joint_names=("root", "neck", "jaw"))
    with pytest.raises(ReplicaError, match="expression_map"):
        convert_model(_toy_flame(), mapping, tmp_path / "toy.npz")
