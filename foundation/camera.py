"""A pinhole camera in the gsplat / OpenCV convention, shared by tracking, rendering and the synthetic world.

World frame: metres, y up, the face looks toward +z. Camera frame: x right, y down, z forward (OpenCV),
so a point in front of the camera has positive depth. `viewmat` maps world to camera homogeneous
coordinates and `K` maps camera coordinates to pixels, exactly the two matrices `gsplat.rasterization`
takes, so a `Camera` can be handed to any renderer without conversion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from datasets.errors import ReplicaError


@dataclass
class Camera:
    """One pinhole camera.

    Fields:
        viewmat: world→camera rigid transform. [4, 4] float32 (rotation, translation in metres).
        K: pixel intrinsics [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]. [3, 3] float32 (pixels).
        width: image width in pixels.
        height: image height in pixels.
    """

    viewmat: Tensor
    K: Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        if tuple(self.viewmat.shape) != (4, 4):
            raise ReplicaError("Camera.viewmat", f"expected shape [4, 4], got {list(self.viewmat.shape)}")
        if tuple(self.K.shape) != (3, 3):
            raise ReplicaError("Camera.K", f"expected shape [3, 3], got {list(self.K.shape)}")
        if self.width <= 0 or self.height <= 0:
            raise ReplicaError("Camera", f"image size must be positive, got {self.width}x{self.height}")
        self.width, self.height = int(self.width), int(self.height)

    @classmethod
    def look_at(
        cls,
        eye: Tensor | tuple[float, float, float],
        target: Tensor | tuple[float, float, float] = (0.0, 0.0, 0.0),
        up: Tensor | tuple[float, float, float] = (0.0, 1.0, 0.0),
        fov_deg: float = 20.0,
        width: int = 512,
        height: int = 512,
    ) -> Camera:
        """A camera at `eye` looking at `target`.

        Args:
            eye: camera centre, world metres. [3]
            target: the point imaged at the principal point, world metres. [3]
            up: world direction that appears upward in the image. [3] (need not be unit length)
            fov_deg: vertical field of view in degrees; square pixels, principal point at the image centre.
            width, height: image size in pixels.
        """
        eye_t = torch.as_tensor(eye, dtype=torch.float32)
        forward = torch.as_tensor(target, dtype=torch.float32) - eye_t
        if float(forward.norm()) < 1e-9:
            raise ReplicaError("Camera.look_at", "eye and target coincide")
        forward = forward / forward.norm()
        right = torch.linalg.cross(forward, torch.as_tensor(up, dtype=torch.float32))
        if float(right.norm()) < 1e-9:
            raise ReplicaError("Camera.look_at", "up is parallel to the viewing direction")
        right = right / right.norm()
        # Camera y points down in the image (OpenCV), hence forward × right rather than the world up.
        down = torch.linalg.cross(forward, right)
        rotation = torch.stack([right, down, forward])
        viewmat = torch.eye(4)
        viewmat[:3, :3] = rotation
        viewmat[:3, 3] = -rotation @ eye_t
        if not 0.0 < fov_deg < 180.0:
            raise ReplicaError("Camera.look_at", f"fov_deg must be in (0, 180), got {fov_deg}")
        focal = 0.5 * height / math.tan(math.radians(fov_deg) / 2.0)
        K = torch.tensor([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
        return cls(viewmat=viewmat, K=K, width=width, height=height)

    @property
    def center(self) -> Tensor:
        """Camera centre in world metres. [3]"""
        rotation, translation = self.viewmat[:3, :3], self.viewmat[:3, 3]
        return -rotation.T @ translation

    def world_to_camera(self, points: Tensor) -> Tensor:
        """Points in the camera frame.

        Args:
            points: world metres. [..., 3]
        Returns:
            camera-frame metres (x right, y down, z forward). [..., 3]
        """
        rotation, translation = self.viewmat[:3, :3], self.viewmat[:3, 3]
        return points @ rotation.T.to(points) + translation.to(points)

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Pixel positions and depths of world points (differentiable in `points` and the camera).

        Args:
            points: world metres. [..., 3]
        Returns:
            pixels: (u, v) with u to the right, v down; pixel (0, 0)'s centre is at (0.5, 0.5). [..., 2]
            depth: camera-frame z in metres; <= 0 means behind the camera (pixels are then meaningless). [...]
        """
        if points.shape[-1] != 3:
            raise ReplicaError("Camera.project", f"points must end in 3 coordinates, got {list(points.shape)}")
        cam = self.world_to_camera(points)
        depth = cam[..., 2]
        # Clamping keeps gradients finite for points at the camera plane; callers mask them by depth anyway.
        safe = torch.where(depth.abs() < 1e-9, torch.full_like(depth, 1e-9), depth)
        uvw = cam @ self.K.T.to(points)
        return uvw[..., :2] / safe[..., None], depth

    def to(self, device: torch.device | str) -> Camera:
        """The same camera with its tensors on `device`."""
        return Camera(self.viewmat.to(device), self.K.to(device), self.width, self.height)

    def as_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        """NumPy arrays for `np.savez`; `prefix` lets several cameras share one file."""
        return {
            f"{prefix}viewmat": self.viewmat.detach().cpu().numpy().astype(np.float32),
            f"{prefix}K": self.K.detach().cpu().numpy().astype(np.float32),
            f"{prefix}width": np.asarray(self.width, dtype=np.int64),
            f"{prefix}height": np.asarray(self.height, dtype=np.int64),
        }

    @classmethod
    def from_dict(cls, arrays: dict, prefix: str = "") -> Camera:
        """Inverse of `as_dict`; accepts an `np.load` result or any mapping of arrays/tensors."""
        missing = [k for k in ("viewmat", "K", "width", "height") if f"{prefix}{k}" not in arrays]
        if missing:
            raise ReplicaError("Camera.from_dict", f"missing keys {[prefix + k for k in missing]}")
        return cls(
            viewmat=torch.as_tensor(np.asarray(arrays[f"{prefix}viewmat"]), dtype=torch.float32),
            K=torch.as_tensor(np.asarray(arrays[f"{prefix}K"]), dtype=torch.float32),
            width=int(np.asarray(arrays[f"{prefix}width"])),
            height=int(np.asarray(arrays[f"{prefix}height"])),
        )
