"""`replica avatar …`: train and render a Gaussian-splat avatar of one person."""

from __future__ import annotations

from typing import List, Optional

import typer

from launch.context import ConfigOpt, SetOpt, console, load, output, require

app = typer.Typer(help="Train and render a Gaussian-splat avatar bound to the head model.", no_args_is_help=True)


def device_and_backend(cfg) -> tuple[str, str]:
    """The device from the runtime section; the avatar's backend unless it is auto (then the runtime's renderer)."""
    from cluster.runtime import resolve

    resolved = resolve(cfg.runtime)
    backend = resolved.renderer if cfg.avatar.backend == "auto" else cfg.avatar.backend
    return resolved.device, backend


@app.command()
def train(video: str = typer.Option(..., "--video", help="The person's video (mp4 with the face in view)."),
          params: str = typer.Option(..., "--params", help="Per-frame FaceParams + camera .npz matching the video."),
          out: Optional[str] = typer.Option(None, "--out", "-o", help="Avatar file to write (path or s3:// URL) "
                                                                     "(default: <storage.root>/avatar/avatar.pt)."),
          sheet: Optional[str] = typer.Option(None, help="Also write truth | splat | refined of held-out frames "
                                                         "as a PNG here."),
          config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Train an avatar on the first frames, evaluate it on the held-out rest, write it with its quality JSON."""
    from launch.config import with_options
    from render.avatar import Avatar
    from render.fit import fit_avatar, quality_lines, save_fit
    from render.video import read_person, write_png

    cfg = load(config, overrides)
    require(video, params, cfg.refine.pretrained)
    out = output(cfg, out, "avatar", "avatar.pt")
    device, backend = device_and_backend(cfg)
    frames, face_params, camera, _ = read_person(video, params, cfg.avatar.image_size)
    console.print(f"person: {len(frames)} frames at {frames.shape[2]}x{frames.shape[1]} · device {device} · "
                  f"renderer {backend}", highlight=False)
    init = Avatar.load(cfg.refine.pretrained).refiner if cfg.refine.pretrained else None
    avatar_cfg = with_options(cfg.avatar, "avatar", backend=backend)
    result = fit_avatar(frames, face_params, camera, avatar_cfg, cfg.refine, device=device, init_refiner=init)
    quality_json = save_fit(result, out)
    if sheet and result.sheet is not None:
        write_png(sheet, result.sheet)
    q = result.quality
    console.print(f"trained {q['iterations']} iterations in {q['train_seconds']}s · {q['n_gaussians']} Gaussians · "
                  f"final loss {q['final_loss']}", highlight=False)
    for line in quality_lines(q):
        console.print(line, highlight=False)
    console.print(f"avatar: {out} · quality: {quality_json}" + (f" · sheet: {sheet}" if sheet else ""),
                  highlight=False)


@app.command()
def render(avatar: str = typer.Option(..., "--avatar", help="Avatar file written by `replica avatar train`."),
           params: str = typer.Option(..., "--params", help="FaceParams .npz to render (one row per frame)."),
           out: Optional[str] = typer.Option(None, "--out", "-o", help="mp4 to write (path or s3:// URL) "
                                                                      "(default: <storage.root>/avatar/render.mp4)."),
           audio: Optional[str] = typer.Option(None, help="Video or audio file whose sound is muxed in."),
           refine: bool = typer.Option(True, "--refine/--no-refine", help="Apply the avatar's GAN refiner."),
           config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Render an avatar for the given parameters to an mp4 (H.264 + AAC with the original audio)."""
    cfg = load(config, overrides)
    require(avatar, params, audio)
    out = output(cfg, out, "avatar", "render.mp4")
    n_frames, fps, refined = render_avatar(cfg, avatar, params, out, audio_url=audio, refine=refine)
    console.print(f"rendered {n_frames} frames ({n_frames / fps:.1f}s{', refined' if refined else ''}) → {out}",
                  highlight=False)


def render_avatar(cfg, avatar_url: str, params_url: str, out: str, audio_url: Optional[str] = None,
                  refine: bool = True) -> tuple[int, float, bool]:
    """Render the avatar at `avatar_url` for every frame of the params .npz at `params_url` to the mp4 `out`,
    with the sound of `audio_url` muxed in; returns (frames written, fps, whether the refiner was applied)."""
    from foundation.head import load_params
    from render.avatar import Avatar
    from render.video import render_video, scaled_camera

    device, backend = device_and_backend(cfg)
    person = load_params(params_url)
    face_params, camera, fps = person.params, person.camera, person.fps
    model = Avatar.load(avatar_url, device=device)
    if camera is not None and model.camera is not None:
        camera = scaled_camera(camera, model.camera.width, model.camera.height)
    n_frames = render_video(out, model, face_params, camera, audio_url=audio_url, fps=fps, backend=backend,
                            refine=refine)
    return n_frames, fps, refine and model.refiner is not None
