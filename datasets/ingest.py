"""Ingestion: raw talking videos → schema samples (one per clip window of speech with a visible face).

Per input file (`ingest_file`, run as one Ray task each by `cluster.ingest`):

1. read the audio (the video's own track, or a separate wav/flac with the same stem) as 16 kHz mono;
2. mark speech with webrtcvad on 30 ms frames; windows of `window_s` start at speech onsets (a
   little before, `preroll_s`), aligned to the 25 fps frame grid, and never overlap;
3. stream the video at 25 fps, track the face through each window with MediaPipe
   (`datasets.faces.track_faces`), re-encode the window's frames as a silent mp4;
4. write the kept windows as samples (`wav`, `mp4`, `lmk.npy`, `bs.npy`, `json`) into the
   file's own shards `part-<index>-NNNNNN.tar`; dropped windows are counted by reason.

Windows are dropped for "no speech" (speech fraction below `min_speech_fraction`), "no face"
(face found in fewer than `min_face_fraction` of frames) or "too short" (a tail shorter than
`min_clip_s`). A bad file (empty, not media, truncated, no audio track) raises `ReplicaError`
naming it; the driver reports it and carries on with the rest.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from datasets import media, storage
from datasets.config import Section
from datasets.errors import ReplicaError
from datasets.faces import track_faces
from datasets.schema import FPS, SAMPLE_RATE, Sample, key_part, npy_bytes
from datasets.shards import ShardInfo, ShardWriter

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm")
AUDIO_EXTENSIONS = (".wav", ".flac")
_VAD_FRAME_S = 0.03  # webrtcvad accepts 10, 20 or 30 ms frames; 30 ms is its most reliable
_SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640 audio samples per video frame


class IngestConfig(Section):
    """How raw videos are cut into samples."""

    window_s: float = Field(4.0, gt=0)
    """Length of a clip window in seconds (rounded to whole 25 fps frames)."""
    min_clip_s: float = Field(1.0, gt=0)
    """A window cut short by the end of the file is kept only if at least this long (seconds)."""
    preroll_s: float = Field(0.2, ge=0)
    """A window starts this many seconds before the speech onset that opens it (lips move first)."""
    vad_aggressiveness: int = Field(2, ge=0, le=3)
    """webrtcvad mode: 0 keeps the most audio as speech, 3 is the strictest."""
    min_speech_fraction: float = Field(0.5, ge=0, le=1)
    """Windows with a smaller share of 30 ms VAD frames marked as speech are dropped ("no speech")."""
    min_face_fraction: float = Field(0.8, ge=0, le=1)
    """Windows where the face is found in a smaller share of frames are dropped ("no face")."""
    face_confidence: float = Field(0.5, ge=0, le=1)
    """MediaPipe FaceLandmarker detection/presence/tracking threshold."""
    max_size: int | None = Field(512, ge=16)
    """Frames larger than this (longer side, pixels) are scaled down before tracking and storing."""
    crf: int = Field(20, ge=0, le=51)
    """x264 quality of the stored mp4 member (lower is better and bigger)."""
    shard_max_count: int = Field(1000, ge=1)
    """Samples per shard before a new shard is started."""
    shard_max_bytes: int = Field(512 * 2**20, ge=1)
    """Bytes per shard before a new shard is started."""


@dataclass(frozen=True)
class SourceFile:
    """One input to ingest: a video, with the audio from its own track or from a paired file."""

    index: int
    """Position in the batch; names the file's shards (`part-<index>`)."""
    video: str
    """URL of the video file."""
    audio: str | None = None
    """URL of a separate wav/flac with the same stem, or None to use the video's own audio."""


@dataclass
class FileResult:
    """What one input file contributed."""

    source: SourceFile
    shards: list[ShardInfo]
    clips: int
    dropped: dict[str, int]
    """Dropped windows by reason: "no speech", "no face", "too short"."""
    duration_s: float
    """Length of the input's audio in seconds."""


@dataclass
class IngestReport:
    """The outcome of one ingestion batch (also stored as the manifest's `info`)."""

    out: str
    inputs: list[dict]
    """Every input file as {"url", "bytes"}: the fingerprint a re-run is compared against."""
    config: dict
    files_in: int = 0
    files_ok: int = 0
    clips_out: int = 0
    hours_in: float = 0.0
    dropped: dict[str, int] = field(default_factory=dict)
    bad_files: list[dict] = field(default_factory=list)
    """One {"path", "reason"} per file that could not be ingested."""
    skipped: bool = False
    """True when an existing manifest already covered these inputs and nothing was done."""

    def info(self) -> dict:
        """The manifest `info` form (everything except `skipped`)."""
        return {k: v for k, v in self.__dict__.items() if k != "skipped"}


def _stem(url: str) -> str:
    return os.path.splitext(url.rstrip("/").rsplit("/", 1)[-1])[0]


def _ext(url: str) -> str:
    return os.path.splitext(url)[1].lower()


def find_sources(urls: list[str]) -> tuple[list[SourceFile], list[dict], list[dict]]:
    """Expand folders, pair videos with same-stem audio files, and fingerprint the inputs.

    urls: files or folders (folders contribute their video and audio files, recursively).
    Returns (sources, bad, inputs): sources to ingest, in sorted order; bad inputs as
    {"path", "reason"} (missing files, audio with no video of the same stem); and inputs as
    {"url", "bytes"} for every file found (the re-run fingerprint). A file given explicitly is
    attempted whatever its extension, so a mislabelled file is reported by what it really is.
    """
    files, bad = [], []
    for url in urls:
        url = str(url)
        if not storage.exists(url):
            bad.append({"path": url, "reason": "no such file or folder"})
            continue
        inside = storage.list_urls(url, recursive=True)  # empty for a file
        if inside:
            files += [u for u in inside if _ext(u) in VIDEO_EXTENSIONS + AUDIO_EXTENSIONS]
        else:
            files.append(url)
    files = sorted(set(files))
    audio_by_stem = {(u.rsplit("/", 1)[0], _stem(u)): u for u in files if _ext(u) in AUDIO_EXTENSIONS}
    videos = [u for u in files if _ext(u) not in AUDIO_EXTENSIONS]
    paired = set()
    sources = []
    for index, video in enumerate(videos):
        audio = audio_by_stem.get((video.rsplit("/", 1)[0], _stem(video)))
        paired.add(audio)
        sources.append(SourceFile(index=index, video=video, audio=audio))
    bad += [{"path": u, "reason": "audio file without a video of the same name"}
            for u in audio_by_stem.values() if u not in paired]
    inputs = [{"url": u, "bytes": storage.size(u)} for u in files]
    return sources, bad, inputs


def speech_mask(wav: np.ndarray, aggressiveness: int = 2) -> np.ndarray:
    """webrtcvad decisions for consecutive 30 ms frames of 16 kHz audio.

    wav: float32 [T] in [-1, 1] at 16 kHz. Returns bool [T // 480]: True where the frame is speech.
    """
    import webrtcvad

    vad = webrtcvad.Vad(aggressiveness)
    step = int(_VAD_FRAME_S * SAMPLE_RATE)
    pcm = (np.clip(wav, -1, 1) * 32767).astype("<i2")
    return np.array([vad.is_speech(pcm[i:i + step].tobytes(), SAMPLE_RATE)
                     for i in range(0, len(pcm) - step + 1, step)], dtype=bool)


def plan_windows(mask: np.ndarray, num_frames: int, cfg: IngestConfig) -> tuple[list[tuple[int, int]], Counter]:
    """Choose clip windows as [start, end) video-frame ranges, opening each at a speech onset.

    mask: bool [N] speech per 30 ms VAD frame. num_frames: video frames (25 fps) in the file.
    Returns (kept windows in order, Counter of dropped windows by reason).
    """
    length = max(1, int(round(cfg.window_s * FPS)))
    preroll = int(round(cfg.preroll_s * FPS))
    vad_frame_of = lambda frame: int(frame / FPS / _VAD_FRAME_S)  # noqa: E731 - a unit conversion
    kept, dropped = [], Counter()
    cursor = 0
    while cursor < num_frames:
        onsets = np.flatnonzero(mask[vad_frame_of(cursor):]) if vad_frame_of(cursor) < len(mask) else []
        if len(onsets) == 0:
            break
        onset_frame = int(round((vad_frame_of(cursor) + onsets[0]) * _VAD_FRAME_S * FPS))
        start = max(cursor, onset_frame - preroll)
        end = min(start + length, num_frames)
        cursor = end
        if end - start < cfg.min_clip_s * FPS:
            dropped["too short"] += 1
            continue
        speech = mask[vad_frame_of(start):max(vad_frame_of(end), vad_frame_of(start) + 1)]
        if speech.mean() < cfg.min_speech_fraction:
            dropped["no speech"] += 1
            continue
        kept.append((start, end))
    return kept, dropped


def ingest_file(source: SourceFile, out: str, cfg: IngestConfig, speaker: str | None = None,
                license: str = "unknown") -> FileResult:
    """Ingest one video into shards `<out>/part-<index>-NNNNNN.tar`; see the module docstring.

    speaker: speaker id for every clip (None: the video's file stem). license: stored in each
    sample's json. Raises ReplicaError(url, reason) for an unreadable input.
    """
    info = media.probe(source.video)
    if not info.has_video:
        raise ReplicaError(source.video, "no video track")
    wav = media.read_audio(source.audio or source.video, SAMPLE_RATE)
    stem = _stem(source.video)
    speaker = speaker or stem
    num_frames = min(int(round(info.duration_s * FPS)), len(wav) // _SAMPLES_PER_FRAME)
    windows, dropped = plan_windows(speech_mask(wav, cfg.vad_aggressiveness), num_frames, cfg)
    size = cfg.max_size if cfg.max_size and max(info.width or 0, info.height or 0) > cfg.max_size else None
    clip_source = f"{key_part(stem)}_{hashlib.sha1(source.video.encode()).hexdigest()[:6]}"
    meta = {"speaker": speaker, "source": source.video, "license": license, "fps": FPS, "text": None}
    if source.audio:
        meta["audio_source"] = source.audio
    clips = 0
    with ShardWriter(out, prefix=f"part-{source.index:05d}", max_count=cfg.shard_max_count,
                     max_bytes=cfg.shard_max_bytes) as writer:
        for number, (start, frames) in enumerate(_window_frames(source.video, windows, size)):
            track = track_faces(frames, FPS, cfg.face_confidence)
            if track.found_fraction < cfg.min_face_fraction:
                dropped["no face"] += 1
                continue
            end = start + len(frames)
            sample = Sample(
                key=f"{clip_source}-{key_part(speaker)}-{number:05d}",
                wav=wav[start * _SAMPLES_PER_FRAME:end * _SAMPLES_PER_FRAME].copy(),
                meta={**meta, "start_s": round(start / FPS, 3), "face_found": round(track.found_fraction, 3)},
                lmk=track.lmk, mp4=media.encode_mp4(frames, FPS, crf=cfg.crf),
                extra={"bs.npy": npy_bytes(track.blendshapes)})
            writer.write(sample)
            clips += 1
    return FileResult(source, writer.shards, clips, dict(dropped), len(wav) / SAMPLE_RATE)


def _window_frames(url: str, windows: list[tuple[int, int]], size: int | None):
    """Yield (start_frame, uint8 [F, H, W, 3]) per window while streaming the video once."""
    if not windows:
        return
    current, frames = 0, []
    for index, rgb in enumerate(media.iter_video(url, fps=FPS, size=size)):
        start, end = windows[current]
        if start <= index < end:
            frames.append(rgb)
        if index == end - 1:
            yield start, np.stack(frames)
            current, frames = current + 1, []
            if current == len(windows):
                return
    if frames:  # the video ended early (shorter than its audio): keep what the window got
        yield windows[current][0], np.stack(frames)
