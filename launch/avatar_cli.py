"""`replica avatar …`: train and render a Gaussian-splat avatar of one person."""

from __future__ import annotations

from typing import List, Optional

import typer

from launch.context import ConfigOpt, SetOpt, console, load

app = typer.Typer(help="Train and render a Gaussian-splat avatar bound to the head model.", no_args_is_help=True)


def _device_and_backend(cfg) -> tuple[str, str]:
    """The device from the runtime section; the avatar's backend unless it is auto (then the runtime's renderer)."""
    from cluster.runtime import resolve

    resolved = resolve(cfg.runtime)
    backend = resolved.renderer if cfg.avatar.backend == "auto" else cfg.avatar.backend
    return resolved.device, backend


@app.command()
def train(video: str = typer.Option(..., "--video", help="The person's video (mp4 with the face in view)."),
          params: str = typer.Option(..., "--params", help="Per-frame FaceParams + camera .npz matching the video."),
          out: str = typer.Option(..., "--out", "-o", help="Avatar file to write (path or s3:// URL), e.g. avatar.pt."),
          sheet: Optional[str] = typer.Option(None, help="Also write truth | splat | refined of held-out frames "
                                                         "as a PNG here."),
          config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Train an avatar on the first frames, evaluate it on the held-out rest, write it with its quality JSON."""
    from render.avatar import Avatar
    from render.fit import fit_avatar, save_fit
    from render.video import read_person, write_png

    cfg = load(config, overrides)
    device, backend = _device_and_backend(cfg)
    frames, face_params, camera, _ = read_person(video, params, cfg.avatar.image_size)
    console.print(f"person: {len(frames)} frames at {frames.shape[2]}x{frames.shape[1]} · device {device} · "
                  f"renderer {backend}", highlight=False)
    init = Avatar.load(cfg.refine.pretrained).refiner if cfg.refine.pretrained else None
    avatar_cfg = cfg.avatar.model_copy(update={"backend": backend})
    result = fit_avatar(frames, face_params, camera, avatar_cfg, cfg.refine, device=device, init_refiner=init)
    quality_json = save_fit(result, out)
    if sheet and result.sheet is not None:
        write_png(sheet, result.sheet)
    q = result.quality
    console.print(f"trained {q['iterations']} iterations in {q['train_seconds']}s · {q['n_gaussians']} Gaussians · "
                  f"final loss {q['final_loss']}", highlight=False)
    for name, numbers in q.get("heldout", {}).items():
        console.print(f"held-out {name:<8} PSNR {numbers['psnr_db']:.2f} dB · SSIM {numbers['ssim']:.4f} · "
                      f"flicker {numbers['flicker']}", highlight=False)
    console.print(f"avatar: {out} · quality: {quality_json}" + (f" · sheet: {sheet}" if sheet else ""),
                  highlight=False)


@app.command()
def render(avatar: str = typer.Option(..., "--avatar", help="Avatar file written by `replica avatar train`."),
           params: str = typer.Option(..., "--params", help="FaceParams .npz to render (one row per frame)."),
           out: str = typer.Option(..., "--out", "-o", help="mp4 to write (path or s3:// URL)."),
           audio: Optional[str] = typer.Option(None, help="Video or audio file whose sound is muxed in."),
           refine: bool = typer.Option(True, "--refine/--no-refine", help="Apply the avatar's GAN refiner."),
           config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Render an avatar for the given parameters to an mp4 (H.264 + AAC with the original audio)."""
    from render.avatar import Avatar
    from render.video import read_params, render_video, scaled_camera

    cfg = load(config, overrides)
    device, backend = _device_and_backend(cfg)
    face_params, camera, fps = read_params(params)
    model = Avatar.load(avatar, device=device)
    if camera is not None and model.camera is not None:
        camera = scaled_camera(camera, model.camera.width, model.camera.height)
    n_frames = render_video(out, model, face_params, camera, audio_url=audio, fps=fps or 25.0, backend=backend,
                            refine=refine)
    console.print(f"rendered {n_frames} frames ({n_frames / (fps or 25.0):.1f}s"
                  f"{', refined' if refine and model.refiner is not None else ''}) → {out}", highlight=False)
