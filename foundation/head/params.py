"""Per-frame head parameters (`FaceParams`) and the 52 ARKit expression names they are indexed by.

These are the fields of a sample's `mm.npz` and what tracking estimates, the animator predicts and the
renderer consumes. Angles are axis-angle radians, translations metres.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from datasets.errors import ReplicaError
from datasets.schema import EXPRESSION_NAMES, N_EXPR  # noqa: F401 - re-exported: the expr columns

N_SHAPE = 50
"""Identity coefficients of the default head model."""



@dataclass
class FaceParams:
    """Head parameters for F frames of one identity (float32 tensors).

    Fields:
        shape: identity coefficients ~N(0, 1), shared by all frames. [S] (or [F, S] per frame)
        expr: ARKit blendshape weights in [0, 1], order `EXPRESSION_NAMES`. [F, 52]
        jaw: jaw joint rotation, axis-angle radians; +x opens the mouth (0–0.35 in speech). [F, 3]
        neck: head rotation relative to the shoulders about the neck joint, axis-angle radians. [F, 3]
        rot: global rotation of the whole bust about the world origin, axis-angle radians. [F, 3]
        trans: global translation applied after `rot`, metres. [F, 3]
    """

    shape: Tensor
    expr: Tensor
    jaw: Tensor
    neck: Tensor
    rot: Tensor
    trans: Tensor

    def __post_init__(self) -> None:
        n_frames = self.expr.shape[0] if self.expr.dim() == 2 else -1
        if self.expr.dim() != 2 or self.expr.shape[1] != N_EXPR:
            raise ReplicaError("FaceParams.expr", f"expected [F, {N_EXPR}], got {list(self.expr.shape)}")
        for name in ("jaw", "neck", "rot", "trans"):
            value = getattr(self, name)
            if tuple(value.shape) != (n_frames, 3):
                raise ReplicaError(f"FaceParams.{name}", f"expected [{n_frames}, 3], got {list(value.shape)}")
        if self.shape.dim() not in (1, 2) or (self.shape.dim() == 2 and self.shape.shape[0] != n_frames):
            raise ReplicaError("FaceParams.shape", f"expected [S] or [{n_frames}, S], got {list(self.shape.shape)}")

    @property
    def n_frames(self) -> int:
        return self.expr.shape[0]

    @classmethod
    def neutral(cls, n_frames: int = 1, n_shape: int = N_SHAPE, device: torch.device | str = "cpu") -> FaceParams:
        """All-zero parameters: the template identity, neutral expression, no rotation or translation."""
        zeros3 = torch.zeros(n_frames, 3, device=device)
        return cls(
            shape=torch.zeros(n_shape, device=device),
            expr=torch.zeros(n_frames, N_EXPR, device=device),
            jaw=zeros3.clone(),
            neck=zeros3.clone(),
            rot=zeros3.clone(),
            trans=zeros3.clone(),
        )

    def to(self, device: torch.device | str) -> FaceParams:
        return FaceParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def as_dict(self) -> dict[str, np.ndarray]:
        """float32 NumPy arrays keyed by field name (the `mm.npz` layout)."""
        return {f.name: getattr(self, f.name).detach().cpu().numpy().astype(np.float32) for f in fields(self)}

    def to_npz(self, path: str | Path) -> None:
        np.savez(path, **self.as_dict())

    @classmethod
    def from_dict(cls, arrays) -> FaceParams:
        """From a mapping with keys shape, expr, jaw, neck, rot, trans (e.g. an `np.load` result)."""
        missing = [f.name for f in fields(cls) if f.name not in arrays]
        if missing:
            raise ReplicaError("FaceParams", f"missing arrays {missing}")
        return cls(**{f.name: torch.as_tensor(np.asarray(arrays[f.name]), dtype=torch.float32) for f in fields(cls)})

    @classmethod
    def from_npz(cls, path: str | Path) -> FaceParams:
        try:
            with np.load(path) as arrays:
                return cls.from_dict(arrays)
        except (OSError, ValueError) as err:
            raise ReplicaError(path, f"not a readable FaceParams .npz ({err})") from err
