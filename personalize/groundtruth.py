"""Creation measured against ground truth: a synthetic person's video (`replica data synth-person`) comes with
`<stem>.params.npz` beside it — the parameters it was rendered from, its camera, landmarks and voice — so every
creation step can say how close it got.

`true_person(video)` finds and reads that file (None for real footage); `tracking_errors` compares tracked
parameters with it: per-vertex error of the fitted face as a percentage of the inter-ocular distance, expression
correlation, and the landmark reprojection error against the true landmarks, in crop pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from datasets import storage
from foundation.head import FaceParams, PersonParams, default_head_model, load_params, project_landmarks

N_FACE = 468
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
"""MediaPipe landmark ids of the outer eye corners (their distance is the inter-ocular distance)."""
MAX_FRAMES = 60
"""Frames (evenly spread) the vertex error is measured on: it poses the full head per frame."""
ACTIVE_STD = 0.02
"""An expression channel takes part in the correlation when the truth moves it at least this much (std)."""


def true_person(video: str) -> PersonParams | None:
    """The true parameters written beside a synthetic person's video (`<stem>.params.npz`), or None."""
    url = video.rsplit(".", 1)[0] + ".params.npz"
    return load_params(url, require_camera=True) if storage.exists(url) else None


def true_voice(truth: PersonParams) -> str | None:
    """The pool voice a synthetic person speaks with (None when the file does not say)."""
    voice = truth.extras.get("voice")
    return None if voice is None else str(voice)


@torch.no_grad()
def face_error_iod(fitted: FaceParams, truth: FaceParams, scale: bool = True, detail: np.ndarray | None = None) -> float:
    """Mean face-vertex distance (the 468 face vertices, head pose removed and each frame aligned to the truth) as
    a percentage of the true inter-ocular distance, on up to `MAX_FRAMES` frames.

    scale: align with a similarity (rotation, translation and one scale, as face-reconstruction benchmarks do)
    rather than rigidly. One camera cannot see a face's size: a face 5% larger and 5% farther away projects to the
    same pixels, and the head model's first identity component is exactly that global scale.
    detail: the fit's per-vertex detail offsets (`Tracking.detail`), added to its face. [V, 3] metres
    """
    head = default_head_model()
    n = min(fitted.n_frames, truth.n_frames)
    frames = np.unique(np.linspace(0, n - 1, min(n, MAX_FRAMES)).round().astype(int))

    def face(params: FaceParams) -> torch.Tensor:
        shape = params.shape if params.shape.dim() == 1 else params.shape[frames]
        zero = torch.zeros(len(frames), 3)
        return head(FaceParams(shape, params.expr[frames], params.jaw[frames], zero, zero, zero))[:, :N_FACE]

    true, fit = face(truth), face(fitted)
    if detail is not None:
        fit = fit + torch.as_tensor(detail[:N_FACE], dtype=fit.dtype)
    errors = []
    for a, b in zip(true, fit):
        a0, b0 = a - a.mean(0), b - b.mean(0)
        u, sigma, vt = torch.linalg.svd(b0.T @ a0)
        flip = torch.ones(3)
        flip[-1] = torch.sign(torch.linalg.det(u @ vt))
        rotation = u @ torch.diag(flip) @ vt
        factor = (sigma * flip).sum() / (b0**2).sum() if scale else 1.0
        errors.append((factor * b0 @ rotation - a0).norm(dim=-1).mean())
    iod = (true[0, LEFT_EYE_OUTER] - true[0, RIGHT_EYE_OUTER]).norm()
    return float(100 * torch.stack(errors).mean() / iod)


def expression_correlation(fitted: FaceParams, truth: FaceParams) -> float:
    """Mean Pearson correlation over time of the expression channels the truth moves (std ≥ `ACTIVE_STD`); a
    channel the fit holds still counts 0 (missed, not skipped)."""
    n = min(fitted.n_frames, truth.n_frames)
    fit, true = fitted.expr[:n].double().numpy(), truth.expr[:n].double().numpy()
    active = [c for c in range(true.shape[1]) if true[:, c].std() >= ACTIVE_STD]
    if not active:
        return float("nan")
    return float(np.mean([np.corrcoef(fit[:, c], true[:, c])[0, 1] if fit[:, c].std() > 1e-6 else 0.0
                          for c in active]))


@torch.no_grad()
def landmark_error_px(tracked: PersonParams, truth: PersonParams, boxes: np.ndarray) -> float:
    """Mean distance (crop pixels) between the tracked mesh's projected landmarks and the true landmarks mapped
    into the crop through the ingest's crop boxes (x0, y0, side in source pixels) [F, 3]."""
    head = default_head_model()
    n = min(tracked.n_frames, truth.n_frames, len(boxes), len(truth.extras["lmk"]))
    size = tracked.camera.width
    params = FaceParams(*(getattr(tracked.params, k)[:n] if k != "shape" else tracked.params.shape
                          for k in ("shape", "expr", "jaw", "neck", "rot", "trans")))
    fitted = project_landmarks(head(params), head.landmark_index, tracked.camera)[..., :2] * size
    return float(np.linalg.norm(fitted - true_landmarks_in_crop(truth, boxes[:n]) * size, axis=-1).mean())


def true_landmarks_in_crop(truth: PersonParams, boxes: np.ndarray) -> np.ndarray:
    """The true landmarks of the first len(boxes) frames in crop coordinates ([0, 1] of the crop's side), through
    the ingest's crop boxes (x0, y0, side in source pixels) [F, 3]. [F, 478, 2]"""
    n = len(boxes)
    source = truth.extras["lmk"][:n, :, :2] * np.array([truth.camera.width, truth.camera.height])
    return (source - boxes[:, None, :2]) / boxes[:, None, 2:3]


def tracking_errors(tracked: PersonParams, truth: PersonParams, boxes: np.ndarray,
                    detail: np.ndarray | None = None) -> dict:
    """The tracking step's ground-truth numbers: vertex error (% IOD; similarity-aligned, and rigidly aligned),
    expression correlation, landmark px. detail: the fit's per-vertex detail offsets [V, 3]."""
    return {"vertex_error_iod_pct": round(face_error_iod(tracked.params, truth.params, detail=detail), 3),
            "vertex_error_rigid_iod_pct": round(face_error_iod(tracked.params, truth.params, False, detail), 3),
            "expression_corr": round(expression_correlation(tracked.params, truth.params), 3),
            "landmark_px_vs_truth": round(landmark_error_px(tracked, truth, boxes), 3)}
