"""Per-frame head parameters (`FaceParams`), and the one reader/writer of a person's `params.npz`.

FaceParams are the fields of a sample's `mm.npz` and what tracking estimates, the animator predicts and the
renderer consumes. Angles are axis-angle radians, translations metres; the 52 `expr` columns are
`datasets.schema.EXPRESSION_NAMES`.

A `params.npz` (`save_params` / `load_params`, any storage URL) holds one person's parameters for every frame
of a video: the FaceParams arrays, the camera (`viewmat`, `K`, `width`, `height`, optional), `fps`, the
format version, and any per-video extras (landmarks `lmk` [F, 478, 3], the `voice`, `text`, `identity` of a
synthetic person, tracking residuals ...). The synthetic world writes it, tracking writes it, the avatar and
the text→video pipeline read it; reading validates keys, frame counts and dtypes and names the first problem.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from torch import Tensor

from datasets import storage
from datasets.errors import ReplicaError
from datasets.schema import FPS, N_EXPR
from foundation.camera import Camera

N_SHAPE = 50
"""Identity coefficients of the default head model."""
PARAMS_VERSION = 1
"""Version of the `params.npz` layout written by `save_params` (files without the key are version 1)."""
_CAMERA_KEYS = ("viewmat", "K", "width", "height")


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

    @classmethod
    def from_dict(cls, arrays) -> FaceParams:
        """From a mapping with keys shape, expr, jaw, neck, rot, trans (e.g. an `np.load` result)."""
        missing = [f.name for f in fields(cls) if f.name not in arrays]
        if missing:
            raise ReplicaError("FaceParams", f"missing arrays {missing}")
        return cls(**{f.name: torch.as_tensor(np.asarray(arrays[f.name]), dtype=torch.float32) for f in fields(cls)})


@dataclass
class PersonParams:
    """What a `params.npz` holds.

    Fields:
        params: FaceParams of F frames.
        camera: the camera the frames were seen with, at the video's own size, or None.
        fps: frames per second of the video the rows belong to.
        extras: every other array of the file (e.g. `lmk` [F, 478, 3], string arrays `voice`, `text`).
    """

    params: FaceParams
    camera: Camera | None = None
    fps: float = float(FPS)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return self.params.n_frames


def save_params(url: str, person: PersonParams) -> None:
    """Write `person` as a `params.npz` at `url` (atomically, any storage URL)."""
    reserved = {f.name for f in fields(FaceParams)} | set(_CAMERA_KEYS) | {"fps", "params_version"}
    clashes = sorted(reserved & set(person.extras))
    if clashes:
        raise ReplicaError(url, f"extras {clashes} would overwrite the parameters' own arrays")
    if person.fps <= 0:
        raise ReplicaError(url, f"fps must be positive, got {person.fps}")
    arrays = {**person.params.as_dict(), **(person.camera.as_dict() if person.camera is not None else {}),
              **{k: np.asarray(v) for k, v in person.extras.items()},
              "fps": np.asarray(float(person.fps)), "params_version": np.asarray(PARAMS_VERSION)}
    _check_frames(url, arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    storage.write_bytes(url, buffer.getvalue())


def load_params(url: str, *, require_camera: bool = False) -> PersonParams:
    """Read and validate a `params.npz` from any storage URL.

    Raises ReplicaError(url, reason) for a missing or unreadable file, a newer format version, missing or
    wrongly shaped arrays, rows that disagree on the frame count, or (with `require_camera`) no camera.
    """
    try:
        with np.load(io.BytesIO(storage.read_bytes(url)), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ReplicaError:
        raise
    except (OSError, ValueError) as err:
        raise ReplicaError(url, f"not a readable .npz of face parameters ({str(err).splitlines()[0]})") from err
    version = int(arrays.pop("params_version", 1))
    if version > PARAMS_VERSION:
        raise ReplicaError(url, f"params format version {version}; this replica reads up to {PARAMS_VERSION}")
    _check_frames(url, arrays)
    try:
        params = FaceParams.from_dict(arrays)
        present = [k for k in _CAMERA_KEYS if k in arrays]
        if present and len(present) != len(_CAMERA_KEYS):
            raise ReplicaError("camera", f"has {present} but not all of {list(_CAMERA_KEYS)}")
        camera = Camera.from_dict(arrays) if present else None
    except ReplicaError as err:
        raise ReplicaError(url, str(err)) from err
    if require_camera and camera is None:
        raise ReplicaError(url, "has no camera (viewmat, K, width, height)")
    fps = float(arrays.pop("fps", FPS))
    if fps <= 0:
        raise ReplicaError(url, f"fps must be positive, got {fps}")
    known = {f.name for f in fields(FaceParams)} | set(_CAMERA_KEYS)
    return PersonParams(params, camera, fps, {k: v for k, v in arrays.items() if k not in known})


def _check_frames(url: str, arrays: dict[str, np.ndarray]) -> None:
    """Every per-frame array has the same number of rows and a float dtype."""
    missing = [f.name for f in fields(FaceParams) if f.name not in arrays]
    if missing:
        raise ReplicaError(url, f"missing arrays {missing}")
    n_frames = np.shape(arrays["expr"])[0] if np.ndim(arrays["expr"]) == 2 else -1
    for name in ("expr", "jaw", "neck", "rot", "trans", "shape"):
        if not np.issubdtype(np.asarray(arrays[name]).dtype, np.floating):
            raise ReplicaError(url, f"{name} has dtype {np.asarray(arrays[name]).dtype}, expected floats")
    for name, width in (("expr", N_EXPR), ("jaw", 3), ("neck", 3), ("rot", 3), ("trans", 3)):
        if np.shape(arrays[name]) != (n_frames, width):
            raise ReplicaError(url, f"{name} has shape {list(np.shape(arrays[name]))}, expected [{max(n_frames, 0)}, "
                               f"{width}] (one row per frame)")
    lmk = arrays.get("lmk")
    if lmk is not None and np.shape(lmk)[:1] != (n_frames,):
        raise ReplicaError(url, f"lmk has {np.shape(lmk)[0] if np.ndim(lmk) else 0} rows for {n_frames} frames")
