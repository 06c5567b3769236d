"""Render docs/head_model.png: the default head in a few poses, front and three-quarter.

Per-part flat colours, Gouraud-shaded by one point light, drawn with the head's one mesh renderer
(`foundation.head.render_soft`, sharp): enough to judge the geometry, not the appearance model.
Run: .venv/bin/python docs/make_head_model_sheet.py
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from foundation.camera import Camera
from datasets.schema import EXPRESSION_NAMES
from foundation.head import FaceParams, default_head_model, render_soft, vertex_normals

COLOURS = {
    "face": (0.85, 0.65, 0.55), "scalp": (0.25, 0.18, 0.12), "neck": (0.82, 0.62, 0.52),
    "shoulders": (0.3, 0.4, 0.6), "eye_l": (0.95, 0.95, 0.95), "eye_r": (0.95, 0.95, 0.95),
    "teeth_upper": (0.97, 0.95, 0.88), "teeth_lower": (0.9, 0.9, 0.8), "tongue": (0.8, 0.35, 0.4),
    "mouth_cavity": (0.25, 0.05, 0.07),
}  # fmt: skip


def render(model, verts: torch.Tensor, camera: Camera) -> np.ndarray:
    """RGB uint8 image [H, W, 3] of posed vertices [V, 3]."""
    colours = torch.tensor([COLOURS[model.part_names[p]] for p in model.part.tolist()])
    for centre in (468, 473):  # paint iris and pupil around the iris landmarks
        near = (verts - verts[centre]).norm(dim=1)
        on_eye = model.part_mask("eye_l", "eye_r")
        colours[(near < 0.0059) & on_eye] = torch.tensor([0.3, 0.45, 0.6])
        colours[(near < 0.0025) & on_eye] = torch.tensor([0.02, 0.02, 0.02])
    normals = vertex_normals(verts, model.faces)
    light = torch.nn.functional.normalize(camera.center + torch.tensor([0.3, 0.5, 0.2]) - verts, dim=-1)
    toward_camera = torch.nn.functional.normalize(camera.center - verts, dim=-1)
    normals = torch.where((normals * toward_camera).sum(-1, keepdim=True) < 0, -normals, normals)  # two-sided
    shaded = colours * (0.35 + 0.65 * (normals * light).sum(-1, keepdim=True).clamp_min(0))
    rgb, _ = render_soft(verts[None], model.faces, camera, shaded, sigma=1e-8, gamma=1e-6,
                         background=torch.ones(3))
    return (rgb[0].clamp(0, 1).numpy() * 255).astype(np.uint8)


def main(out: Path = Path(__file__).with_name("head_model.png"), size: int = 256) -> None:
    model = default_head_model()
    poses = {
        "neutral": ({}, 0.0, None),
        "jaw 0.3 + jawOpen": ({"jawOpen": 1.0}, 0.3, None),
        "smile": ({"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0, "cheekSquintLeft": 0.5, "cheekSquintRight": 0.5}, 0.0, None),
        "blink": ({"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, 0.0, None),
        "random identity": ({}, 0.0, torch.randn(model.n_shape, generator=torch.Generator().manual_seed(3))),
    }
    cameras = [
        Camera.look_at((0.0, 0.0, 0.9), (0.0, -0.03, 0.0), fov_deg=24, width=size, height=size),
        Camera.look_at((0.5, 0.05, 0.7), (0.0, -0.03, 0.0), fov_deg=24, width=size, height=size),
        Camera.look_at((0.15, 0.0, 0.42), (0.0, -0.01, 0.0), fov_deg=22, width=size, height=size),
    ]
    columns = []
    for expr, jaw, shape in poses.values():
        params = FaceParams.neutral(1, model.n_shape)
        for name, weight in expr.items():
            params.expr[0, EXPRESSION_NAMES.index(name)] = weight
        params.jaw[0, 0] = jaw
        if shape is not None:
            params.shape = shape
        verts = model(params)[0]
        columns.append(np.concatenate([render(model, verts, cam) for cam in cameras], axis=0))
    Image.fromarray(np.concatenate(columns, axis=1)).save(out)
    print(f"wrote {out} ({', '.join(poses)}; rows: front, three-quarter, close-up)")


if __name__ == "__main__":
    main()
