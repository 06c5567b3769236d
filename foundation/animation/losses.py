"""Training losses of the animator, all masked to each clip's valid frames (`frames_len`).

- **coefficients**: mean squared error of expr (52 weights), jaw, and head pose (neck, rot, and
  trans when predicted), each averaged over its channels so every group weighs as its weight says;
- **vertices**: the predicted expression and jaw are posed through the head model with the clip's
  true identity `shape` and true head pose (lip sync is judged apart from idle head motion, as in
  the evaluation) and compared per vertex, squared distance in centimetres so a
  1 cm error costs 1; the lip vertices weigh `mouth_weight` times the rest, because lip sync is
  what viewers judge and the lips are a few percent of the mesh;
- **velocity**: the same errors on first differences over time (frame f+1 minus f), which
  penalises jitter and late or sluggish mouths that per-frame errors average away.

`viseme` weighs one more term the objective adds (`foundation.training.AnimatorObjective`): cross-entropy of
the viseme class spoken at each frame, read from the audio encoder's latents, for clips whose phones are known.
"""

from __future__ import annotations

import torch
from pydantic import Field

from datasets.config import Section
from foundation.head import FaceParams, HeadModel

CM = 0.01
"""Vertex errors are measured in centimetres (metres per unit)."""


class AnimationLossConfig(Section):
    """Weights of the animator's loss terms."""

    expr: float = Field(1.0, ge=0)
    """Weight of the expression-coefficient MSE."""
    jaw: float = Field(10.0, ge=0)
    """Weight of the jaw axis-angle MSE (radians²; speech jaw angles are ≲ 0.35 rad)."""
    pose: float = Field(1.0, ge=0)
    """Weight of the neck/rot (and predicted trans) MSE."""
    vertex: float = Field(1.0, ge=0)
    """Weight of the vertex loss (cm²); 0 skips posing the head model."""
    mouth_weight: float = Field(10.0, ge=1)
    """How much more a lip vertex counts than any other vertex."""
    velocity: float = Field(0.5, ge=0)
    """Weight of the velocity terms (coefficients and vertices), relative to the per-frame ones."""
    viseme: float = Field(0.0, ge=0)
    """Weight of the viseme term: a linear head on the audio encoder's latents (pooled to the frame rate) is
    asked which viseme class each frame speaks (`foundation.world.visemes.frame_classes` of the clip's
    `meta["phones"]`), so the fine-tuned encoder must hear phones, not only what moves the mouth on average.
    Frames of clips without phones do not count; 0 (default) builds no head."""


def frame_mask(frames_len: torch.Tensor, n_frames: int) -> torch.Tensor:
    """[B] valid frame counts → [B, F] float mask (1 on valid frames)."""
    return (torch.arange(n_frames, device=frames_len.device)[None, :] < frames_len[:, None]).float()


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """pred, target: [B, F, C]; mask: [B, F] → mean over valid frames and channels (scalar)."""
    err = ((pred - target) ** 2).mean(-1)
    return (err * mask).sum() / mask.sum().clamp_min(1)


def velocity(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x: [B, F, ...], mask [B, F] → first differences [B, F-1, ...] and their mask (both frames valid)."""
    return x[:, 1:] - x[:, :-1], mask[:, 1:] * mask[:, :-1]


def mouth_weights(head: HeadModel, mouth_weight: float) -> torch.Tensor:
    """Per-vertex weights [V], 1 everywhere and `mouth_weight` on `head.mouth_vertex_ids`, normalised to mean 1."""
    weights = torch.ones(head.n_verts, device=head.template.device)
    weights[head.mouth_vertex_ids] = mouth_weight
    return weights / weights.mean()


def pose_vertices(head: HeadModel, params: dict[str, torch.Tensor], shape: torch.Tensor | None) -> torch.Tensor:
    """Vertices [B, F, V, 3] (metres) of batched parameters (expr [B, F, 52], jaw/neck/rot/trans [B, F, 3]).

    shape: [B, S] identity per clip, or None for the template identity.
    """
    b, f, _ = params["expr"].shape
    dtype = head.template.dtype  # the head model stays float32 when the animator trains in bf16
    flat = {k: params[k].reshape(b * f, -1).to(dtype) for k in ("expr", "jaw", "neck", "rot", "trans")}
    if shape is None:
        shape = head.template.new_zeros(b, head.n_shape)
    shape = shape.to(dtype)
    per_frame_shape = shape[:, None, :].expand(b, f, shape.shape[-1]).reshape(b * f, -1)
    return head(FaceParams(shape=per_frame_shape, **flat)).reshape(b, f, -1, 3)


def vertex_loss(pred_verts: torch.Tensor, true_verts: torch.Tensor, mask: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
    """pred_verts, true_verts: [B, F, V, 3] metres; mask [B, F]; weights [V] (mean 1).

    Returns the weighted mean squared distance in cm² (scalar)."""
    sq = (((pred_verts - true_verts) / CM) ** 2).sum(-1)  # [B, F, V]
    per_frame = (sq * weights).mean(-1)
    return (per_frame * mask).sum() / mask.sum().clamp_min(1)


def animation_loss(pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor], frames_len: torch.Tensor,
                   cfg: AnimationLossConfig | None = None, head: HeadModel | None = None) -> dict[str, torch.Tensor]:
    """All loss terms and their weighted sum.

    pred: the animator's output (expr [B, F, 52], jaw/neck/rot/trans [B, F, 3]).
    target: a batch's `mm` (same keys, optional `shape` [B, S]). frames_len: [B] valid frames.
    head: the head model for the vertex terms (None: coefficient terms only).
    Returns {"expr", "jaw", "pose", "vertex"?, "velocity", "total"}: scalars, unweighted except "total".
    """
    cfg = cfg or AnimationLossConfig()
    mask = frame_mask(frames_len, pred["expr"].shape[1])
    vel_pred = {k: velocity(pred[k], mask)[0] for k in ("expr", "jaw", "neck", "rot", "trans")}
    vel_true = {k: velocity(target[k], mask)[0] for k in vel_pred}
    vel_mask = velocity(pred["expr"], mask)[1]
    pose_keys = ("neck", "rot", "trans")

    def coefficient_terms(p: dict, t: dict, m: torch.Tensor) -> dict[str, torch.Tensor]:
        pose_p, pose_t = (torch.cat([x[k] for k in pose_keys], -1) for x in (p, t))
        return {"expr": masked_mse(p["expr"], t["expr"], m), "jaw": masked_mse(p["jaw"], t["jaw"], m),
                "pose": masked_mse(pose_p, pose_t, m)}

    terms = coefficient_terms(pred, target, mask)
    vel_terms = coefficient_terms(vel_pred, vel_true, vel_mask)
    total = cfg.expr * terms["expr"] + cfg.jaw * terms["jaw"] + cfg.pose * terms["pose"]
    vel_total = cfg.expr * vel_terms["expr"] + cfg.jaw * vel_terms["jaw"] + cfg.pose * vel_terms["pose"]
    if head is not None and cfg.vertex > 0:
        weights = mouth_weights(head, cfg.mouth_weight)
        shape = target.get("shape")
        # The face is compared under the true head pose: idle head motion, which audio cannot determine,
        # would otherwise dominate every vertex error and drown the lips. Pose learns from its own term.
        pred_verts = pose_vertices(head, {**pred, **{k: target[k] for k in pose_keys}}, shape)
        with torch.no_grad():
            true_verts = pose_vertices(head, target, shape)
        terms["vertex"] = vertex_loss(pred_verts, true_verts, mask, weights)
        vp, vm = velocity(pred_verts, mask)
        vel_terms["vertex"] = vertex_loss(vp, velocity(true_verts, mask)[0], vm, weights)
        total = total + cfg.vertex * terms["vertex"]
        vel_total = vel_total + cfg.vertex * vel_terms["vertex"]
    terms["velocity"] = vel_total
    terms["total"] = total + cfg.velocity * vel_total
    return terms
