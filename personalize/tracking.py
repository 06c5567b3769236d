"""Tracking: a person's video frames and MediaPipe landmarks → head-model parameters for every frame.

The head model's first 468 vertices are MediaPipe's canonical face and 468–477 its iris points, so landmark i
of the FaceLandmarker *is* vertex `landmark_index[i]`: fitting is a direct reprojection problem, no
correspondence search. Two stages, both batched over all frames, on CPU or CUDA:

1. **Landmarks** (`fit_landmarks`): identity `shape` and the camera's focal length once for the video; per frame
   the 52 expression weights (started from MediaPipe's own blendshape scores, which are the same ARKit
   channels), the jaw (tied to `jawOpen` as the synthetic world ties it), the head's rotation about the neck
   and its translation. Loss: a robust (Huber) reprojection error in pixels over the 478 landmarks, priors
   on shape and expression size, and temporal smoothness of expression and pose. A rigid-only warm-up comes
   first, so the expression never explains what the pose should. MediaPipe's scores only start the fit, they
   are not pulled towards: MediaPipe computes them from the same landmarks (no new evidence), in its own rig's
   conventions: on the synthetic world's faces it reads eyeSquint up to 0.74 where the truth is 0.
2. **Photometry** (`refine_photometric`): on a few key frames, the differentiable mesh renderer
   (`foundation.head.render_soft`) draws the fitted face with a texture estimated jointly; the identity,
   per-vertex detail offsets (Laplacian-regularised: smooth corrections for what the identity basis cannot
   express) and the texture are refined against the pixels. The detail offsets and the texture are outputs
   (the contact sheet shows them); the per-frame parameters keep the landmark fit.

`track` runs both and returns the per-frame parameters (the one `params.npz` format), the camera, the texture,
the per-frame landmark residuals and the quality numbers; `contact_sheet` draws frame | fitted mesh overlay |
textured render for a few frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from datasets.config import Section
from datasets.errors import ReplicaError
from datasets.progress import progress_bar
from datasets.schema import EXPRESSION_NAMES, FPS
from foundation.camera import Camera
from foundation.head import FaceParams, HeadModel, PersonParams, UVTexture, default_head_model, render_soft
from foundation.world.motion import JAW_OPEN_RAD
from personalize.idle import BLINK

JAW_OPEN = EXPRESSION_NAMES.index("jawOpen")
N_FACE = 468
CAMERA_DISTANCE_M = 0.8
"""The camera sits this far in front of the head's rest position; translation and focal length do the rest."""


class TrackingConfig(Section):
    """How a video is fitted with the head model."""

    rigid_iterations: int = Field(150, ge=0)
    """Adam steps fitting only focal length, head rotation and translation (the warm-up)."""
    iterations: int = Field(400, ge=1)
    """Adam steps fitting everything to the landmarks."""
    lr: float = Field(0.02, gt=0)
    """Adam learning rate of the landmark fit."""
    expr_lr_factor: float = Field(3.0, gt=0)
    """The expression logits' learning rate is `lr` times this. They start at MediaPipe's scores (at least 0.02,
    logit −3.9), and at `lr` a blink on exact landmarks reached 0.17 of its size in the tiny preset's 200 steps;
    at 3× 0.75 (and 0.88 in 400). On two synthetic persons' MediaPipe landmarks: expression correlation
    0.554/0.575 → 0.576/0.587, vertex error +0.01 % IOD."""
    huber_px: float = Field(1.5, gt=0)
    """Residuals beyond this many pixels count linearly (robust to the tracker's bad frames)."""
    shape_prior: float = Field(0.5, ge=0)
    """Weight of |shape|² in the landmark fit (identity coefficients are ~N(0, 1)). MediaPipe's landmarks say
    little about the identity (a per-person offset of 1.5–3 px, `bench/tracking.py`): 0.5 fits four synthetic
    persons 5% closer to their true faces than 0.05 did (0.05 px more landmark residual)."""
    expr_prior: float = Field(0.2, ge=0)
    """Weight of |expression|² (faces rest near neutral; MediaPipe's blendshape scores only start the fit)."""
    smoothness: float = Field(1.0, ge=0)
    """Weight of frame-to-frame changes of expression and of pose accelerations."""
    blink_weight: float = Field(0.01, ge=0)
    """Multiplies `expr_prior` and the expression smoothness for the two eyeBlink channels. A blink closes in two or
    three frames and moves a dozen of the 478 landmarks, so the prior and smoothness that steady the other
    channels erased it: fitted to a synthetic person's exact landmarks, blinks came out at 0.11 of their true size
    at 1.0, 0.76 at 0.01 (vertex error 1.446 → 1.441 % IOD); on a real woman's shut eyes 0.33 → 0.53 (MediaPipe's
    own score 0.74), her open eyes 0.06 either way. On MediaPipe's landmarks of the synthetic renders 0.06 → 0.10:
    there MediaPipe's lids close 6.3 → 3.7 px where the true ones close 5.3 → 1.6 px."""
    photometric_iterations: int = Field(150, ge=0)
    """Adam steps of the photometric stage (0 skips it)."""
    photometric_frames: int = Field(12, ge=1)
    """Key frames (evenly spread) the photometric stage renders."""
    photometric_size: int = Field(128, ge=16)
    """Longer side of the key frames in the photometric stage, pixels."""
    texture_size: int = Field(256, ge=16)
    """Side of the estimated texture atlas in texels."""
    detail_laplacian: float = Field(50.0, ge=0)
    """Weight of the detail offsets' Laplacian (large: only smooth corrections)."""
    detail_size: float = Field(10.0, ge=0)
    """Weight of the detail offsets' squared size (cm²)."""
    photometric_shape_prior: float = Field(0.05, ge=0)
    """Weight of |shape|² in the photometric stage (next to a pixel L1 of ~0.02: weak, the pixels decide)."""


@dataclass
class Tracking:
    """What tracking found.

    Fields:
        person: per-frame parameters + camera + fps (extras: `residual_px` [F], `lmk` [F, 478, 3] the tracker's).
        texture: the estimated face texture in the head model's atlas layout, RGB in [0, 1]. [S, S, 3]
        detail: per-vertex detail offsets, metres (zero off the face). [V, 3]
        metrics: landmark reprojection error (px) after each stage, photometric L1, timings.
    """

    person: PersonParams
    texture: np.ndarray
    detail: np.ndarray
    metrics: dict = field(default_factory=dict)


def landmark_head(head: HeadModel) -> HeadModel:
    """The head model restricted to its 478 landmark vertices (same bases and skinning): fast to pose."""
    ids = head.landmark_index
    arrays = head.arrays()
    for name in ("template", "part", "skin_weights"):
        arrays[name] = arrays[name][ids.numpy()]
    for name in ("shape_basis", "expr_basis"):
        arrays[name] = arrays[name][:, ids.numpy()]
    arrays["faces"] = np.zeros((0, 3), np.int64)
    arrays["faces_uvs"] = np.zeros((0, 3), np.int64)
    arrays["landmark_index"] = np.arange(len(ids))
    arrays["lmk68"] = np.zeros(68, np.int64)
    arrays["mouth_vertex_ids"] = np.zeros(0, np.int64)
    return HeadModel(arrays)


def base_camera(width: int, height: int, focal: Tensor) -> Camera:
    """The tracking camera: on the +z axis looking at the head's rest position, principal point centred.

    focal: focal length in pixels (a 0-d tensor; gradients flow into it).
    """
    eye = torch.tensor([0.0, 0.0, CAMERA_DISTANCE_M])
    viewmat = Camera.look_at(tuple(eye.tolist()), (0.0, 0.0, 0.0), width=width, height=height).viewmat
    zero, one = torch.zeros((), dtype=focal.dtype), torch.ones((), dtype=focal.dtype)
    K = torch.stack([torch.stack([focal, zero, torch.tensor(width / 2.0)]),
                     torch.stack([zero, focal, torch.tensor(height / 2.0)]), torch.stack([zero, zero, one])])
    return Camera(viewmat, K, width, height)


class _Variables(torch.nn.Module):
    """The unknowns of the landmark fit, parametrised so plain Adam keeps them valid."""

    def __init__(self, n_frames: int, n_shape: int, blendshapes: Tensor, width: int, height: int):
        super().__init__()
        # A 35° vertical field of view is a neutral start between phone wide-angles and the world's portraits.
        self.log_focal = torch.nn.Parameter(torch.tensor(float(np.log(0.5 * height / np.tan(np.radians(17.5))))))
        self.shape = torch.nn.Parameter(torch.zeros(n_shape))
        self.expr_logit = torch.nn.Parameter(torch.logit(blendshapes.clamp(0.02, 0.98)))
        self.neck = torch.nn.Parameter(torch.zeros(n_frames, 3))
        self.trans = torch.nn.Parameter(torch.zeros(n_frames, 3))
        self.jaw_side = torch.nn.Parameter(torch.zeros(n_frames))
        self.width, self.height = width, height

    def params(self) -> FaceParams:
        expr = torch.sigmoid(self.expr_logit)
        jaw = torch.stack([JAW_OPEN_RAD * expr[:, JAW_OPEN], self.jaw_side, torch.zeros_like(self.jaw_side)], -1)
        return FaceParams(shape=self.shape, expr=expr, jaw=jaw, neck=self.neck, rot=torch.zeros_like(self.neck),
                          trans=self.trans)

    def camera(self) -> Camera:
        return base_camera(self.width, self.height, self.log_focal.exp())


def _huber(residual: Tensor, delta: float) -> Tensor:
    norm = residual.norm(dim=-1)
    return torch.where(norm < delta, 0.5 * norm**2, delta * (norm - 0.5 * delta))


def fit_landmarks(lmk: np.ndarray, blendshapes: np.ndarray, found: np.ndarray, width: int, height: int,
                  cfg: TrackingConfig | None = None, head: HeadModel | None = None,
                  device: str = "cpu") -> tuple[FaceParams, Camera, np.ndarray]:
    """Fit the head model to MediaPipe landmarks of every frame.

    Args:
        lmk: MediaPipe landmarks, x and y in [0, 1] of the frame. [F, 478, 3]
        blendshapes: MediaPipe's blendshape scores in `EXPRESSION_NAMES` order. [F, 52]
        found: frames where the tracker saw the face (others are interpolated and weigh nothing). [F] bool
        width, height: the frames' size in pixels.
        cfg: schedule and weights. head: the head model (default: `default_head_model()`).
    Returns:
        FaceParams of F frames, the camera (focal fitted), and each frame's mean landmark error in pixels. [F]
    """
    cfg = cfg or TrackingConfig()
    head = head if head is not None else default_head_model()
    n_frames = len(lmk)
    if lmk.shape[1:] != (478, 3) or blendshapes.shape != (n_frames, len(EXPRESSION_NAMES)) or len(found) != n_frames:
        raise ReplicaError("fit_landmarks", f"expected lmk [F, 478, 3], blendshapes [F, 52], found [F]; got "
                           f"{list(lmk.shape)}, {list(blendshapes.shape)}, {list(np.shape(found))}")
    if not np.any(found):
        raise ReplicaError("fit_landmarks", "the tracker found no face in any frame")
    points = landmark_head(head).to(device)
    target = torch.as_tensor(lmk[..., :2] * np.array([width, height]), dtype=torch.float32, device=device)
    weight = torch.as_tensor(found, dtype=torch.float32, device=device)
    start = torch.as_tensor(blendshapes, dtype=torch.float32, device=device)
    start[:, EXPRESSION_NAMES.index("tongueOut")] = 0.0
    variables = _Variables(n_frames, head.n_shape, start, width, height).to(device)

    def landmark_loss() -> Tensor:
        pixels, _ = variables.camera().to(device).project(points(variables.params()))
        per_frame = _huber(pixels - target, cfg.huber_px).mean(-1)
        return (per_frame * weight).sum() / weight.sum()

    rigid = torch.optim.Adam([variables.log_focal, variables.neck, variables.trans], lr=cfg.lr)
    for _ in progress_bar(range(cfg.rigid_iterations), desc="track: rigid warm-up"):
        loss = landmark_loss() + cfg.smoothness * _acceleration(variables.neck, variables.trans)
        rigid.zero_grad()
        loss.backward()
        rigid.step()
    others = [p for name, p in variables.named_parameters() if name != "expr_logit"]
    full = torch.optim.Adam([{"params": others}, {"params": [variables.expr_logit], "lr": cfg.lr * cfg.expr_lr_factor}],
                            lr=cfg.lr)
    # Adam at a fixed rate ends wherever its last steps jittered it; a cosine decay lets the fit settle (landmark
    # residual 0.69 → 0.24 px on exact landmarks of a synthetic person)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(full, cfg.iterations, eta_min=cfg.lr * 0.02)
    channel = torch.ones(len(EXPRESSION_NAMES), device=device)
    channel[list(BLINK)] = cfg.blink_weight
    for _ in progress_bar(range(cfg.iterations), desc="track: landmarks"):
        expr = torch.sigmoid(variables.expr_logit)
        loss = (landmark_loss() + cfg.shape_prior * (variables.shape**2).mean()
                + cfg.expr_prior * (expr**2 * channel).sum(-1).mean()
                + cfg.smoothness * (_acceleration(variables.neck, variables.trans) + _velocity(expr * channel.sqrt())))
        full.zero_grad()
        loss.backward()
        full.step()
        decay.step()
    with torch.no_grad():
        params = variables.params()
        camera = variables.camera()
        pixels, _ = camera.to(device).project(points(params))
        residual = (pixels - target).norm(dim=-1).mean(-1)
    detached = FaceParams(*(getattr(params, name).detach().cpu() for name in ("shape", "expr", "jaw", "neck", "rot",
                                                                               "trans")))
    camera = Camera(camera.viewmat.detach().cpu(), camera.K.detach().cpu(), width, height)
    return detached, camera, residual.cpu().numpy()


def _acceleration(*series: Tensor) -> Tensor:
    """Mean squared second difference over time of [F, D] series (0 for fewer than 3 frames)."""
    terms = [((s[2:] - 2 * s[1:-1] + s[:-2]) ** 2).sum(-1).mean() for s in series if len(s) >= 3]
    return torch.stack(terms).sum() * 1e3 if terms else torch.zeros(())


def _velocity(series: Tensor) -> Tensor:
    """Mean squared first difference over time of an [F, D] series."""
    return ((series[1:] - series[:-1]) ** 2).sum(-1).mean() if len(series) >= 2 else torch.zeros(())


def face_laplacian(head: HeadModel) -> torch.Tensor:
    """Uniform graph Laplacian of the face vertices (sparse [468, 468]): x_i minus the mean of its neighbours."""
    faces = head.faces[(head.faces < N_FACE).all(1)]
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = torch.unique(torch.cat([edges, edges.flip(1)]), dim=0)
    degree = torch.bincount(edges[:, 0], minlength=N_FACE).float().clamp_min(1)
    values = -1.0 / degree[edges[:, 0]]
    index = torch.cat([edges.T, torch.arange(N_FACE).repeat(2, 1)], 1)
    # checked in a scope: torch 2.11 warns "invariant checks are implicitly disabled" even for check_invariants=True
    with torch.sparse.check_sparse_tensor_invariants():
        return torch.sparse_coo_tensor(index, torch.cat([values, torch.ones(N_FACE)]), (N_FACE, N_FACE)).coalesce()


def refine_photometric(frames: np.ndarray, params: FaceParams, camera: Camera, cfg: TrackingConfig | None = None,
                       head: HeadModel | None = None, device: str = "cpu") -> tuple[Tensor, Tensor, Tensor, dict]:
    """Refine identity, per-vertex detail and a texture against the pixels of a few key frames.

    Args:
        frames: the video frames, RGB uint8. [F, H, W, 3]
        params: the landmark fit of the F frames. camera: its camera at the frames' size.
    Returns:
        shape [S] (refined identity), detail offsets [V, 3] metres, texture [S', S', 3] in [0, 1], and stats
        ("photometric_l1" before and after).
    """
    cfg = cfg or TrackingConfig()
    head = (head if head is not None else default_head_model()).to(device)
    keys = np.unique(np.linspace(0, len(frames) - 1, min(cfg.photometric_frames, len(frames))).round().astype(int))
    scale = cfg.photometric_size / max(frames.shape[1:3])
    height, width = max(8, round(frames.shape[1] * scale)), max(8, round(frames.shape[2] * scale))
    small = Camera(camera.viewmat, camera.K * torch.tensor([[width / camera.width], [height / camera.height], [1.0]]),
                   width, height).to(device)
    truth = F.interpolate(torch.as_tensor(frames[keys], device=device).permute(0, 3, 1, 2).float() / 255.0,
                          size=(height, width), mode="area").permute(0, 2, 3, 1)
    face_tris = head.faces[(head.part[head.faces] == head.part_names.index("face")).all(1)]
    key_params = FaceParams(params.shape, *(getattr(params, n)[keys] for n in ("expr", "jaw", "neck", "rot", "trans")))
    key_params = key_params.to(device)
    shape = torch.nn.Parameter(key_params.shape.clone())
    detail = torch.nn.Parameter(torch.zeros(N_FACE, 3, device=device))
    texture = torch.nn.Parameter(torch.full((cfg.texture_size, cfg.texture_size, 3), 0.5, device=device))
    laplacian = face_laplacian(head).to(device)
    uv = (head.verts_uvs, head.faces_uvs[(head.part[head.faces] == head.part_names.index("face")).all(1)])
    optimizer = torch.optim.Adam([{"params": [texture], "lr": 0.05}, {"params": [shape], "lr": 0.01},
                                  {"params": [detail], "lr": 1e-4}])

    def photometric(with_grad: bool = True) -> tuple[Tensor, Tensor]:
        posed = head(FaceParams(shape, *(getattr(key_params, n) for n in ("expr", "jaw", "neck", "rot", "trans"))))
        posed = torch.cat([posed[:, :N_FACE] + detail, posed[:, N_FACE:]], 1)
        rgb, alpha = render_soft(posed, face_tris, small, UVTexture(uv[0], uv[1], texture.clamp(0, 1)), sigma=1e-6)
        inside = (alpha > 0.5).float()[..., None]
        l1 = ((rgb - truth).abs() * inside).sum() / (3 * inside.sum()).clamp_min(1)
        return l1, inside

    with torch.no_grad():
        before, _ = photometric()
    for step in progress_bar(range(cfg.photometric_iterations), desc="track: photometric"):
        l1, _ = photometric()
        smooth = torch.sparse.mm(laplacian, detail / 0.01).pow(2).sum(-1).mean()
        loss = (l1 + cfg.photometric_shape_prior * (shape**2).mean() + cfg.detail_laplacian * smooth * 1e-3
                + cfg.detail_size * (detail / 0.01).pow(2).sum(-1).mean() * 1e-3)
        optimizer.zero_grad()
        loss.backward()
        # the texture sees only a few frames; spend its first steps before geometry moves
        if step < cfg.photometric_iterations // 3:
            shape.grad = None
            detail.grad = None
        optimizer.step()
    with torch.no_grad():
        after, _ = photometric()
    full_detail = torch.zeros(head.n_verts, 3, device=device)
    full_detail[:N_FACE] = detail.detach()
    stats = {"photometric_l1_before": round(float(before), 5), "photometric_l1_after": round(float(after), 5),
             "key_frames": len(keys), "size": [width, height]}
    return shape.detach().cpu(), full_detail.cpu(), texture.detach().clamp(0, 1).cpu(), stats


def track(frames: np.ndarray, lmk: np.ndarray, blendshapes: np.ndarray, found: np.ndarray,
          cfg: TrackingConfig | None = None, fps: float = FPS, device: str = "cpu") -> Tracking:
    """Fit every frame of a person's video: landmarks first, then photometric refinement.

    Args:
        frames: the (cropped) video frames, RGB uint8. [F, H, W, 3]
        lmk, blendshapes, found: MediaPipe's track of the same frames (`datasets.faces.track_faces`).
        cfg: schedule and weights. fps: the frames' rate. device: "cpu" or "cuda".
    """
    cfg = cfg or TrackingConfig()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) != len(lmk):
        raise ReplicaError("track", f"expected uint8 frames [F, H, W, 3] matching {len(lmk)} landmark frames, got "
                           f"{frames.dtype} {list(frames.shape)}")
    head = default_head_model()
    started = time.perf_counter()
    params, camera, residual = fit_landmarks(lmk, blendshapes, found, frames.shape[2], frames.shape[1], cfg, head,
                                             device)
    landmark_s = time.perf_counter() - started
    metrics = {"frames": len(frames), "found_fraction": round(float(np.mean(found)), 4),
               "landmark_px_mean": round(float(residual[found].mean()), 3),
               "landmark_px_median": round(float(np.median(residual[found])), 3),
               "focal_px": round(float(camera.K[0, 0]), 1), "landmark_seconds": round(landmark_s, 1),
               "landmark_frames_per_s": round(len(frames) / max(landmark_s, 1e-9), 1)}
    texture = torch.full((cfg.texture_size, cfg.texture_size, 3), 0.5)
    detail = torch.zeros(head.n_verts, 3)
    if cfg.photometric_iterations:
        started = time.perf_counter()
        shape, detail, texture, stats = refine_photometric(frames, params, camera, cfg, head, device)
        params = FaceParams(shape, params.expr, params.jaw, params.neck, params.rot, params.trans)
        metrics.update(stats, photometric_seconds=round(time.perf_counter() - started, 1))
    extras = {"lmk": lmk.astype(np.float32), "residual_px": residual.astype(np.float32)}
    return Tracking(PersonParams(params, camera, fps, extras), texture.numpy(), detail.numpy(), metrics)


def overlay(frame: np.ndarray, verts: Tensor, faces: Tensor, camera: Camera) -> np.ndarray:
    """The frame with the fitted mesh's face edges drawn on it in green. frame uint8 [H, W, 3], verts [V, 3]."""
    from skimage.draw import line

    pixels, depth = camera.project(verts)
    out = frame.copy()
    tris = faces[(faces < N_FACE).all(1)].numpy()
    points = pixels.detach().numpy()
    h, w = frame.shape[:2]
    for a, b in {tuple(sorted(e)) for t in tris for e in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}:
        rr, cc = line(int(points[a, 1]), int(points[a, 0]), int(points[b, 1]), int(points[b, 0]))
        keep = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        out[rr[keep], cc[keep]] = (0.5 * out[rr[keep], cc[keep]] + np.array([0, 127, 0])).astype(np.uint8)
    return out


def contact_sheet(frames: np.ndarray, tracking: Tracking, rows: int = 4) -> np.ndarray:
    """frame | fitted mesh overlay | textured render, for `rows` evenly spread frames, drawn at least 256 px tall
    (small frames are enlarged first so the mesh stays readable). uint8 [H'·rows, 3W', 3]"""
    head = default_head_model()
    person = tracking.person
    zoom = max(1, 256 // frames.shape[1])
    frames = frames.repeat(zoom, axis=1).repeat(zoom, axis=2) if zoom > 1 else frames
    camera = Camera(person.camera.viewmat, person.camera.K * torch.tensor([[zoom], [zoom], [1.0]]),
                    person.camera.width * zoom, person.camera.height * zoom)
    picks = np.unique(np.linspace(0, len(frames) - 1, min(rows, len(frames))).round().astype(int))
    params = FaceParams(person.params.shape, *(getattr(person.params, n)[picks]
                                               for n in ("expr", "jaw", "neck", "rot", "trans")))
    with torch.no_grad():
        verts = head(params) + torch.as_tensor(tracking.detail)
        face_tris = head.faces[(head.part[head.faces] == head.part_names.index("face")).all(1)]
        texture = UVTexture(head.verts_uvs, head.faces_uvs[(head.part[head.faces] == head.part_names.index("face")).all(1)],
                            torch.as_tensor(tracking.texture))
        rgb, alpha = render_soft(verts, face_tris, camera, texture, sigma=1e-7)
    renders = (rgb * alpha[..., None] * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    lines = [np.concatenate([frames[i], overlay(frames[i], verts[k], head.faces, camera), renders[k]], 1)
             for k, i in enumerate(picks)]
    return np.concatenate(lines, 0)
