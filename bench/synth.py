"""Synthetic-world rendering speed → bench/results/synth.json.

Frames per second of `datasets.synth.render.render_frames` at 256² (2× supersampled, the default) for one
identity, with torch limited to 1 thread (per core) and with all cores; plus the one-off cost of an identity's
texture atlas. Run: .venv/bin/python bench/synth.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

# Run as a script, this folder would come first on sys.path; the repository root must instead.
sys.path = [str(Path(__file__).resolve().parents[1])] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from foundation.head import FaceParams  # noqa: E402
from foundation.world import SynthConfig, build_world  # noqa: E402
from foundation.world.motion import synthesize_motion  # noqa: E402
from foundation.world.shading import render_textured  # noqa: E402
from foundation.world.scene import expose, sample_background, sample_framing, sample_lighting  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "synth.json"
SIZE, FRAMES = 256, 32


def main() -> None:
    world = build_world(SynthConfig(size=SIZE, identities=1).model_dump_json())
    started = time.perf_counter()
    person = world.identity(0)
    atlas_s = time.perf_counter() - started
    rng = np.random.default_rng(0)
    wav = (0.3 * np.sin(np.arange(int(16000 * FRAMES / 25)) / 16000 * 2 * np.pi * 180) *
           (np.sin(np.arange(int(16000 * FRAMES / 25)) / 16000 * 2 * np.pi * 3) > 0)).astype(np.float32)
    motion = synthesize_motion(wav, None, rng)
    params = {"shape": person.shape, "expr": motion.expr, "jaw": motion.jaw, "neck": motion.neck, "rot": motion.rot,
              "trans": motion.trans}
    with torch.no_grad():
        verts = world.head(FaceParams.from_dict(params))
    camera = sample_framing(rng, SIZE, SIZE, world.eye_height)
    lighting = expose(sample_lighting(rng), person.appearance.skin_rgb, rng)
    background = sample_background(rng, SIZE, SIZE)
    texture = torch.from_numpy(person.appearance.texture)
    results = {}
    cores = torch.get_num_threads()
    for label, threads in (("1_thread", 1), (f"{cores}_threads", cores)):
        torch.set_num_threads(threads)
        render_textured(verts[:4], world.topology, texture, camera, lighting, background)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for i in range(0, FRAMES, 16):
                render_textured(verts[i:i + 16], world.topology, texture, camera, lighting, background)
            best = min(best, time.perf_counter() - started)
        results[label] = {"frames_per_s": round(FRAMES / best, 2), "ms_per_frame": round(1000 * best / FRAMES, 1)}
    torch.set_num_threads(cores)
    report = {"size": SIZE, "supersample": 2, "frames": FRAMES, "mesh_triangles": int(world.topology.faces.shape[0]),
              "render": results, "identity_atlas_s": round(atlas_s, 2), "atlas_size": world.cfg.atlas_size,
              "machine": describe_machine()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["render"]), f"atlas {atlas_s:.1f}s → {RESULTS}")


if __name__ == "__main__":
    main()
