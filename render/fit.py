"""One person's video → a trained avatar (+ refiner) and its held-out quality, the whole avatar stage.

The first (1 − holdout) of the frames train the Gaussians, then the refiner on the avatar's own renders
of those frames; the last frames (new expressions and poses) are rendered from their parameters and
compared with the video: PSNR / SSIM / flicker of the splats alone and after the refiner. A refiner that
makes those frames worse is dropped (`RefineConfig.keep`). The numbers go in `<avatar>.quality.json` beside the
avatar file.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from datasets import storage
from foundation.camera import Camera
from foundation.head import FaceParams, HeadModel
from render.avatar import Avatar, AvatarConfig, render_frames
from render.avatar_train import select_frames, train_avatar
from render.quality import video_quality
from render.refine import RefineConfig, refine_frames, train_refiner
from render.video import side_by_side, to_uint8

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """avatar: trained (with `refiner` when enabled). quality: JSON-ready numbers. sheet: uint8 [H, W, 3]
    truth | splat | refined of a few held-out frames (None without held-out frames)."""

    avatar: Avatar
    quality: dict
    sheet: np.ndarray | None


def fit_avatar(frames: np.ndarray, params: FaceParams, camera: Camera, avatar_cfg: AvatarConfig,
               refine_cfg: RefineConfig, *, head: HeadModel | None = None, device: str = "cpu",
               init_refiner=None, progress: bool = True) -> FitResult:
    """Train an avatar and its refiner on the first frames and evaluate both on the held-out rest.

    Args:
        frames: the person's video frames, RGB uint8. [F, H, W, 3]
        params: their FaceParams, one row per frame.
        camera: the camera at the frames' size.
        avatar_cfg: the avatar's config (`holdout_fraction` sets the split).
        refine_cfg: the refiner's config (`enabled: false` skips it).
        head: the head model of the params (default: `default_head_model()`).
        device: "cpu" or "cuda".
        init_refiner: a `Refiner` to start the refiner from (e.g. another avatar's), or None.
        progress: tqdm bars.
    """
    started = time.perf_counter()
    n_frames = len(frames)
    n_train = max(2, n_frames - int(round(n_frames * avatar_cfg.holdout_fraction)))
    train_rows, test_rows = torch.arange(n_train), torch.arange(n_train, n_frames)
    avatar = train_avatar(frames[:n_train], select_frames(params, train_rows), camera, avatar_cfg, head=head, device=device,
                          progress=progress)
    train_seconds = time.perf_counter() - started
    quality: dict = {"frames": {"train": n_train, "heldout": n_frames - n_train},
                     "size": [int(frames.shape[2]), int(frames.shape[1])], "n_gaussians": avatar.n_gaussians,
                     "iterations": avatar_cfg.iterations, "train_seconds": round(train_seconds, 1),
                     "final_loss": round(float(np.mean(avatar.history["loss"][-20:])), 5)}
    if refine_cfg.enabled and refine_cfg.iterations > 0:
        truth = torch.as_tensor(frames[:n_train], device=device).float() / 255.0
        splats = render_frames(avatar, select_frames(params, train_rows), camera, head=head, backend=avatar_cfg.backend,
                               refine=False)
        avatar.refiner, log = train_refiner(splats, truth, refine_cfg, init=init_refiner, progress=progress)
        quality["refiner_final_l1"] = round(float(np.mean(log["l1"][-20:])), 5)
    sheet = None
    if len(test_rows):
        truth = torch.as_tensor(frames[n_train:], device=device).float() / 255.0
        splats = render_frames(avatar, select_frames(params, test_rows), camera, head=head, backend=avatar_cfg.backend,
                               refine=False)
        quality["heldout"] = {"splat": video_quality(splats, truth)}
        refined = None
        if avatar.refiner is not None:
            refined = refine_frames(avatar.refiner, splats)
            quality["heldout"]["refined"] = video_quality(refined, truth)
            quality["refiner"] = _refiner_verdict(quality["heldout"], refine_cfg)
            if not quality["refiner"]["kept"]:
                avatar.refiner = None
        sheet = _sheet(truth, splats, refined)
    quality["seconds"] = round(time.perf_counter() - started, 1)
    return FitResult(avatar, quality, sheet)


def _refiner_verdict(heldout: dict, cfg: RefineConfig) -> dict:
    """Whether the avatar keeps its refiner (`RefineConfig.keep`), from the held-out splat vs refined numbers.

    A refiner trained for a few steps on a handful of frames can make unseen frames worse (a colour cast, a
    smear: −0.7 dB on a real 64² video with the tiny config); an avatar without one renders its splats as they
    are, so the choice costs nothing later. Both numbers stay in the quality JSON either way.
    """
    gain = heldout["refined"]["psnr_db"] - heldout["splat"]["psnr_db"]
    kept = cfg.keep == "always" or gain >= 0
    if not kept:
        log.info("refiner dropped: held-out PSNR %.2f dB refined vs %.2f dB without it", heldout["refined"]["psnr_db"],
                 heldout["splat"]["psnr_db"])
    return {"kept": kept, "heldout_psnr_gain_db": round(gain, 3), "rule": cfg.keep}


def quality_lines(quality: dict) -> list[str]:
    """The held-out numbers of a fit (splat, refined) and the refiner's verdict, one printable line each."""
    lines = [f"held-out {name:<8} PSNR {numbers['psnr_db']:.2f} dB · SSIM {numbers['ssim']:.4f} · flicker "
             f"{numbers['flicker']}" for name, numbers in quality.get("heldout", {}).items()]
    if "refiner" in quality:
        verdict = quality["refiner"]
        lines.append(f"refiner {'kept' if verdict['kept'] else 'dropped (refine.keep: if_better)'}: "
                     f"{verdict['heldout_psnr_gain_db']:+.3f} dB on held-out frames")
    return lines


def quality_url(avatar_url: str) -> str:
    """Where an avatar's quality JSON lives: `avatar.pt` → `avatar.quality.json`."""
    stem = avatar_url[:-3] if avatar_url.endswith(".pt") else avatar_url
    return stem + ".quality.json"


def save_fit(result: FitResult, avatar_url: str) -> str:
    """Write the avatar file and its quality JSON; returns the JSON's URL."""
    result.avatar.save(avatar_url)
    url = quality_url(avatar_url)
    storage.write_json(url, result.quality)
    return url


def _sheet(truth: torch.Tensor, splats: torch.Tensor, refined: torch.Tensor | None, count: int = 4) -> np.ndarray:
    """Rows of truth | splat | refined for `count` evenly spread frames, pixels repeated up to ~256 px."""
    picks = np.linspace(0, len(truth) - 1, min(count, len(truth))).round().astype(int)
    columns = [truth, splats] + ([refined] if refined is not None else [])
    scale = max(1, 256 // truth.shape[1])
    return side_by_side([[to_uint8(c[i]) for c in columns] for i in picks], scale=scale)
