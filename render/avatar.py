"""A person's Gaussian-splat avatar: 3D Gaussians bound to the head model's triangles (GaussianAvatars).

Every Gaussian belongs to one triangle and is stored in that triangle's frame (`render.binding`), so any
expression, jaw or head pose the head model produces moves it; colour is view-dependent (SH). An avatar
is a plain `nn.Module` holding those Gaussians, the background plate it was filmed against and, once
trained, an optional 2D refiner (`render.refine`); it is fitted by `render.avatar_train.train_avatar`
and stored as one file at a storage URL:

    avatar = train_avatar(frames, params, camera, cfg.avatar)
    image = render(avatar, params_of_one_frame, camera)      # [H, W, 3] in [0, 1]
    video = render_frames(avatar, params, camera)            # [F, H, W, 3]
    avatar.save("s3://bucket/replicas/ann/avatar.pt"); Avatar.load(...)

The file records a fingerprint of the head model it was bound to, so rendering from parameters with a
different head model is refused instead of producing a scrambled face.
"""

from __future__ import annotations

import hashlib
import io
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from datasets import storage
from datasets.config import Section
from datasets.errors import ReplicaError
from foundation.camera import Camera
from foundation.head import FaceParams, HeadModel, default_head_model
from render.binding import bind_to_triangles
from render.raster import rasterize
from render.refine import Refiner, RefineConfig, refine_frames
from render.sh import num_sh_bases

FORMAT_VERSION = 1
"""Version of the avatar file layout written by `Avatar.save`."""


class AvatarConfig(Section):
    """How a Gaussian avatar is initialised, trained and rendered."""

    image_size: int = Field(256, ge=16)
    """Frames are read with their longer side scaled to this many pixels (the camera is scaled to match)."""
    sh_degree: int = Field(1, ge=0, le=3)
    """Spherical-harmonics degree of the view-dependent colour (0 = flat colour per Gaussian)."""
    init_per_triangle: int = Field(1, ge=1)
    """Gaussians placed on every triangle at initialisation (random barycentric points)."""
    max_gaussians: int = Field(100_000, ge=1)
    """Budget: densification never grows the avatar past this many Gaussians."""
    iterations: int = Field(30_000, ge=1)
    """Optimisation steps (one training frame each)."""
    lr_offset: float = Field(5e-3, gt=0)
    """Adam learning rate of Gaussian offsets, in units of the parent triangle's size."""
    lr_scale: float = Field(1.7e-2, gt=0)
    """Adam learning rate of log scales (triangle units)."""
    lr_rotation: float = Field(1e-3, gt=0)
    """Adam learning rate of the local rotation quaternions."""
    lr_opacity: float = Field(5e-2, gt=0)
    """Adam learning rate of opacity logits."""
    lr_color: float = Field(2.5e-3, gt=0)
    """Adam learning rate of the SH DC coefficients (higher bands use a twentieth of it)."""
    lr_params: float = Field(1e-3, gt=0)
    """Adam learning rate of the per-frame parameter corrections (`refine_params`)."""
    lambda_dssim: float = Field(0.2, ge=0, le=1)
    """Weight λ of the structural term: loss = (1 − λ)·L1 + λ·(1 − SSIM)."""
    lambda_mask: float = Field(0.1, ge=0)
    """Weight of |alpha − head-model silhouette|, which keeps Gaussians off the background."""
    lambda_binding: float = Field(1.0, ge=0)
    """Weight of the penalty on Gaussians drifting more than `binding_offset` or growing past
    `binding_scale` triangle units (keeps them on their triangle so new expressions move them right)."""
    binding_offset: float = Field(1.0, gt=0)
    """Offsets beyond this many triangle sizes are penalised."""
    binding_scale: float = Field(0.6, gt=0)
    """Scales beyond this many triangle sizes are penalised."""
    lambda_params: float = Field(1.0, ge=0)
    """Weight of the squared size of the per-frame parameter corrections."""
    refine_params: bool = False
    """Jointly learn small per-frame corrections to expr, jaw, neck and pose (needs FaceParams)."""
    densify_from: int = Field(500, ge=0)
    """First iteration at which Gaussians are densified and pruned."""
    densify_until: int = Field(15_000, ge=0)
    """No densification or pruning after this iteration."""
    densify_every: int = Field(100, ge=1)
    """Iterations between densification steps."""
    grow_grad: float = Field(2e-4, gt=0)
    """Gaussians whose mean screen-space (NDC) gradient of their centre exceeds this are cloned or split."""
    split_scale: float = Field(1.0, gt=0)
    """Growing Gaussians larger than this (triangle units) are split in two, smaller ones cloned."""
    prune_opacity: float = Field(5e-3, gt=0, lt=1)
    """Gaussians less opaque than this are removed."""
    prune_scale: float = Field(4.0, gt=0)
    """Gaussians larger than this many triangle sizes are removed."""
    holdout_fraction: float = Field(0.2, ge=0, lt=1)
    """The last fraction of a video's frames is held out of training for evaluation."""
    backend: Literal["auto", "torch", "gsplat", "reference"] = "auto"
    """Rasterizer backend (`render.raster`): auto is gsplat on CUDA, the torch rasterizer on CPU."""
    seed: int = 0
    """Seed of the initial sampling and the frame order."""


class Avatar(nn.Module):
    """Gaussians bound to a head mesh, plus the background plate they are composited over.

    Parameters (N Gaussians, K = (sh_degree + 1)² SH coefficients):
        offsets: centre in the parent triangle's frame, triangle units. [N, 3]
        log_scales: log standard deviations, triangle units. [N, 3]
        quats: rotation relative to the parent frame (w, x, y, z), any norm. [N, 4]
        opacity_logits: logit of the peak opacity. [N]
        sh_dc: DC SH coefficient per channel (`render.sh` convention, 0 = mid-grey). [N, 1, 3]
        sh_rest: higher-band SH coefficients. [N, K - 1, 3]
    Buffers:
        parents: triangle each Gaussian is bound to (long). [N]
        faces: the head model's triangles (long). [T, 3]
        background: the static background behind the person, RGB in [0, 1]. [H, W, 3]
    Attributes:
        head_fingerprint: `head_fingerprint()` of the head model the avatar was trained with.
        history: the training log ("loss" per iteration, "n_gaussians" per densification step, ...).
        camera: the camera of the training video (the default for rendering new parameters), or None.
        refiner: the 2D refiner (`render.refine.Refiner`) applied after splatting, or None.
    """

    def __init__(self, faces: Tensor, parents: Tensor, sh_degree: int, background: Tensor, head_fingerprint: str):
        super().__init__()
        n_gauss = parents.shape[0]
        self.sh_degree = sh_degree
        self.head_fingerprint = head_fingerprint
        self.history: dict[str, list] = {}
        self.camera: Camera | None = None
        self.refiner: Refiner | None = None
        self.register_buffer("faces", faces.long())
        self.register_buffer("parents", parents.long())
        self.register_buffer("background", background.float())
        self.offsets = nn.Parameter(torch.zeros(n_gauss, 3))
        self.log_scales = nn.Parameter(torch.zeros(n_gauss, 3))
        self.quats = nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n_gauss, 1))
        self.opacity_logits = nn.Parameter(torch.zeros(n_gauss))
        self.sh_dc = nn.Parameter(torch.zeros(n_gauss, 1, 3))
        self.sh_rest = nn.Parameter(torch.zeros(n_gauss, num_sh_bases(sh_degree) - 1, 3))

    @property
    def n_gaussians(self) -> int:
        return self.parents.shape[0]

    def gaussians(self, verts: Tensor) -> dict[str, Tensor]:
        """The Gaussians in world space for one posed mesh, as `render.raster.rasterize` arguments.

        Args:
            verts: posed head-model vertices, world metres. [V, 3]
        Returns:
            "means" [N, 3] metres, "quats" [N, 4], "scales" [N, 3] metres, "opacities" [N] in [0, 1],
            "colors" SH coefficients [N, K, 3].
        """
        means, quats, scales = bind_to_triangles(
            verts, self.faces, self.parents, self.offsets, self.quats, self.log_scales.exp()
        )
        colors = torch.cat([self.sh_dc, self.sh_rest], dim=1)
        return {"means": means, "quats": quats, "scales": scales, "opacities": torch.sigmoid(self.opacity_logits),
                "colors": colors}

    def splat(self, verts: Tensor, camera: Camera, backend: str = "auto") -> tuple[Tensor, Tensor, dict]:
        """Rasterize the avatar posed as `verts` and composite it over the background plate.

        Args:
            verts: posed head-model vertices, world metres. [V, 3]
            camera: the pinhole camera (image size from it).
            backend: `render.raster` backend.
        Returns:
            image: RGB in [0, 1]. [H, W, 3]; alpha: coverage in [0, 1]. [H, W, 1];
            info: the rasterizer's info (per-camera "means2d", "radii", ...).
        """
        camera = camera.to(verts.device)
        colors, alphas, info = rasterize(
            **self.gaussians(verts), viewmats=camera.viewmat[None], Ks=camera.K[None], width=camera.width,
            height=camera.height, sh_degree=self.sh_degree, backend=backend,
        )  # fmt: skip
        background = self.background_at(camera.width, camera.height)
        return colors[0] + (1.0 - alphas[0]) * background, alphas[0], info

    def background_at(self, width: int, height: int) -> Tensor:
        """The background plate resized (bilinear) to `width`×`height`. [H, W, 3]"""
        if tuple(self.background.shape[:2]) == (height, width):
            return self.background
        plate = F.interpolate(self.background.permute(2, 0, 1)[None], size=(height, width), mode="bilinear",
                              align_corners=False)
        return plate[0].permute(1, 2, 0)

    def save(self, url: str) -> None:
        """Write the avatar (Gaussians, background, head fingerprint, training log, refiner) as one file."""
        payload = {
            "format_version": FORMAT_VERSION,
            "sh_degree": self.sh_degree,
            "head_fingerprint": self.head_fingerprint,
            "history": self.history,
            "camera": None if self.camera is None else {
                "viewmat": self.camera.viewmat.detach().cpu(), "K": self.camera.K.detach().cpu(),
                "width": self.camera.width, "height": self.camera.height,
            },
            "state": {k: v.detach().cpu() for k, v in self.state_dict().items() if not k.startswith("refiner.")},
            "refiner": None if self.refiner is None else {
                "config": self.refiner.config.model_dump(),
                "state": {k: v.detach().cpu() for k, v in self.refiner.state_dict().items()},
            },
        }  # fmt: skip
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        storage.write_bytes(url, buffer.getvalue())

    @classmethod
    def load(cls, url: str, device: torch.device | str = "cpu") -> Avatar:
        """Read an avatar written by `save` (any storage URL)."""
        try:
            payload = torch.load(io.BytesIO(storage.read_bytes(url)), map_location=device, weights_only=True)
        except ReplicaError:
            raise
        except Exception as err:  # the unpickler fails in many ways on foreign bytes; all mean "not ours"
            reason = (str(err).splitlines() or [type(err).__name__])[0][:120]
            raise ReplicaError(url, f"not an avatar file ({reason})") from err
        if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
            raise ReplicaError(url, f"not an avatar file of format version {FORMAT_VERSION}")
        state = payload["state"]
        avatar = cls(state["faces"], state["parents"], payload["sh_degree"], state["background"],
                     payload["head_fingerprint"])
        avatar.load_state_dict(state)
        avatar.history = payload["history"]
        if payload.get("camera") is not None:
            avatar.camera = Camera(**payload["camera"])
        if payload["refiner"] is not None:
            avatar.refiner = Refiner(RefineConfig(**payload["refiner"]["config"]))
            avatar.refiner.load_state_dict(payload["refiner"]["state"])
        return avatar.to(device)


def head_fingerprint(head: HeadModel) -> str:
    """A short hash of the head model's topology and deformation (template, triangles, bases, skinning)."""
    digest = hashlib.sha256()
    for name in ("template", "faces", "shape_basis", "expr_basis", "joint_positions", "skin_weights"):
        digest.update(getattr(head, name).detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def posed_vertices(avatar: Avatar, pose: FaceParams | Tensor, head: HeadModel | None = None) -> Tensor:
    """Vertices for `pose`: given vertices pass through, FaceParams go through the head model.

    Args:
        avatar: the avatar (its head fingerprint is checked against `head`).
        pose: FaceParams of F frames, or posed vertices [F, V, 3] / [V, 3] (world metres).
        head: the head model the avatar was trained with (default: `default_head_model()`).
    Returns:
        posed vertices, world metres, on the avatar's device. [F, V, 3]
    """
    device = avatar.faces.device
    if isinstance(pose, Tensor):
        verts = pose[None] if pose.ndim == 2 else pose
        if verts.ndim != 3 or verts.shape[-1] != 3 or int(avatar.faces.max()) >= verts.shape[1]:
            raise ReplicaError("vertices", f"expected [F, V, 3] of the avatar's head mesh, got {list(pose.shape)}")
        return verts.to(device)
    head = head if head is not None else default_head_model()
    if head_fingerprint(head) != avatar.head_fingerprint:
        raise ReplicaError("head model", "differs from the one this avatar was trained with")
    with torch.no_grad():
        return head.to(device)(pose.to(device))


def render(avatar: Avatar, pose: FaceParams | Tensor, camera: Camera, *, head: HeadModel | None = None,
           backend: str = "auto") -> Tensor:
    """Render one frame of the avatar (splats over the background; no refiner). Differentiable.

    Args:
        avatar: a trained avatar.
        pose: FaceParams of one frame, or posed head-model vertices (world metres). [V, 3] or [1, V, 3]
        camera: the pinhole camera (image size from it).
        head: the head model for FaceParams (default: `default_head_model()`).
        backend: `render.raster` backend.
    Returns:
        RGB image in [0, 1]. [H, W, 3]
    """
    verts = posed_vertices(avatar, pose, head)
    if verts.shape[0] != 1:
        raise ReplicaError("render", f"renders one frame, got {verts.shape[0]}; use render_frames")
    return avatar.splat(verts[0], camera, backend)[0]


@torch.no_grad()
def render_frames(avatar: Avatar, pose: FaceParams | Tensor, cameras: Camera | list[Camera], *,
                  head: HeadModel | None = None, backend: str = "auto", refine: bool = True) -> Tensor:
    """Render a sequence: splat every frame, then (if the avatar has one and `refine`) run the refiner.

    Args:
        avatar: a trained avatar.
        pose: FaceParams of F frames, or posed vertices [F, V, 3] (world metres).
        cameras: one camera for all frames or one per frame.
        head: the head model for FaceParams (default: `default_head_model()`).
        backend: `render.raster` backend.
        refine: apply `avatar.refiner` when present.
    Returns:
        RGB frames in [0, 1]. [F, H, W, 3]
    """
    verts = posed_vertices(avatar, pose, head)
    cams = cameras if isinstance(cameras, list) else [cameras] * verts.shape[0]
    if len(cams) != verts.shape[0]:
        raise ReplicaError("cameras", f"{len(cams)} cameras for {verts.shape[0]} frames")
    frames = torch.stack([avatar.splat(v, cam, backend)[0] for v, cam in zip(verts, cams)])
    if refine and avatar.refiner is not None:
        frames = refine_frames(avatar.refiner, frames)
    return frames.clamp(0.0, 1.0)
