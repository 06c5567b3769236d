"""A tiny synthetic person for avatar tests and benchmarks: head-model motion, a camera, and true frames.

The truth is rendered as a *mesh* (pytorch3d hard rasterization via `render.mesh`, per-vertex colours
painted by part with a fine skin/shirt pattern, Lambert shading from a fixed light) over a static
gradient background, so it is independent of the Gaussian splatting the avatar uses. The motion talks
(jaw, jawOpen, smile, blinks) and turns the head; later frames continue it into poses and expressions
the first frames never show, which is what the held-out split tests.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datasets.media import write_mp4
from foundation.camera import Camera
from foundation.head import EXPRESSION_NAMES, FaceParams, HeadModel, default_head_model
from render.mesh import rasterize_mesh

FPS = 25
SAMPLE_RATE = 16_000
LIGHT = torch.nn.functional.normalize(torch.tensor([0.4, 0.5, 0.8]), dim=0)


@dataclass
class Person:
    """frames uint8 [F, H, W, 3]; params for the F frames; one static camera; audio float32 [T] at 16 kHz."""

    frames: np.ndarray
    params: FaceParams
    camera: Camera
    audio: np.ndarray


def talking_params(n_frames: int, seed: int = 0) -> FaceParams:
    """Smooth talking motion: jaw and jawOpen, smiles, two blinks, head yaw/pitch. [F] frames at 25 fps."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / FPS
    params = FaceParams.neutral(n_frames)
    phase = rng.uniform(0, 2 * np.pi, 4)
    opening = 0.5 + 0.5 * np.sin(2 * np.pi * t / 0.9 + phase[0]) * np.sin(2 * np.pi * t / 2.3 + phase[1])
    params.jaw[:, 0] = torch.as_tensor(0.02 + 0.22 * opening, dtype=torch.float32)
    expr = params.expr
    expr[:, EXPRESSION_NAMES.index("jawOpen")] = torch.as_tensor(0.6 * opening, dtype=torch.float32)
    smile = torch.as_tensor(0.4 * (0.5 + 0.5 * np.sin(2 * np.pi * t / 3.7 + phase[2])), dtype=torch.float32)
    expr[:, EXPRESSION_NAMES.index("mouthSmileLeft")] = smile
    expr[:, EXPRESSION_NAMES.index("mouthSmileRight")] = smile
    blink = torch.as_tensor(np.exp(-(((t[:, None] - t[-1] * np.array([0.3, 0.75])) / 0.06) ** 2)).sum(1),
                            dtype=torch.float32)
    expr[:, EXPRESSION_NAMES.index("eyeBlinkLeft")] = blink
    expr[:, EXPRESSION_NAMES.index("eyeBlinkRight")] = blink
    params.rot[:, 1] = torch.as_tensor(0.25 * np.sin(2 * np.pi * t / 3.1 + phase[3]), dtype=torch.float32)
    params.rot[:, 0] = torch.as_tensor(0.08 * np.sin(2 * np.pi * t / 2.1), dtype=torch.float32)
    return params


def person_camera(size: int) -> Camera:
    """A frontal camera 85 cm away framing the head and the top of the shoulders."""
    return Camera.look_at((0.0, -0.03, 0.85), (0.0, -0.03, 0.0), fov_deg=22.0, width=size, height=size)


def vertex_colors(head: HeadModel) -> torch.Tensor:
    """Albedo per vertex, painted by part, with a fine pattern so there is detail to learn. [V, 3]"""
    palette = {"face": (0.86, 0.64, 0.52), "scalp": (0.28, 0.17, 0.09), "neck": (0.80, 0.58, 0.47),
               "shoulders": (0.20, 0.32, 0.62), "eye_l": (0.95, 0.95, 0.95), "eye_r": (0.95, 0.95, 0.95),
               "teeth_upper": (0.96, 0.95, 0.88), "teeth_lower": (0.96, 0.95, 0.88), "tongue": (0.80, 0.38, 0.40),
               "mouth_cavity": (0.30, 0.07, 0.08)}  # fmt: skip
    rest = head.template
    colors = torch.tensor([palette[name] for name in head.part_names])[head.part]
    x, y, z = rest.unbind(-1)
    colors = colors * (1.0 + 0.12 * (torch.sin(70 * x) * torch.sin(60 * y + 20 * z)))[:, None]
    colors[head.mouth_vertex_ids] = torch.tensor([0.72, 0.33, 0.33])
    for name, centre_x in (("eye_l", 0.0315), ("eye_r", -0.0315)):
        direction = torch.nn.functional.normalize(rest - torch.tensor([centre_x, 0.0264, 0.0264]), dim=-1)
        on_eye = head.part_mask(name)
        colors[on_eye & (direction[:, 2] > math.cos(math.radians(28)))] = torch.tensor([0.30, 0.20, 0.10])
        colors[on_eye & (direction[:, 2] > math.cos(math.radians(13)))] = torch.tensor([0.03, 0.03, 0.03])
    return colors.clamp(0, 1)


def background(size: int) -> torch.Tensor:
    """A static vertical grey-blue gradient. [H, W, 3]"""
    ramp = torch.linspace(0.0, 1.0, size)[:, None, None]
    return (torch.tensor([0.55, 0.60, 0.68]) * (1 - ramp) + torch.tensor([0.30, 0.33, 0.40]) * ramp).expand(size, size, 3)


@torch.no_grad()
def render_truth(head: HeadModel, params: FaceParams, camera: Camera) -> np.ndarray:
    """Mesh-rendered frames: interpolated vertex colours × Lambert shading over the background. uint8 [F, H, W, 3]"""
    verts = head(params)
    face_ids, barys = rasterize_mesh(verts, head.faces, camera)
    colors = vertex_colors(head)
    out = []
    for frame_verts, ids, bary in zip(verts, face_ids, barys):
        tri = head.faces[ids.clamp_min(0)]  # [H, W, 3]
        albedo = (bary[..., None] * colors[tri]).sum(-2)
        corners = frame_verts[head.faces]
        normals = torch.nn.functional.normalize(torch.linalg.cross(corners[:, 1] - corners[:, 0],
                                                                   corners[:, 2] - corners[:, 0]), dim=-1)
        shade = 0.35 + 0.65 * (normals[ids.clamp_min(0)] @ LIGHT).abs()
        image = torch.where((ids >= 0)[..., None], albedo * shade[..., None], background(camera.width))
        out.append((image.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    return np.stack(out)


@functools.cache
def make_person(n_frames: int = 40, size: int = 64, seed: int = 0) -> Person:
    """A person of `n_frames` frames at `size`² with a tone-and-noise soundtrack of the same length.

    Cached per process (tests share it; nobody mutates it)."""
    head = default_head_model()
    params = talking_params(n_frames, seed)
    camera = person_camera(size)
    t = np.arange(int(n_frames / FPS * SAMPLE_RATE)) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    return Person(render_truth(head, params, camera), params, camera, audio)


def write_person(folder: Path, person: Person) -> tuple[Path, Path]:
    """Write `person.mp4` (H.264 + AAC) and `person.params.npz` in the `replica data synth-person` layout."""
    video, params = folder / "person.mp4", folder / "person.params.npz"
    write_mp4(str(video), person.frames, fps=FPS, audio=person.audio, sample_rate=SAMPLE_RATE, crf=12)
    np.savez(params, **person.params.as_dict(), **person.camera.as_dict(), fps=np.asarray(FPS))
    return video, params
