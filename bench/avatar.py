"""Avatar training benchmark → bench/results/avatar.json.

Training iterations per second of `render.avatar_train.train_avatar` (one frame per iteration: pose,
splat, L1 + D-SSIM + silhouette loss, backward, Adam, density control on its schedule) and of the GAN
refiner, with peak memory, at the tiny config's sizes on a short synthetic person (`foundation.world.short_take`:
64² frames, ~4.5k Gaussians growing to the budget). Set-up (mesh silhouettes, background plate, colour
initialisation) is excluded by timing a 1-iteration run and subtracting it. On a CUDA machine the same
script runs on the GPU with the gsplat backend; on CPU with the torch rasterizer.

    python bench/avatar.py [--iterations 200] [--size 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and would shadow the `render` package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from launch.config import load_config  # noqa: E402
from render.avatar import render_frames  # noqa: E402
from render.avatar_train import train_avatar  # noqa: E402
from render.refine import train_refiner  # noqa: E402
from foundation.world import short_take  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "avatar.json"


def _timed(fn) -> tuple[float, object]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device, backend = ("cuda", "gsplat") if cuda else ("cpu", "torch")
    tiny = load_config("tiny")
    cfg = tiny.avatar.model_copy(update={
        "image_size": args.size, "iterations": args.iterations, "backend": backend,
        "densify_from": args.iterations // 3, "densify_until": 5 * args.iterations // 6,
        "densify_every": max(1, args.iterations // 6),
    })  # fmt: skip
    person, _ = short_take(args.frames, args.size)
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    setup_s, _ = _timed(lambda: train_avatar(person.frames, person.face_params, person.camera,
                                             cfg.model_copy(update={"iterations": 1}), device=device, progress=False))
    total_s, avatar = _timed(lambda: train_avatar(person.frames, person.face_params, person.camera, cfg, device=device,
                                                  progress=False))
    avatar_its = (args.iterations - 1) / max(1e-9, total_s - setup_s)

    renders = render_frames(avatar, person.face_params, person.camera, backend=backend)
    truth = torch.as_tensor(person.frames, device=device).float() / 255.0
    refine_cfg = tiny.refine.model_copy(update={"iterations": 50})
    refine_s, _ = _timed(lambda: train_refiner(renders, truth, refine_cfg, progress=False))

    peak = (f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB (CUDA allocated)" if cuda else
            f"{(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_rss) / 1024:.0f} MiB (RSS above start)")
    result = {
        "machine": describe_machine(),
        "backend": backend,
        "image_size": args.size,
        "frames": args.frames,
        "iterations": args.iterations,
        "gaussians_start_end": [avatar.history["n_gaussians"][0], avatar.n_gaussians],
        "setup_s": round(setup_s, 2),
        "avatar_iterations_per_s": round(avatar_its, 2),
        "refiner_iterations_per_s": round(refine_cfg.iterations / refine_s, 2),
        "refiner_batch": refine_cfg.batch_size,
        "peak_memory": peak,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
