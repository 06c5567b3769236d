"""The avatar at a real resolution: 256² with the `cluster` preset on a synthetic person, on CUDA with gsplat.

`render.fit.fit_avatar` (what `replica avatar train` runs) trains the Gaussians on the first 80% of the carried
person (`foundation.world.short_take(60, 256)`, packed by bench/gpu/pack.py) and the refiner on their renders,
then scores the held-out 20% against the true frames: PSNR / SSIM / flicker with and without the refiner, so
what the refiner adds is known at this resolution. The preset's schedules (30k + 10k iterations) are far longer
than a lent GPU allows, so short runs first measure iterations per second here, and the avatar gets about a
quarter of the time box and the refiner an eighth; densification keeps its share of the (shortened) schedule.

    python -m bench.gpu.avatar SECTION.json --seconds 120 [--image sheet.png] [--no-gsplat]
    python -m bench.gpu.avatar SECTION.json --check     # CPU dry-run: 5 frames, 2 + 1 iterations, torch backend
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.gpu.pack import TAKE
from foundation.camera import Camera
from foundation.head import FaceParams
from launch.config import load_config
from render.avatar import render_frames
from render.avatar_train import select_frames, train_avatar
from render.fit import fit_avatar
from render.refine import train_refiner
from render.video import write_png

PSNR_TARGET_DB = 35.0
"""Held-out PSNR the avatar should reach at 256² with the cluster preset (issue 15)."""
CHECK_SIZE = 64
"""Frame size of the CPU dry run (--check)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", help="JSON file to write")
    parser.add_argument("--seconds", type=float, default=120.0, help="the step's time box")
    parser.add_argument("--image", help="also write the held-out truth | splat | refined sheet here (PNG)")
    parser.add_argument("--no-gsplat", action="store_true", help="torch backend on CUDA (gsplat did not build)")
    parser.add_argument("--check", action="store_true", help="CPU dry-run")
    args = parser.parse_args()
    Path(args.section).write_text(json.dumps(avatar_quality(args), indent=2) + "\n")


def avatar_quality(args) -> dict:
    """Avatar + refiner at 256² with the cluster preset, its schedule shortened to fit --seconds, on the carried
    synthetic person; held-out PSNR / SSIM / flicker with and without the refiner, and iterations per second."""
    if args.no_gsplat:  # its kernels did not build: render.raster then never tries (it looks gsplat up lazily)
        sys.modules["gsplat"] = None
    if TAKE.exists():
        with np.load(TAKE) as npz:
            arrays = {k: npz[k] for k in npz.files}
        frames, params, camera = arrays["frames"], FaceParams.from_dict(arrays), Camera.from_dict(arrays)
        person = f"{TAKE.name} (foundation.world.short_take, seed 0)"
    elif args.check:  # nothing packed: a small person made here, where the TTS engines are, at the check's 64²
        from foundation.world import short_take

        take, _ = short_take(5, CHECK_SIZE)
        frames, params, camera, person = take.frames, take.face_params, take.camera, f"short_take(5, {CHECK_SIZE})"
    else:
        raise SystemExit(f"{TAKE}: missing (bench/gpu.sh --pack makes it)")
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    cfg = load_config("cluster")
    backend = "gsplat" if cuda and not args.no_gsplat else "torch"
    if args.check:  # the same code on 5 frames at 64², for 2 + 1 iterations
        frames, camera = _downscaled(frames[:5], camera, frames.shape[1] // CHECK_SIZE)
        params = select_frames(params, torch.arange(5))
        rates = _calibrate(frames, params, camera, cfg, backend, device, steps=1)
        iterations, refine_iterations = 2, 1
    else:
        rates = _calibrate(frames, params, camera, cfg, backend, device)
        Path(args.section).write_text(json.dumps({"backend": backend, **rates}, indent=2) + "\n")  # if it times out
        # A quarter of the box for the avatar at the calibrated rate (densification slows it down, up to twice
        # as many Gaussians), an eighth for the refiner; the rest for calibration, set-up and the evaluation.
        iterations = _fit(rates["avatar_iterations_per_s"], args.seconds / 4, low=200, high=cfg.avatar.iterations)
        refine_iterations = _fit(rates["refiner_iterations_per_s"], args.seconds / 8, low=50,
                                 high=cfg.refine.iterations)
    avatar_cfg = _shortened(cfg.avatar, iterations).model_copy(update={"backend": backend})
    refine_cfg = cfg.refine.model_copy(update={"iterations": refine_iterations})
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    fit = fit_avatar(frames, params, camera, avatar_cfg, refine_cfg, device=device, progress=False)
    heldout = fit.quality.get("heldout", {})
    splat, refined = heldout.get("splat", {}), heldout.get("refined", {})
    result = {"backend": backend, "device": device, "person": person,
              "config": "cluster, schedules shortened", "avatar": avatar_cfg.model_dump(
                  include={"image_size", "sh_degree", "init_per_triangle", "max_gaussians", "iterations",
                           "densify_from", "densify_until", "densify_every"}),
              "refiner_iterations": refine_iterations, **rates, **fit.quality,
              "target_psnr_db": PSNR_TARGET_DB}
    if splat and refined:
        result["refiner_gain_db"] = round(refined["psnr_db"] - splat["psnr_db"], 3)
        if splat.get("flicker") is not None and refined.get("flicker") is not None:
            result["refiner_flicker_change"] = round(refined["flicker"] - splat["flicker"], 5)
    result["meets_target"] = max(splat.get("psnr_db", 0), refined.get("psnr_db", 0)) >= PSNR_TARGET_DB
    if cuda:
        result["peak_memory_allocated_MiB"] = round(torch.cuda.max_memory_allocated() / 2**20)
    if args.check:
        result |= {"status": "checked", "reason": "no CUDA here: 5 frames at 64², 2 + 1 iterations, torch backend"}
    elif args.image and fit.sheet is not None:
        write_png(args.image, fit.sheet)
        result["sheet"] = Path(args.image).name
    return result


def _calibrate(frames, params, camera, cfg, backend: str, device: str, steps: int = 60) -> dict:
    """Iterations per second of avatar and refiner training here, set-up excluded: runs of 1 and 1 + `steps`
    iterations (a third as many for the refiner)."""
    rows = torch.arange(len(frames) - int(round(len(frames) * cfg.avatar.holdout_fraction)))
    train_params = select_frames(params, rows)
    no_densify = {"backend": backend, "densify_from": 10**9, "densify_until": 10**9}

    def avatar_s(iterations: int):
        avatar_cfg = cfg.avatar.model_copy(update={**no_densify, "iterations": iterations})
        return _timed(lambda: train_avatar(frames[: len(rows)], train_params, camera, avatar_cfg, device=device,
                                           progress=False))

    if device == "cuda":
        avatar_s(1)  # the first run also pays for CUDA's start, kernel loads and the allocator's first blocks
    one, _ = avatar_s(1)
    more, avatar = avatar_s(1 + steps)
    sample = rows[:8]
    splats = render_frames(avatar, select_frames(params, sample), camera, backend=backend, refine=False)
    truth = torch.as_tensor(frames[: len(sample)], device=device).float() / 255.0

    def refiner_s(iterations: int):
        return _timed(lambda: train_refiner(splats, truth, cfg.refine.model_copy(update={"iterations": iterations}),
                                            progress=False))[0]

    refine_steps = max(1, steps // 3)
    if device == "cuda":
        refiner_s(1)
    refine_one, refine_more = refiner_s(1), refiner_s(1 + refine_steps)
    return {"avatar_iterations_per_s": round(steps / max(more - one, 1e-6), 1),
            "refiner_iterations_per_s": round(refine_steps / max(refine_more - refine_one, 1e-6), 1),
            "avatar_setup_s": round(one, 2), "calibration": "before densification (the rate falls as Gaussians grow)"}


def _downscaled(frames: np.ndarray, camera: Camera, factor: int) -> tuple[np.ndarray, Camera]:
    """frames uint8 [F, H, W, 3] averaged over factor² blocks, and the camera that sees them (pixels / factor)."""
    f, h, w, c = frames.shape
    small = frames.reshape(f, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4)).round().astype(np.uint8)
    K = camera.K.clone()
    K[:2] /= factor
    return small, Camera(camera.viewmat, K, camera.width // factor, camera.height // factor)


def _timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started, out


def _fit(rate: float, seconds: float, low: int, high: int) -> int:
    """Iterations that take about `seconds` at `rate` per second, within [low, high], rounded to hundreds."""
    return int(min(high, max(low, round(rate * seconds, -2))))


def _shortened(avatar_cfg, iterations: int):
    """The avatar schedule compressed to `iterations`: densification over the same share of the run."""
    share = iterations / avatar_cfg.iterations
    start, until = round(avatar_cfg.densify_from * share), round(avatar_cfg.densify_until * share)
    every = min(avatar_cfg.densify_every, max(1, (until - start) // 5))
    return avatar_cfg.model_copy(update={"iterations": iterations, "densify_from": start, "densify_until": until,
                                         "densify_every": every})


if __name__ == "__main__":
    main()
