"""The animator and its losses: shapes, bounded look-ahead, streaming, and that it learns through the head model."""

import pytest
import torch

from datasets.errors import ReplicaError
from foundation.animation import AnimationLossConfig, Animator, AnimatorConfig, animation_loss, mouth_weights, pose_vertices
from foundation.animation.losses import vertex_loss
from datasets.schema import EXPRESSION_NAMES
from foundation.head import default_head_model




@pytest.fixture(scope="module")
def head():
    return default_head_model()


def talking_clip(batch: int, frames: int) -> dict[str, torch.Tensor]:
    """Smooth parameter tracks like speech: jaw and jawOpen oscillate, the head nods a little."""
    t = torch.arange(frames) / 25
    gen = torch.Generator().manual_seed(0)
    params = {k: torch.zeros(batch, frames, 3) for k in ("jaw", "neck", "rot", "trans")}
    opening = 0.15 * (1 + torch.sin(2 * torch.pi * 3 * t + torch.arange(batch)[:, None]))
    params["jaw"][..., 0] = opening
    params["neck"][..., 0] = 0.05 * torch.sin(2 * torch.pi * 0.5 * t)
    params["expr"] = 0.1 * torch.rand(batch, 1, 52, generator=gen).expand(batch, frames, 52).clone()
    params["expr"][..., EXPRESSION_NAMES.index("jawOpen")] = opening / 0.3
    params["shape"] = torch.randn(batch, 50, generator=gen)
    return params


def randomised(animator: Animator) -> Animator:
    """The animator with random weights everywhere, in eval mode (its output heads start at zero)."""
    torch.manual_seed(0)
    for p in animator.parameters():
        p.data.normal_(0, 0.1)
    return animator.eval()


def test_outputs_are_per_frame_with_expressions_in_the_unit_range():
    animator = Animator(AnimatorConfig(style_dim=8))
    out = animator(torch.randn(2, 30, 64), torch.randn(2, 8))
    assert out["expr"].shape == (2, 30, 52) and 0 <= out["expr"].min() and out["expr"].max() <= 1
    assert all(out[k].shape == (2, 30, 3) for k in ("jaw", "neck", "rot", "trans"))
    assert torch.equal(out["trans"], torch.zeros(2, 30, 3))


def test_style_is_required_exactly_when_configured():
    with pytest.raises(ReplicaError, match="style"):
        Animator(AnimatorConfig(style_dim=8))(torch.randn(1, 10, 64))
    with pytest.raises(ReplicaError, match="style"):
        Animator()(torch.randn(1, 10, 64), torch.randn(1, 8))


def test_tiny_preset_is_small_and_cluster_preset_is_millions():
    assert 50_000 <= sum(p.numel() for p in Animator().parameters()) <= 300_000
    with torch.device("meta"):
        cluster = Animator(AnimatorConfig.cluster())
    assert 5e6 <= sum(p.numel() for p in cluster.parameters()) <= 20e6


def test_init_mean_makes_an_untrained_animator_predict_the_mean_face():
    animator = Animator()
    mean = {"expr": torch.full((52,), 0.2), "jaw": torch.tensor([0.1, 0.0, 0.0]),
            "neck": torch.tensor([0.02, 0.0, 0.0]), "rot": torch.zeros(3)}
    animator.init_mean(mean)
    out = animator(torch.randn(1, 10, 64))
    assert torch.allclose(out["expr"], torch.full((1, 10, 52), 0.2), atol=1e-5)
    assert torch.allclose(out["jaw"], mean["jaw"].expand(1, 10, 3))


def test_a_frame_sees_exactly_lookahead_frames_of_the_future():
    animator = randomised(Animator(AnimatorConfig(lookahead=3)))
    latent = torch.randn(1, 40, 64)
    changed = latent.clone()
    changed[:, 20:] += 5.0
    before, after = animator(latent)["expr"], animator(changed)["expr"]
    assert torch.allclose(before[:, :17], after[:, :17], atol=1e-7)
    assert (before[:, 17] - after[:, 17]).abs().max() > 1e-6  # small: it enters through one attention weight


@pytest.mark.parametrize("left_context", [None, 4])
@pytest.mark.parametrize("chunks", [[1] * 48, [5, 7, 20, 16], [48]])
def test_streaming_in_chunks_equals_the_full_sequence(left_context, chunks):
    animator = randomised(Animator(AnimatorConfig(style_dim=8, left_context=left_context)))
    latent, style = torch.randn(2, 48, 64), torch.randn(2, 8)
    with torch.no_grad():
        full = animator(latent, style)
        pieces = list(animator.stream(latent.split(chunks, dim=1), style))
    for key, value in full.items():
        assert torch.allclose(torch.cat([p[key] for p in pieces], dim=1), value, atol=1e-5), key


def test_losses_vanish_at_the_target_and_ignore_frames_past_the_clip(head):
    target = talking_clip(2, 20)
    pred = {k: v.clone() for k, v in target.items() if k != "shape"}
    frames_len = torch.tensor([20, 12])
    pred["expr"][1, 12:] = 1.0  # garbage on padding frames only
    pred["jaw"][1, 12:] = 0.4
    terms = animation_loss(pred, target, frames_len, head=head)
    assert set(terms) == {"expr", "jaw", "pose", "vertex", "velocity", "total"}
    assert all(value.item() < 1e-8 for value in terms.values())


def test_vertex_loss_is_in_square_centimetres_and_weighs_the_lips_more(head):
    verts = pose_vertices(head, {k: v for k, v in talking_clip(1, 4).items()}, None)
    mask = torch.ones(1, 4)
    assert vertex_loss(verts + 0.01 / 3**0.5, verts, mask, torch.ones(head.n_verts)).item() == pytest.approx(1.0, rel=1e-4)
    weights = mouth_weights(head, 10.0)
    lips, other = verts.clone(), verts.clone()
    lips[:, :, head.mouth_vertex_ids, 1] += 0.005
    other_ids = torch.ones(head.n_verts, dtype=torch.bool)
    other_ids[head.mouth_vertex_ids] = False
    other[:, :, other_ids.nonzero()[: len(head.mouth_vertex_ids), 0], 1] += 0.005
    assert vertex_loss(lips, verts, mask, weights) == pytest.approx(10 * vertex_loss(other, verts, mask, weights).item(), rel=1e-3)


def test_velocity_term_penalises_jitter_that_per_frame_errors_average_away(head):
    target = talking_clip(1, 20)
    wobble = 0.02 * (-1) ** torch.arange(20)[None, :, None]
    smooth = {k: target[k] + 0.02 for k in ("expr", "jaw", "neck", "rot", "trans")}
    jitter = {k: target[k] + wobble for k in ("expr", "jaw", "neck", "rot", "trans")}
    frames_len = torch.tensor([20])
    cfg = AnimationLossConfig(vertex=0.0)
    smooth_terms, jitter_terms = animation_loss(smooth, target, frames_len, cfg), animation_loss(jitter, target, frames_len, cfg)
    assert smooth_terms["expr"].item() == pytest.approx(jitter_terms["expr"].item(), rel=1e-4)
    assert smooth_terms["velocity"].item() < 1e-10 < jitter_terms["velocity"].item()


def test_animator_learns_a_clip_through_coefficient_vertex_and_velocity_losses(head):
    torch.manual_seed(0)
    target = talking_clip(2, 25)
    latent = torch.randn(2, 25, 64)
    animator = Animator()
    animator.init_mean({k: target[k].mean((0, 1)) for k in ("expr", "jaw", "neck", "rot")})
    optim = torch.optim.Adam(animator.parameters(), lr=3e-3)
    frames_len = torch.tensor([25, 20])
    history = []
    for _ in range(25):
        terms = animation_loss(animator(latent), target, frames_len, head=head)
        optim.zero_grad()
        terms["total"].backward()
        optim.step()
        history.append(terms)
    for key in ("jaw", "vertex", "total"):
        assert history[-1][key] < 0.5 * history[0][key], key
