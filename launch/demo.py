"""`replica demo`: the whole system end to end on tiny data, as a new user's first run.

Each step prints what it did and where its outputs went; later stages append their steps here.
"""

from __future__ import annotations

import time

from rich.console import Console

from datasets import storage
from launch.config import ReplicaConfig, save_config


def _step(console: Console, title: str):
    console.rule(f"[bold]{title}")
    return time.perf_counter()


def avatar_step(cfg: ReplicaConfig, out: str, console: Console, person_video: str, person_params: str) -> str:
    """Train a tiny avatar on the demo person (held-out quality printed) and write its side-by-side sheet.

    Returns the avatar's URL (`<out>/avatar/avatar.pt`, with `avatar.quality.json` and `side_by_side.png`).
    """
    from cluster.runtime import resolve
    from render.fit import fit_avatar, save_fit
    from render.video import read_person, write_png

    t = _step(console, "avatar: Gaussian splats bound to the head mesh + GAN refiner")
    resolved = resolve(cfg.runtime)
    avatar_cfg = cfg.avatar.model_copy(update={"backend": resolved.renderer if cfg.avatar.backend == "auto"
                                               else cfg.avatar.backend})
    frames, params, camera, _ = read_person(person_video, person_params, avatar_cfg.image_size)
    result = fit_avatar(frames, params, camera, avatar_cfg, cfg.refine, device=resolved.device)
    avatar_url = storage.join(out, "avatar", "avatar.pt")
    quality_url = save_fit(result, avatar_url)
    sheet_url = storage.join(out, "avatar", "side_by_side.png")
    if result.sheet is not None:
        write_png(sheet_url, result.sheet)
    for name, numbers in result.quality.get("heldout", {}).items():
        console.print(f"  held-out {name:<8} PSNR {numbers['psnr_db']:.2f} dB  SSIM {numbers['ssim']:.4f}  "
                      f"flicker {numbers['flicker']}", highlight=False)
    console.print(f"  {result.quality['n_gaussians']} Gaussians; avatar {avatar_url}, quality {quality_url}, "
                  f"sheet {sheet_url} ({time.perf_counter() - t:.1f}s)", highlight=False)
    return avatar_url


def run_demo(cfg: ReplicaConfig, out: str, console: Console) -> None:
    """Run every demo step, writing under `out`."""
    from launch.doctor import run_checks, verdict

    started = time.perf_counter()
    t = _step(console, "1. doctor")
    checks = run_checks(cfg)
    for check in checks:
        if check.status != "ok" or check.name in ("device", "renderer", "ray address", "storage"):
            console.print(f"  {check.status:<4} {check.name:<16} {check.detail}", highlight=False)
    console.print(f"  verdict: {verdict(checks)} ({time.perf_counter() - t:.1f}s)")

    t = _step(console, "2. storage round-trip")
    probe = storage.join(out, "storage-check.bin")
    payload = bytes(range(256)) * 4096
    storage.write_bytes(probe, payload)
    assert storage.read_bytes(probe) == payload, "storage round-trip returned different bytes"
    listed = storage.list_urls(out)
    storage.remove(probe)
    config_url = save_config(cfg, out)
    console.print(f"  wrote, listed ({len(listed)} objects), read back and removed {len(payload) / 2**20:.1f} MiB "
                  f"at {out}; config saved to {config_url} ({time.perf_counter() - t:.1f}s)")

    console.rule("[bold green]demo done")
    console.print(f"  total {time.perf_counter() - started:.1f}s; outputs under {out}")
