"""Draw docs/synth_contact_sheet.png: synthetic identities (the last one photo-textured) with the mouth closed,
the jaw open, and turned under a second lighting.  Run: .venv/bin/python docs/synth_contact_sheet.py"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from skimage.io import imsave

from foundation.head import FaceParams
from foundation.world import SynthConfig, build_world
from foundation.world.shading import render_textured
from foundation.world.scene import expose, sample_background, sample_framing, sample_lighting
from datasets.schema import EXPRESSION_NAMES

SIZE = 256


def _params(shape: np.ndarray, jaw: float, yaw: float, smile: float) -> dict[str, np.ndarray]:
    expr = np.zeros((1, len(EXPRESSION_NAMES)), np.float32)
    expr[0, EXPRESSION_NAMES.index("jawOpen")] = jaw / 0.35
    expr[0, EXPRESSION_NAMES.index("mouthSmileLeft")] = expr[0, EXPRESSION_NAMES.index("mouthSmileRight")] = smile
    zeros = np.zeros((1, 3), np.float32)
    jaw_pose, neck = zeros.copy(), zeros.copy()
    jaw_pose[0, 0], neck[0, 1] = jaw, yaw
    return {"shape": shape, "expr": expr, "jaw": jaw_pose, "neck": neck, "rot": zeros, "trans": zeros}


def main() -> None:
    world = build_world(SynthConfig(size=SIZE, seed=7, identities=6).model_dump_json())
    photo_world = build_world(SynthConfig(size=SIZE, seed=7, identities=1, photo_probability=1.0).model_dump_json())
    people = [(world, i) for i in range(5)] + [(photo_world, 0)]
    rows = []
    for row, (source, index) in enumerate(people):
        person = source.identity(index)
        rng = np.random.default_rng(row)
        camera = sample_framing(rng, SIZE, SIZE, source.eye_height)
        background = sample_background(rng, SIZE, SIZE)
        tiles = []
        for jaw, yaw, smile, light_seed in ((0.0, 0.0, 0.2, 0), (0.3, 0.0, 0.0, 0), (0.12, 0.45, 0.3, 1)):
            lighting = expose(sample_lighting(np.random.default_rng([row, light_seed])), person.appearance.skin_rgb, rng)
            with torch.no_grad():
                verts = source.head(FaceParams.from_dict(_params(person.shape, jaw, yaw, smile)))
            frames = render_textured(verts, source.topology, torch.from_numpy(person.appearance.texture), camera,
                                   lighting, background)
            tiles.append(frames.rgb[0])
        rows.append(np.concatenate(tiles, 1))
    sheet = np.concatenate([np.concatenate(rows[:3], 0), np.concatenate(rows[3:], 0)], 1)
    out = Path(__file__).with_suffix(".png")
    imsave(out, sheet)
    print(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
