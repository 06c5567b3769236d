"""Avatar quality benchmark → bench/results/avatar_quality.json (the table in docs/avatar.md).

Trains the tiny config's avatar and refiner (`render.fit.fit_avatar`, exactly what `replica avatar train` runs)
on the first 80% of a short synthetic person (`foundation.world.short_take`: 60 frames at 64², a made-up
person talking with the world's head motion) and scores the held-out last 20% against the true frames: PSNR,
SSIM and flicker of the splats alone and after the refiner. `--sheet PATH` also writes the held-out
truth | splat | refined sheet (`make docs` puts it in docs/avatar_side_by_side.png).

    python bench/avatar_quality.py [--frames 60] [--size 64] [--config tiny] [--sheet docs/avatar_side_by_side.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and would shadow the `render` package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from foundation.world import short_take  # noqa: E402
from launch.config import load_config  # noqa: E402
from render.fit import fit_avatar  # noqa: E402
from render.video import write_png  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "avatar_quality.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--sheet", default=None, help="Also write the held-out truth | splat | refined PNG here.")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    cfg = load_config(args.config)
    avatar_cfg = cfg.avatar.model_copy(update={"image_size": args.size, "backend": "gsplat" if cuda else "torch"})
    take, _ = short_take(args.frames, args.size)
    result = fit_avatar(take.frames, take.face_params, take.camera, avatar_cfg, cfg.refine,
                        device="cuda" if cuda else "cpu", progress=False)
    report = {"machine": describe_machine(), "config": args.config, "person": "foundation.world.short_take(seed=0)",
              **result.quality}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    if args.sheet and result.sheet is not None:
        write_png(args.sheet, result.sheet)
    print(json.dumps(report["heldout"], indent=2), f"→ {RESULTS}")


if __name__ == "__main__":
    main()
