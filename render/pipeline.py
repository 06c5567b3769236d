"""Text → video with a replica: one streaming generator from a script to mp4 pieces.

    replica = load_replica("runs/replicas/alice")               # verified bundle → models on the device
    for chunk in render_chunks(replica, text="Hello there."):    # Chunk: frames, audio, parameters
        ...
    render_to_url("out.mp4", replica, text="Hello there.")      # or stream_mp4(...) for fragmented pieces

Stages, each consuming and yielding pieces with bounded look-ahead (so a 10-minute script runs in the
memory of a 10-second one, and the first chunk leaves long before the last sentence is spoken):

    sentences → TTS with the replica's voice and prosody (or the given recording), whole video frames of
    16 kHz audio → `stream_log_mel` → `AudioEncoder.stream` → `Animator.stream` → + the replica's idle
    motion (blinks, brows, head sway) → head model → Gaussian splats (gsplat on CUDA, the torch
    rasterizer on CPU) → refiner carrying its previous frame → composited into the person's own footage
    (`render.composite`; or the head crop alone) → chunks of frames with their audio.

A chunked run equals a whole run: features exactly, encoder and animator to float rounding (up to the
conformer's `STREAM_HISTORY` of past frames), frames exactly given the same parameters (the refiner carries
its state across chunks). Audio frame f owns samples [640 f, 640 (f + 1)), so every chunk's audio is
exactly its frames' duration.

Poses and the upper face: the animator speaks in the pose and expression distribution of its training data,
so its head and neck motion is re-centred on the person's own mean pose from tracking (the avatar was trained
on those views), its translation is the person's mean, and the expression channels speech barely drives (eyes,
brows, cheek squint: `UPPER_FACE`) are re-centred on the person's tracked median (the eyelids and brows the
avatar learnt). "Re-centred" means the animator's own typical output — its mean over the person's own speech
(`centre`, measured once when the replica loads) — is replaced by the person's: a fine-tuned animator learns
the person's mean pose and brows in its weights, not only its output biases, so the biases are not its centre.
"""

from __future__ import annotations

import collections
import io
import itertools
import time
from dataclasses import dataclass
from typing import IO, Callable, Iterable, Iterator, Literal

import numpy as np
import torch
from pydantic import Field

from datasets import storage
from datasets.config import Section
from datasets.errors import ReplicaError
from datasets.media import Mp4Stream, decode_audio_bytes, read_audio
from datasets.schema import EXPRESSION_NAMES, FPS, SAMPLE_RATE
from foundation.audio.features import log_mel, stream_log_mel
from foundation.head import FaceParams, HeadModel, default_head_model, load_params
from foundation.models import AnimatorModel, load_animator
from foundation.tts import SENTENCE_PAUSE_S, get_voice, language_voice, split_sentences
from personalize.bundle import read_manifest, verify
from personalize.idle import IdleStats, idle_motion
from personalize.prosody import ProsodyShift
from personalize.voice import speak
from render.avatar import Avatar
from render.composite import Plate, composite, frame_to_aspect, load_plate
from render.refine import refine_frames

SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
"""Audio samples per video frame (640 at 16 kHz and 25 fps)."""
DEFAULT_VOICE = "piper:joe"
"""The voice of a bundle made before voice choice existed."""
UPPER_FACE = tuple(i for i, name in enumerate(EXPRESSION_NAMES) if name.startswith(("eye", "brow", "cheekSquint")))
"""Expression channels above the mouth (eyeBlink/Squint/Wide/Look*, brows, cheekSquint), rendered around the
person's tracked median."""
CENTRE_SECONDS = 10.0
"""Seconds of the person's own speech the animator's typical output (`Replica.centre`) is measured on."""
__all__ = ["Chunk", "RenderOptions", "Replica", "decode_audio_bytes", "framing", "load_replica", "render_chunks",
           "render_to_file", "render_to_url", "stream_mp4", "validate_request"]


class RenderOptions(Section):
    """How one script is rendered (the run config's `render` section; per request in the server)."""

    language: str | None = None
    """Language of the script as an espeak-ng tag (`de`, `fr`, `hi`, `cmn`, …); None: the replica voice's own.
    The replica's voice speaks it when it can, else the espeak-ng voice of the same gender."""
    voice: str | None = None
    """A pool voice id to speak with instead of the replica's chosen voice (its prosody shift is then not used)."""
    max_chars: int = Field(20_000, ge=1)
    """Longest script accepted, in characters (~20 minutes of speech)."""
    chunk_frames: int = Field(25, ge=1)
    """Frames per chunk after the first (25 = 1 s): the unit of streaming, encoding and progress."""
    first_chunk_frames: int = Field(5, ge=1)
    """Frames in the first chunk: short, so the first playable piece leaves early."""
    refine: bool = True
    """Run the avatar's GAN refiner (when it has one)."""
    idle: bool = True
    """Add the replica's idle motion (blinks, brows, head sway) to what the animator drives."""
    seed: int = 0
    """Seed of the idle motion (same seed, same blinks)."""
    framing: Literal["person", "crop"] = "person"
    """person: the head composited back into the person's own footage (a calm stretch looped), at its resolution
    and aspect ratio (bundles whose source video is gone fall back to crop); crop: the rendered head crop alone."""
    size: int | None = Field(None, ge=16)
    """Longer side of the output frames in pixels (None: the source video's, or with crop the avatar's)."""
    aspect: str | None = Field(None, pattern=r"^\d+(\.\d+)?:\d+(\.\d+)?$")
    """Cut the output to this width:height around the face (e.g. 9:16, 1:1, 16:9); None keeps the frame's own."""
    plate_seconds: float = Field(3.0, gt=0)
    """Length of the person's footage looped behind the head (seconds; the calmest stretch is used)."""
    crf: int = Field(20, ge=0, le=51)
    """x264 quality of the mp4 (0 lossless … 51 worst)."""


@dataclass
class Replica:
    """A replica bundle loaded for rendering (models in eval mode on `device`)."""

    url: str
    avatar: Avatar
    model: AnimatorModel
    voice: str
    """The pool voice the replica speaks with."""
    shift: ProsodyShift
    """Tempo and pitch change fitted to the person."""
    idle: IdleStats
    rest: dict[str, torch.Tensor]
    """The person's identity `shape` [S], mean `neck`, `rot`, `trans` [3] and median `expr` [52] over their
    tracked video."""
    centre: dict[str, torch.Tensor]
    """The animator's typical output: mean `expr` [52], `neck`, `rot`, `trans` [3] over the person's own speech
    (the bundle's, up to `CENTRE_SECONDS`; its output biases when the bundle has no speech)."""
    head: HeadModel
    device: str
    backend: str = "auto"
    """`render.raster` backend: "auto" (gsplat on CUDA, the torch rasterizer on CPU), "gsplat" or "torch"."""
    source: dict | None = None
    """The person's footage for `framing: person`: "video" URL, "boxes" [F, 3] crop boxes and "size" (w, h) in
    source pixels, "motion" [F, 6] tracked rot + trans; None when the bundle has no reachable source video."""


@dataclass
class Chunk:
    """Frames [start_frame, start_frame + n) of a render with their audio and parameters."""

    start_frame: int
    frames: np.ndarray
    """uint8 [n, H, W, 3]."""
    audio: np.ndarray
    """float32 [n · 640] at 16 kHz: exactly these frames' duration."""
    params: dict[str, np.ndarray]
    """The frames' parameters: expr [n, 52] ARKit weights, jaw/neck/rot [n, 3] axis-angle rad, trans [n, 3] m."""
    progress: float
    """Fraction of the script rendered so far, 0–1."""


def _artifact(manifest: dict, bundle: str, name: str) -> str | None:
    entry = manifest["artifacts"].get(name)
    return None if entry is None else storage.join(bundle, entry["url"])


def load_replica(url: str, *, animator: str | None = None, device: str = "cpu", backend: str = "auto",
                 verify_hashes: bool = True) -> Replica:
    """Load a complete replica bundle for rendering.

    Args:
        url: the bundle folder (`replica create --out`).
        animator: an animator export to use instead of the bundle's fine-tuned one (required for bundles
            made before fine-tuning existed).
        device: where the models run ("cpu" or "cuda").
        backend: the splat rasterizer (`Replica.backend`).
        verify_hashes: re-hash every artifact first (`replica verify`); a mismatch is an error.
    Raises:
        ReplicaError naming the bundle for a missing, partial or corrupt bundle or a missing model.
    """
    manifest = read_manifest(url)
    if verify_hashes:
        report = verify(url)
        if not report["ok"]:
            raise ReplicaError(url, f"fails verification: {report['problems'][0]}")
    avatar_url = _artifact(manifest, url, "avatar/avatar")
    params_url = _artifact(manifest, url, "track/params")
    if avatar_url is None or params_url is None:
        raise ReplicaError(url, "bundle has no avatar or tracked parameters")
    animator = animator or _artifact(manifest, url, "finetune/animator")
    if animator is None:
        raise ReplicaError(url, "bundle has no fine-tuned animator; pass one (--animator URL)")
    avatar = Avatar.load(avatar_url, device=device).eval()
    if avatar.camera is None:
        raise ReplicaError(avatar_url, "avatar has no camera to render with")
    model = load_animator(animator)
    model.encoder.to(device)
    model.animator.to(device)
    voice_url, idle_url = _artifact(manifest, url, "voice/voice"), _artifact(manifest, url, "finetune/idle")
    record = storage.read_json(voice_url) if voice_url else {"voice": DEFAULT_VOICE}
    idle = IdleStats.from_json(storage.read_json(idle_url)) if idle_url else IdleStats.default()
    tracked = load_params(params_url).params
    shape = tracked.shape if tracked.shape.dim() == 1 else tracked.shape.mean(0)
    rest = {"shape": shape, "expr": tracked.expr.median(0).values,
            **{key: getattr(tracked, key).mean(0) for key in ("neck", "rot", "trans")}}
    source = _source(manifest, url, tracked)
    return Replica(url, avatar, model, record["voice"], ProsodyShift(record.get("tempo", 1.0),
                                                                     record.get("semitones", 0.0)),
                   idle, {k: v.to(device) for k, v in rest.items()},
                   _centre(model, _own_speech(manifest, url, source), device), default_head_model().to(device),
                   device, backend, source)


def _own_speech(manifest: dict, bundle: str, source: dict | None) -> np.ndarray | None:
    """Up to `CENTRE_SECONDS` of the person's speech (float32, 16 kHz): the bundle's crop, else the source video;
    None when neither is there."""
    url = _artifact(manifest, bundle, "ingest/crop") or (source or {}).get("video")
    return None if url is None else read_audio(url)[:int(CENTRE_SECONDS * SAMPLE_RATE)]


@torch.no_grad()
def _centre(model: AnimatorModel, speech: np.ndarray | None, device: str) -> dict[str, torch.Tensor]:
    """The animator's mean output over `speech` (float32 [T] at 16 kHz): `expr` [52], `neck`/`rot`/`trans` [3];
    without speech (under a frame), its output biases (its training data's mean face and pose)."""
    animator = model.animator
    if speech is None or len(speech) < SAMPLES_PER_FRAME:
        zero = torch.zeros(3, device=device)
        return {"expr": torch.sigmoid(animator.expr.bias),
                **{key: animator.pose[key].bias if key in animator.pose else zero for key in ("neck", "rot", "trans")}}
    wav = torch.as_tensor(speech[:len(speech) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME], device=device)[None]
    encoded = model.encoder(log_mel(wav, model.features))
    out = animator(encoded.latent, encoded.embedding if animator.cfg.style_dim else None)
    return {key: out[key][0].mean(0) for key in ("expr", "neck", "rot", "trans")}


def _source(manifest: dict, bundle: str, tracked: FaceParams) -> dict | None:
    """The person's footage and crop boxes, when the bundle has them and the source video is still there."""
    face_url, report_url = _artifact(manifest, bundle, "ingest/face"), _artifact(manifest, bundle, "ingest/report")
    video = manifest.get("input", {}).get("video")
    if face_url is None or report_url is None or not video or not storage.exists(video):
        return None
    with np.load(io.BytesIO(storage.read_bytes(face_url))) as face:
        boxes = face["boxes"]
    motion = torch.cat([tracked.rot, tracked.trans], dim=1).numpy()
    return {"video": video, "boxes": boxes, "size": tuple(storage.read_json(report_url)["source_size"]),
            "motion": motion}


def validate_request(replica: Replica, text: str | None, audio: np.ndarray | None, options: RenderOptions) -> str:
    """Check a request before any work. Returns the voice id that will speak ("" for audio-driven renders).

    Raises ReplicaError naming the input: neither or both of text and audio, empty or over-long text, a
    voice or language the pool does not have, audio shorter than one frame.
    """
    if (text is None) == (audio is None):
        raise ReplicaError("render request", "give exactly one of text or audio")
    if audio is not None:
        if audio.ndim != 1 or len(audio) < SAMPLES_PER_FRAME:
            raise ReplicaError("audio", f"expected mono audio of at least one frame ({SAMPLES_PER_FRAME} samples)")
        return ""
    if len(text) > options.max_chars:
        raise ReplicaError("text", f"is {len(text)} characters; the limit is {options.max_chars} (render.max_chars)")
    if not split_sentences(text):
        raise ReplicaError("text", "is empty: nothing to say")
    voice = get_voice(options.voice or replica.voice).id
    return language_voice(voice, options.language) if options.language else voice


def _speech(replica: Replica, text: str | None, audio: np.ndarray | None, voice: str, options: RenderOptions,
            progress: list[float]) -> Iterator[np.ndarray]:
    """The render's audio in pieces of whole video frames (float32, 16 kHz); updates `progress[0]`.

    Text is spoken sentence by sentence (each padded to whole frames, with the pool's pause between), so
    the first sentence is on its way before the second is synthesised.
    """
    piece = options.chunk_frames * SAMPLES_PER_FRAME
    if audio is not None:
        padded = np.pad(audio.astype(np.float32), (0, -len(audio) % SAMPLES_PER_FRAME))
        for start in range(0, len(padded), piece):
            progress[0] = min(1.0, (start + piece) / len(padded))
            yield padded[start:start + piece]
        return
    sentences = split_sentences(text)
    shift = replica.shift if voice == replica.voice else ProsodyShift()
    pause = np.zeros(round(SENTENCE_PAUSE_S * SAMPLE_RATE), np.float32)
    spoken = 0
    for i, sentence in enumerate(sentences):
        wav = speak(sentence, voice, shift)
        wav = np.concatenate([wav, pause]) if i < len(sentences) - 1 else wav
        wav = np.pad(wav, (0, -len(wav) % SAMPLES_PER_FRAME))
        spoken += len(sentence)
        for start in range(0, len(wav), piece):
            if start + piece >= len(wav):
                progress[0] = spoken / sum(map(len, sentences))
            yield wav[start:start + piece]


def _style(replica: Replica, first: np.ndarray) -> torch.Tensor | None:
    """The animator's style input when it has one: the speaker embedding of the first piece of speech."""
    if not replica.model.animator.cfg.style_dim:
        return None
    from foundation.audio.features import log_mel

    mel = log_mel(torch.as_tensor(first, device=replica.device)[None], replica.model.features)
    return replica.model.encoder(mel).embedding


def _posed(replica: Replica, animated: dict[str, torch.Tensor], start: int, options: RenderOptions) -> FaceParams:
    """Face parameters for animator frames [start, start + n): speech-driven mouth, pose and upper face moving
    about the person's tracked rest (the animator's `centre` swapped for `rest`), plus idle motion."""
    n = animated["expr"].shape[0]
    rest, centre = replica.rest, replica.centre
    upper = list(UPPER_FACE)
    expr = animated["expr"].clone()
    expr[:, upper] += rest["expr"][upper] - centre["expr"][upper]
    rot = rest["rot"] + animated["rot"] - centre["rot"]
    if options.idle:
        idle = idle_motion(replica.idle, start, n, options.seed)
        expr = expr + torch.as_tensor(idle["expr"], device=expr.device)
        rot = rot + torch.as_tensor(idle["rot"], device=expr.device)
    trans = rest["trans"].expand(n, 3)
    if "trans" in replica.model.animator.pose:
        trans = trans + animated["trans"] - centre["trans"]
    return FaceParams(shape=rest["shape"], expr=expr.clamp(0.0, 1.0), jaw=animated["jaw"],
                      neck=rest["neck"] + animated["neck"] - centre["neck"], rot=rot, trans=trans)


def _frames(replica: Replica, params: FaceParams, previous: torch.Tensor | None,
            options: RenderOptions) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Render frames for `params` (splats, then the refiner from `previous`). → ([n, H, W, 3] in [0, 1], last)"""
    avatar = replica.avatar
    verts = replica.head(params)
    frames = torch.stack([avatar.splat(v, avatar.camera, replica.backend)[0] for v in verts])
    if options.refine and avatar.refiner is not None:
        frames = refine_frames(avatar.refiner, frames, previous)
        previous = frames[-1]
    return frames.clamp(0.0, 1.0), previous


def _resized(frames: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or max(frames.shape[1:3]) == size:
        return frames
    scale = size / max(frames.shape[1:3])
    height, width = round(frames.shape[1] * scale), round(frames.shape[2] * scale)
    return torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2), size=(height, width), mode="bilinear",
                                           antialias=True, align_corners=False).permute(0, 2, 3, 1)


def _regroup(pieces: Iterator[dict[str, torch.Tensor]], first: int, size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Animator outputs (any sizes) → chunks of `first`, then `size` frames (the last may be shorter)."""
    held: list[dict[str, torch.Tensor]] = []
    count, want = 0, first
    for piece in pieces:
        held.append({k: v[0] for k, v in piece.items()})
        count += held[-1]["expr"].shape[0]
        while count >= want:
            joined = {k: torch.cat([h[k] for h in held]) for k in held[0]}
            yield {k: v[:want] for k, v in joined.items()}
            held, count = [{k: v[want:] for k, v in joined.items()}], count - want
            want = size
    if count:
        yield {k: torch.cat([h[k] for h in held]) for k in held[0]}


def face_stream(replica: Replica, speech: Iterable[torch.Tensor],
                style: torch.Tensor | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Speech → animator output, streaming: log-mel → audio encoder → animator, each with bounded look-ahead.

    speech: [1, t_k] float32 pieces at 16 kHz, each a whole number of video frames (640 samples).
    Yields the animator's dicts (expr [1, n, 52], jaw/neck/rot/trans [1, n, 3]) as their look-ahead arrives.
    """
    model = replica.model
    mel = stream_log_mel(speech, model.features, multiple=model.features.frames_per_video_frame)
    return model.animator.stream(model.encoder.stream(mel), style)


@torch.no_grad()
def render_chunks(replica: Replica, *, text: str | None = None, audio: np.ndarray | None = None,
                  options: RenderOptions | None = None) -> Iterator[Chunk]:
    """Render a script (or a 16 kHz mono recording, float32 [T]) as chunks of frames with their audio.

    Every stage streams (see the module docstring); what the generator holds at any time is bounded by a
    chunk, the models' look-ahead and `STREAM_HISTORY` frames of encoder/animator context, whatever the
    script's length. Raises ReplicaError (before any work) for a bad request; see `validate_request`.
    """
    options = options or RenderOptions()
    voice = validate_request(replica, text, audio, options)
    progress = [0.0]
    speech = _speech(replica, text, audio, voice, options, progress)
    first = next(speech)
    style = _style(replica, first)
    pending: collections.deque[np.ndarray] = collections.deque()  # audio whose frames are not out yet

    def heard() -> Iterator[torch.Tensor]:
        for wav in itertools.chain([first], speech):
            pending.append(wav)
            yield torch.as_tensor(wav, device=replica.device)[None]

    plate = _plate(replica, options)
    start, previous = 0, None
    for part in _regroup(face_stream(replica, heard(), style), options.first_chunk_frames, options.chunk_frames):
        params = _posed(replica, part, start, options)
        frames, previous = _frames(replica, params, previous, options)
        n = frames.shape[0]
        wav = _take(pending, n * SAMPLES_PER_FRAME)
        yield Chunk(start, _framed(frames, start, plate, options), wav,
                    {key: getattr(params, key).cpu().numpy() for key in ("expr", "jaw", "neck", "rot", "trans")},
                    progress[0])
        start += n


def framing(replica: Replica, options: RenderOptions) -> str:
    """The framing a render will have: "person" or "crop" (the latter also when the source video is gone)."""
    return "person" if options.framing == "person" and replica.source is not None else "crop"


def _plate(replica: Replica, options: RenderOptions) -> Plate | None:
    if framing(replica, options) != "person":
        return None
    source = replica.source
    return load_plate(source["video"], source["boxes"], source["motion"], source["size"], size=options.size,
                      seconds=options.plate_seconds)


def _framed(frames: torch.Tensor, start: int, plate: Plate | None, options: RenderOptions) -> np.ndarray:
    """Rendered crops [n, s, s, 3] in [0, 1] → output frames: composited into the plate (or resized), then cut
    to `options.aspect` around the face."""
    if plate is None:
        out = _uint8(_resized(frames, options.size))
        centre = (out.shape[2] / 2, out.shape[1] / 2)
    else:
        out = composite(_uint8(frames), start, plate)
        box = plate.boxes.mean(0)
        centre = (box[0] + box[2] / 2, box[1] + box[2] / 2)
    if options.aspect:
        width, height = (float(v) for v in options.aspect.split(":"))
        out = frame_to_aspect(out, width / height, *centre)
    return out


def _take(pending: collections.deque[np.ndarray], n: int) -> np.ndarray:
    """The first `n` samples of the queued audio pieces (removed from the queue)."""
    out, need = [], n
    while need and pending:
        head = pending.popleft()
        out.append(head[:need])
        if len(head) > need:
            pending.appendleft(head[need:])
        need -= len(out[-1])
    if need:
        raise ReplicaError("render", f"audio ran out {need} samples before the frames (pipeline bug)")
    return np.concatenate(out)


def _uint8(frames: torch.Tensor) -> np.ndarray:
    return (frames * 255.0).round().to(torch.uint8).cpu().numpy()


def stream_mp4(replica: Replica, *, text: str | None = None, audio: np.ndarray | None = None,
               options: RenderOptions | None = None, on_chunk: Callable[[Chunk], None] | None = None
               ) -> Iterator[bytes]:
    """The render as a fragmented mp4 (H.264 + AAC), in pieces as chunks finish: every prefix ending at a
    piece plays, the first piece is the init segment. `on_chunk` sees each chunk (progress, export)."""
    options = options or RenderOptions()
    stream = None
    for chunk in render_chunks(replica, text=text, audio=audio, options=options):
        if stream is None:
            stream = Mp4Stream(chunk.frames.shape[2], chunk.frames.shape[1], fps=FPS, crf=options.crf)
        if on_chunk is not None:
            on_chunk(chunk)
        piece = stream.write(chunk.frames, chunk.audio)
        if piece:
            yield piece
    yield stream.close()


def render_to_file(f: IO[bytes], replica: Replica, *, text: str | None = None, audio: np.ndarray | None = None,
                   options: RenderOptions | None = None, export_params: str | None = None,
                   on_progress: Callable[[float, int], None] | None = None) -> dict:
    """Render into an open binary file as a fragmented mp4, flushing after every piece (so a file or pipe
    being written plays while it grows).

    export_params: also write the per-frame ARKit-52 curves and head pose (`render.export`) to this URL
    (`.csv` or `.json`) once the render is done. on_progress(fraction, frames) is called after every chunk.
    Returns a report: frames, seconds of video, wall seconds, real-time factor, time to the first chunk.
    """
    from render.export import ParamsExport

    started = time.perf_counter()
    state = {"frames": 0, "first_s": None}
    export = ParamsExport() if export_params else None

    def seen(chunk: Chunk) -> None:
        state["frames"] += len(chunk.frames)
        if state["first_s"] is None:
            state["first_s"] = time.perf_counter() - started
        if export is not None:
            export.add(chunk.params)
        if on_progress is not None:
            on_progress(chunk.progress, state["frames"])

    for piece in stream_mp4(replica, text=text, audio=audio, options=options, on_chunk=seen):
        f.write(piece)
        f.flush()
    if export is not None:
        export.write(export_params)
    wall = time.perf_counter() - started
    seconds = state["frames"] / FPS
    return {"frames": state["frames"], "video_s": round(seconds, 3), "wall_s": round(wall, 3),
            "realtime_factor": round(seconds / wall, 3) if wall else None,
            "first_chunk_s": None if state["first_s"] is None else round(state["first_s"], 3)}


def render_to_url(url: str, replica: Replica, **request) -> dict:
    """`render_to_file` into `url`, written atomically: nothing appears there unless the render finishes
    (any storage URL). Takes `render_to_file`'s keyword arguments; the report gains `url`."""
    with storage.open_write(url) as f:
        report = render_to_file(f, replica, **request)
    return {"url": url, **report}
