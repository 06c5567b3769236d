"""Fit a Gaussian avatar to one person's video frames, their per-frame head parameters and camera.

The loop reads top to bottom: initialise Gaussians on the mesh (colours from the frames where their
triangle is visible), then per iteration pick a frame, pose the mesh (optionally with learned per-frame
corrections), splat, composite over the background plate and minimise

    (1 − λ)·L1 + λ·(1 − SSIM) + λ_mask·|alpha − silhouette| + λ_binding·(drift + size) + λ_params·|Δparams|²

with adaptive density control (`render.densify`) on a schedule. The head model's silhouette (the head's mesh
renderer, `foundation.head.rasterize`) supplies the alpha target and, over frames where the head has moved,
the static background plate behind the person.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from datasets.errors import ReplicaError
from datasets.progress import progress_bar
from foundation.camera import Camera
from foundation.head import FaceParams, HeadModel, default_head_model, rasterize
from render.avatar import Avatar, AvatarConfig, head_fingerprint
from render.binding import triangle_frames
from render.densify import PARAMETERS, densify_and_prune
from render.losses import photometric_loss, silhouette_loss
from render.sh import rgb_to_sh

INIT_OPACITY = 0.7
"""Initial opacity: the Gaussians start as a mostly opaque skin over the mesh, so the first renders
already look like the person and the loss works on detail rather than on coverage."""
INIT_THICKNESS = 0.3
"""Initial scale along the triangle normal, relative to the in-plane scale (Gaussians start as discs)."""
PLATE_FRAMES = 64
"""Frames (evenly spread) whose uncovered pixels form the background plate."""
COLOR_FRAMES = 8
"""Frames (evenly spread) whose visible pixels set the initial colours."""
_CORRECTED = ("expr", "jaw", "neck", "rot", "trans")


def train_avatar(
    frames: np.ndarray | Tensor,
    pose: FaceParams | Tensor,
    cameras: Camera | list[Camera],
    config: AvatarConfig,
    *,
    head: HeadModel | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Avatar:
    """Train an avatar on F frames of one person.

    Args:
        frames: video frames, RGB uint8. [F, H, W, 3]
        pose: the person's FaceParams for the F frames (enables `config.refine_params`), or posed
            head-model vertices, world metres. [F, V, 3]
        cameras: one camera for all frames or one per frame; image size must equal the frames'.
        config: initialisation, schedule, loss weights, density control, backend.
        head: the head model the poses belong to (default: `default_head_model()`); it supplies the triangles.
        device: where to train ("cuda" with backend gsplat/auto for the GPU path).
        progress: show a tqdm bar with the loss and the Gaussian count.
    Returns:
        the trained avatar (on `device`, eval mode); `avatar.history` holds "loss" per iteration and
        "n_gaussians", "densify" per density-control step.
    """
    head = (head if head is not None else default_head_model()).to(device)
    frames = _check_frames(frames)
    n_frames, height, width = frames.shape[:3]
    cams = _check_cameras(cameras, n_frames, width, height, device)
    verts = _posed(head, pose, n_frames, device)
    torch.manual_seed(config.seed)

    coverage = _Coverage(verts, head.faces, cams)
    background = _background_plate(frames, coverage, device)
    avatar = _initial_avatar(frames, verts, head, coverage, background, config).to(device)
    optimizer = torch.optim.Adam(
        [{"params": [getattr(avatar, name)], "name": name, "lr": lr} for name, lr in zip(PARAMETERS, (
            config.lr_offset, config.lr_scale, config.lr_rotation, config.lr_opacity, config.lr_color,
            config.lr_color / 20))],
        eps=1e-15,
    )  # fmt: skip
    corrections = _Corrections(pose, config, device) if config.refine_params and isinstance(pose, FaceParams) else None

    history: dict[str, list] = {"loss": [], "n_gaussians": [avatar.n_gaussians], "densify": []}
    grad_sum = torch.zeros(avatar.n_gaussians, device=device)
    seen = torch.zeros(avatar.n_gaussians, device=device)
    gen = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(n_frames, generator=gen)
    bar = progress_bar(range(config.iterations), desc="avatar", disable=not progress)
    for step in bar:
        if step and step % n_frames == 0:
            order = torch.randperm(n_frames, generator=gen)
        index = int(order[step % n_frames])
        # Offsets' learning rate decays 100× over training, as positions do in 3DGS.
        optimizer.param_groups[0]["lr"] = config.lr_offset * 0.01 ** (step / max(1, config.iterations - 1))
        posed = corrections.verts(head, index) if corrections else verts[index]
        truth = torch.as_tensor(frames[index], device=device).float() / 255.0
        image, alpha, info = avatar.splat(posed, cams[index], config.backend)
        info["means2d"].retain_grad()
        loss = photometric_loss(image, truth, config.lambda_dssim)
        loss = loss + config.lambda_mask * silhouette_loss(alpha, coverage.silhouette(index))
        loss = loss + config.lambda_binding * _binding_penalty(avatar, config)
        if corrections:
            loss = loss + config.lambda_params * corrections.penalty(index)
        optimizer.zero_grad(set_to_none=True)
        if corrections:
            corrections.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _accumulate(info, grad_sum, seen, width, height)
        optimizer.step()
        if corrections:
            corrections.optimizer.step()
        history["loss"].append(float(loss.detach()))

        if config.densify_from <= step < config.densify_until and (step + 1) % config.densify_every == 0:
            counts = densify_and_prune(
                avatar, optimizer, grad_sum, seen, grow_grad=config.grow_grad, split_scale=config.split_scale,
                prune_opacity=config.prune_opacity, prune_scale=config.prune_scale,
                max_gaussians=config.max_gaussians,
            )  # fmt: skip
            history["densify"].append({"step": step + 1, **counts})
            history["n_gaussians"].append(avatar.n_gaussians)
            grad_sum = torch.zeros(avatar.n_gaussians, device=device)
            seen = torch.zeros(avatar.n_gaussians, device=device)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", gaussians=avatar.n_gaussians)
    if corrections:
        history["param_correction_rms"] = corrections.rms()
    avatar.history = history
    avatar.camera = cams[0].to("cpu")
    return avatar.eval()


def _check_frames(frames: np.ndarray | Tensor) -> np.ndarray:
    frames = frames.cpu().numpy() if isinstance(frames, Tensor) else np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ReplicaError("frames", f"expected uint8 [F, H, W, 3] with F >= 1, got {frames.dtype} {list(frames.shape)}")
    return frames


def _check_cameras(cameras: Camera | list[Camera], n_frames: int, width: int, height: int, device) -> list[Camera]:
    cams = list(cameras) if isinstance(cameras, (list, tuple)) else [cameras] * n_frames
    if len(cams) != n_frames:
        raise ReplicaError("cameras", f"{len(cams)} cameras for {n_frames} frames (give one, or one per frame)")
    if any((cam.width, cam.height) != (width, height) for cam in cams):
        raise ReplicaError("cameras", f"image size {cams[0].width}x{cams[0].height} differs from the frames' "
                           f"{width}x{height}")
    return [cam.to(device) for cam in cams]


@torch.no_grad()
def _posed(head: HeadModel, pose: FaceParams | Tensor, n_frames: int, device) -> Tensor:
    """Posed vertices for every frame. [F, V, 3]"""
    if isinstance(pose, FaceParams):
        if pose.n_frames != n_frames:
            raise ReplicaError("params", f"{pose.n_frames} frames of parameters for {n_frames} video frames")
        return torch.cat([head(select_frames(pose.to(device), torch.arange(i, min(i + 256, n_frames))))
                          for i in range(0, n_frames, 256)])
    if pose.ndim != 3 or tuple(pose.shape[:1]) + tuple(pose.shape[2:]) != (n_frames, 3) or pose.shape[1] != head.n_verts:
        raise ReplicaError("vertices", f"expected [{n_frames}, {head.n_verts}, 3], got {list(pose.shape)}")
    return pose.to(device).float()


def select_frames(params: FaceParams, index: Tensor) -> FaceParams:
    """The rows `index` of per-frame parameters (a shared identity stays shared)."""
    shape = params.shape[index] if params.shape.dim() == 2 else params.shape
    return FaceParams(shape, *(getattr(params, name)[index] for name in _CORRECTED))


class _Coverage:
    """Per-frame triangle ids from mesh rasterization, computed when a frame is first needed."""

    def __init__(self, verts: Tensor, faces: Tensor, cameras: list[Camera]):
        self.verts, self.faces, self.cameras = verts, faces, cameras
        self._face_ids: dict[int, Tensor] = {}

    def face_ids(self, index: int) -> Tensor:
        """Triangle covering each pixel, -1 for none (long). [H, W]"""
        if index not in self._face_ids:
            fragments = rasterize(self.verts[index:index + 1], self.faces, self.cameras[index], cull_backfaces=False)
            self._face_ids[index] = fragments.face_ids[0]
        return self._face_ids[index]

    def silhouette(self, index: int) -> Tensor:
        """1 where the mesh covers the pixel. [H, W]"""
        return (self.face_ids(index) >= 0).float()


def _spread(n_frames: int, count: int) -> list[int]:
    return sorted(set(np.linspace(0, n_frames - 1, min(count, n_frames)).round().astype(int).tolist()))


def _background_plate(frames: np.ndarray, coverage: _Coverage, device) -> Tensor:
    """Per-pixel median of the frames where the mesh leaves the pixel uncovered. [H, W, 3] in [0, 1]

    Pixels the head covers in every sampled frame get the median of all uncovered pixels (or black).
    """
    indices = _spread(len(frames), PLATE_FRAMES)
    pixels = torch.as_tensor(frames[indices], device=device).float() / 255.0
    covered = torch.stack([coverage.face_ids(i) >= 0 for i in indices])[..., None].expand_as(pixels)
    masked = torch.where(covered, torch.full_like(pixels, float("nan")), pixels)
    plate = masked.nanmedian(dim=0).values
    uncovered = masked[~covered]
    fill = uncovered.reshape(-1, 3).median(dim=0).values if uncovered.numel() else torch.zeros(3, device=device)
    return torch.where(plate.isnan(), fill.expand_as(plate), plate)


def _initial_avatar(frames: np.ndarray, verts: Tensor, head: HeadModel, coverage: _Coverage, background: Tensor,
                    config: AvatarConfig) -> Avatar:
    """Gaussians at random points of every triangle, coloured from the frames that show the triangle."""
    faces = head.faces
    n_tris = faces.shape[0]
    gen = torch.Generator().manual_seed(config.seed)
    parents = torch.arange(n_tris).repeat_interleave(config.init_per_triangle)
    avatar = Avatar(faces.cpu(), parents, config.sh_degree, background.cpu(), head_fingerprint(head))

    barys = -torch.rand(len(parents), 3, generator=gen).log()  # uniform on the triangle (Dirichlet(1, 1, 1))
    barys = barys / barys.sum(-1, keepdim=True)
    rest = verts[0].cpu()
    corners = rest[faces.cpu()[parents]]  # [N, 3, 3]
    points = (barys[..., None] * corners).sum(1)
    centroids, rotations, sizes = (t[parents] for t in triangle_frames(rest, faces.cpu()))
    # With k Gaussians per triangle each covers 1/k of its area: σ shrinks with sqrt(k).
    spread = 0.5 / config.init_per_triangle**0.5
    with torch.no_grad():
        avatar.offsets.copy_((rotations.transpose(-1, -2) @ (points - centroids)[..., None])[..., 0] / sizes[:, None])
        avatar.log_scales.copy_(torch.tensor([spread, spread, spread * INIT_THICKNESS]).log().expand(len(parents), 3))
        avatar.opacity_logits.fill_(float(torch.logit(torch.tensor(INIT_OPACITY))))
        avatar.sh_dc.copy_(rgb_to_sh(_triangle_colors(frames, coverage, n_tris)[parents])[:, None, :])
    return avatar


def _triangle_colors(frames: np.ndarray, coverage: _Coverage, n_tris: int) -> Tensor:
    """Mean colour of the pixels each triangle covers in a few frames; unseen triangles get the overall mean. [T, 3]"""
    total, count = torch.zeros(n_tris, 3), torch.zeros(n_tris)
    for index in _spread(len(frames), COLOR_FRAMES):
        ids = coverage.face_ids(index).cpu().reshape(-1)
        colors = torch.as_tensor(frames[index]).reshape(-1, 3).float() / 255.0
        hit = ids >= 0
        total.index_add_(0, ids[hit], colors[hit])
        count.index_add_(0, ids[hit], torch.ones(int(hit.sum())))
    mean = total.sum(0) / count.sum().clamp_min(1)
    return torch.where(count[:, None] > 0, total / count.clamp_min(1)[:, None], mean)


def _binding_penalty(avatar: Avatar, config: AvatarConfig) -> Tensor:
    """GaussianAvatars' position and scale regularisers: drift past `binding_offset`, size past `binding_scale`."""
    drift = (avatar.offsets.norm(dim=-1) - config.binding_offset).clamp_min(0).mean()
    size = (avatar.log_scales.exp() - config.binding_scale).clamp_min(0).mean()
    return drift + size


def _accumulate(info: dict, grad_sum: Tensor, seen: Tensor, width: int, height: int) -> None:
    """Add this step's NDC-space `means2d` gradient norms of visible Gaussians (gsplat's normalisation)."""
    grad = info["means2d"].grad
    if grad is None:
        return
    grad = grad[0] * torch.tensor([width / 2.0, height / 2.0], device=grad.device)
    radii = info["radii"][0]
    visible = (radii > 0).all(-1) if radii.ndim == 2 else radii > 0
    grad_sum += torch.where(visible, grad.norm(dim=-1), torch.zeros_like(grad_sum))
    seen += visible.float()


class _Corrections:
    """Learnable per-frame offsets to expr, jaw, neck, rot and trans (joint refinement of the tracking)."""

    def __init__(self, params: FaceParams, config: AvatarConfig, device):
        self.params = params.to(device)
        self.deltas = {name: torch.zeros_like(getattr(self.params, name), requires_grad=True) for name in _CORRECTED}
        self.optimizer = torch.optim.Adam(list(self.deltas.values()), lr=config.lr_params)

    def verts(self, head: HeadModel, index: int) -> Tensor:
        """Posed vertices of frame `index` with its corrections. [V, 3]"""
        rows = slice(index, index + 1)
        shape = self.params.shape[rows] if self.params.shape.dim() == 2 else self.params.shape
        corrected = FaceParams(shape, *(getattr(self.params, n)[rows] + self.deltas[n][rows] for n in _CORRECTED))
        return head(corrected)[0]

    def penalty(self, index: int) -> Tensor:
        return sum((delta[index] ** 2).sum() for delta in self.deltas.values())

    def rms(self) -> dict[str, float]:
        return {name: float(delta.detach().pow(2).mean().sqrt()) for name, delta in self.deltas.items()}
