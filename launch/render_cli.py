"""`replica render`: a replica speaks a new script (or a recording) → an mp4, streaming as it renders."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from launch.context import ConfigOpt, SetOpt, console, load, require


def render(replica: str = typer.Argument(..., help="A replica bundle folder (path or URL) from `replica create`."),
           text: Optional[str] = typer.Option(None, "--text", "-t", help="The script to speak."),
           text_file: Optional[str] = typer.Option(None, "--text-file", help="Read the script from this file."),
           audio: Optional[str] = typer.Option(None, "--audio", help="Drive the face with this recording instead "
                                                                     "of TTS (any audio or video file)."),
           out: str = typer.Option(..., "--out", "-o", help="The mp4 to write (path or URL; '-' with --stream: "
                                                             "stdout)."),
           stream: bool = typer.Option(False, "--stream", help="Write a fragmented mp4 piece by piece as it renders "
                                                               "(playable while it grows; local path or '-')."),
           export_params: Optional[str] = typer.Option(None, "--export-params", help="Also write the ARKit-52 "
                                                       "blendshape curves and head pose (.csv or .json)."),
           language: Optional[str] = typer.Option(None, "--language", help="Script language (espeak-ng tag: de, "
                                                                           "fr, hi, cmn, …)."),
           voice: Optional[str] = typer.Option(None, "--voice", help="Speak with this pool voice instead of the "
                                                                     "replica's."),
           animator: Optional[str] = typer.Option(None, "--animator", help="An animator export to use instead of "
                                                                           "the bundle's fine-tuned one."),
           size: Optional[int] = typer.Option(None, "--size", help="Longer side of the output frames (pixels; "
                                                                   "default: the person's own video's)."),
           aspect: Optional[str] = typer.Option(None, "--aspect", help="Cut to width:height around the face "
                                                                       "(9:16, 1:1, 16:9)."),
           crop: bool = typer.Option(False, "--crop", help="The rendered head crop alone, not composited into "
                                                           "the person's footage."),
           report: Optional[str] = typer.Option(None, "--report", help="Write the render report (timings, "
                                                                       "real-time factor) as JSON here."),
           config: str = ConfigOpt, overrides: Optional[List[str]] = SetOpt):
    """Render a script with a replica: text → speech → face → video (H.264 + AAC), streaming as it renders."""
    from cluster.runtime import resolve
    from datasets import storage
    from datasets.errors import ReplicaError
    from datasets.media import read_audio
    from datasets.progress import progress_bar
    from launch.config import with_options
    from render.pipeline import framing, load_replica, render_to_file, render_to_url, validate_request

    cfg = load(config, overrides)
    given = [name for name, value in (("--text", text), ("--text-file", text_file), ("--audio", audio))
             if value is not None]
    if len(given) != 1:
        raise ReplicaError("replica render", "give exactly one of --text, --text-file, --audio")
    if stream and out != "-" and storage.is_remote(out):
        raise ReplicaError(out, "--stream writes to a local file or '-' (stdout); drop --stream for object stores")
    require(replica, text_file, audio)
    script = storage.read_text(text_file) if text_file else text
    wav = read_audio(audio) if audio else None
    options = with_options(cfg.render, "render", language=language, voice=voice, size=size, aspect=aspect,
                           framing="crop" if crop else None)
    resolved = resolve(cfg.runtime)
    model = load_replica(replica, animator=animator, device=resolved.device, backend=resolved.renderer)
    validate_request(model, script, wav, options)  # before anything is shown or written
    log = console if out != "-" else None
    if log:
        log.print(f"rendering with {replica} ({framing(model, options)} framing, voice "
                  f"{options.voice or model.voice}) → {out}", highlight=False)
    bar = progress_bar(total=100, desc="render", disable=out == "-")
    shown = [0]

    def advance(fraction: float, frames: int) -> None:
        done = int(fraction * 100)
        bar.update(done - shown[0])
        shown[0] = done

    request = dict(text=script, audio=wav, options=options, export_params=export_params, on_progress=advance)
    if not stream:
        summary = render_to_url(out, model, **request)
    elif out == "-":
        summary = render_to_file(sys.stdout.buffer, model, **request)
    else:
        summary = _grow(out, model, request)
    bar.close()
    if report:
        storage.write_json(report, summary)
    if log:
        log.print(f"{out}: {summary['video_s']:.1f}s of video in {summary['wall_s']:.1f}s "
                  f"({summary['realtime_factor']:.2f}× real time; first chunk after {summary['first_chunk_s']:.2f}s)",
                  highlight=False)


def _grow(out: str, model, request: dict) -> dict:
    """--stream to a local file: `<out>.part` grows piece by piece (playable meanwhile), renamed when done."""
    from render.pipeline import render_to_file

    partial = f"{out}.part"
    try:
        with open(partial, "wb") as f:
            summary = render_to_file(f, model, **request)
        os.replace(partial, out)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return {"url": out, **summary}


def register(app: typer.Typer) -> None:
    """Add the command to the top-level app."""
    app.command()(render)
