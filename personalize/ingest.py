"""Ingest one person's video for replica creation: checks, 16 kHz speech, a stable face crop, its landmarks.

What phones and webcams produce goes in as it is: portrait or landscape (the display rotation in the file is
honoured by `datasets.media`), variable frame rate (resampled to 25 fps), 720p–4K, stereo 44.1/48 kHz AAC
(→ 16 kHz mono). The video is streamed twice and its frames are never held whole, so memory does not grow with
the video's resolution or (beyond the landmarks, ~6 KB a frame) its length:

1. at `track_size` pixels (longer side) MediaPipe tracks the face in every frame, as the frames are decoded;
2. a square crop box per frame is derived from the landmarks, its centre smoothed over time and its side fixed
   for the whole video (the largest smoothed face size × `margin`), so the crop follows the head without ever
   jumping or zooming; the frames are streamed again at full size and cut to `image_size`².

Before any heavy work it rejects, with a one-line reason (`ReplicaError(url, reason)`): unreadable or truncated
files and files without a video track (`datasets.media`), no audio track, too short (`min_seconds`), no
speech (voice activity), no face in most frames, several faces, a face too small. Only the first `max_seconds`
are used (the steps are sized for 1–2 minutes; a 20-minute recording would only cost time and memory): the
report says how much was left out. The result reports the usable fraction (frames where the face was found).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from scipy.ndimage import gaussian_filter1d

from datasets import media
from datasets.config import Section
from datasets.errors import ReplicaError
from datasets.faces import count_faces, track_faces
from datasets.ingest import speech_mask
from datasets.progress import progress_bar
from datasets.schema import FPS, SAMPLE_RATE


class PersonIngestConfig(Section):
    """How a person's video is checked and cut to a face crop."""

    track_size: int = Field(512, ge=64)
    """Frames are scaled so their longer side is this many pixels for face tracking."""
    min_seconds: float = Field(30.0, ge=0)
    """Videos shorter than this are rejected."""
    max_seconds: float = Field(300.0, gt=0)
    """Only the first this-many seconds of a longer video are used (the report records what was left out)."""
    min_face_fraction: float = Field(0.8, ge=0, le=1)
    """The face must be found in at least this share of frames."""
    min_face_px: float = Field(64.0, ge=0)
    """The face (its landmarks' height) must span at least this many pixels of the original video."""
    min_speech_fraction: float = Field(0.2, ge=0, le=1)
    """At least this share of the audio must be speech (webrtcvad)."""
    face_check_frames: int = Field(8, ge=1)
    """Frames (evenly spread) checked for a second face."""
    margin: float = Field(1.9, ge=1.0)
    """Crop side as a multiple of the face's height (room for hair, chin and shoulders)."""
    smooth_s: float = Field(0.5, gt=0)
    """Time scale (seconds) of the crop centre's smoothing."""
    price_of_tracking: bool = True
    """For a synthetic person (true parameters beside the video), the avatar step also trains an avatar on the
    true parameters and records how many dB of held-out PSNR tracking costs (its metrics' `truth`; not shipped)."""

    @model_validator(mode="after")
    def _lengths(self) -> PersonIngestConfig:
        if self.max_seconds < self.min_seconds:
            raise ValueError(f"max_seconds ({self.max_seconds:g}) is below min_seconds ({self.min_seconds:g})")
        return self


@dataclass
class PersonVideo:
    """A person's video, ingested.

    Fields:
        frames: the face crop of every frame at 25 fps, RGB. uint8 [F, S, S, 3]
        audio: speech, mono float32 at 16 kHz. [T]
        lmk: MediaPipe landmarks in the crop's normalised coordinates. [F, 478, 3]
        blendshapes: MediaPipe's expression scores, `EXPRESSION_NAMES` order. [F, 52]
        found: frames where the face was found (others interpolated). [F] bool
        boxes: crop box per frame in source pixels: x0, y0, side. [F, 3]
        info: the source's MediaInfo; report: JSON-able checks and numbers (usable fraction, …).
    """

    frames: np.ndarray
    audio: np.ndarray
    lmk: np.ndarray
    blendshapes: np.ndarray
    found: np.ndarray
    boxes: np.ndarray
    info: media.MediaInfo
    report: dict


def check_media(url: str, cfg: PersonIngestConfig) -> tuple[media.MediaInfo, np.ndarray]:
    """The cheap checks (headers and audio only): returns the media info and 16 kHz mono speech."""
    info = media.probe(url)
    if not info.has_video:
        raise ReplicaError(url, "no video track")
    if not info.has_audio:
        raise ReplicaError(url, "no audio track: replica learns the voice and lip sync from the video's sound")
    if info.duration_s < cfg.min_seconds:
        raise ReplicaError(url, f"{info.duration_s:.1f} s long, shorter than the {cfg.min_seconds:g} s minimum "
                                "(creation.min_seconds)")
    audio = media.read_audio(url, SAMPLE_RATE)
    speech = float(speech_mask(audio).mean()) if len(audio) >= SAMPLE_RATE // 10 else 0.0
    if speech < cfg.min_speech_fraction:
        raise ReplicaError(url, f"no speech: voice activity in {100 * speech:.0f}% of the audio "
                                f"(at least {100 * cfg.min_speech_fraction:.0f}% needed)")
    return info, audio


def crop_boxes(lmk: np.ndarray, width: int, height: int, cfg: PersonIngestConfig) -> np.ndarray:
    """Square crop boxes (x0, y0, side in source pixels) [F, 3] from landmarks [F, 478, 3] (normalised).

    The side is one number for the whole video; the centre is the landmarks' box centre, Gaussian-smoothed
    over `smooth_s` seconds so it glides with the head instead of jittering with the tracker. The box stays
    inside the frame: where the margin would reach past an edge (a face filling a landscape frame's height,
    a head near the border) the side shrinks to the frame's shorter side and the box slides in, so every crop
    pixel is the video's own, never a smear of repeated edge pixels that the avatar would learn as background.
    """
    xy = lmk[..., :2] * np.array([width, height])
    low, high = xy.min(1), xy.max(1)
    centre = gaussian_filter1d((low + high) / 2, sigma=cfg.smooth_s * FPS, axis=0, mode="nearest")
    face = gaussian_filter1d(high[:, 1] - low[:, 1], sigma=cfg.smooth_s * FPS, mode="nearest")
    side = float(min(face.max() * cfg.margin, width, height))
    # look a little below the landmarks' centre: the crop holds the chin and the top of the shoulders
    corner = centre + np.array([0.0, 0.08 * side]) - side / 2
    corner = np.clip(corner, 0.0, np.array([width, height]) - side)  # a clip of a smooth path is still smooth
    return np.concatenate([corner, np.full((len(lmk), 1), side)], 1)


def ingest_person(url: str, image_size: int, cfg: PersonIngestConfig | None = None) -> PersonVideo:
    """Check a person's video and cut it to a stable face crop with landmarks; see the module docstring.

    image_size: side of the square crop in pixels (the avatar's training resolution).
    """
    cfg = cfg or PersonIngestConfig()
    info, audio = check_media(url, cfg)
    limit = int(round(min(info.duration_s, cfg.max_seconds) * FPS))
    # a few frames, evenly spread, are kept from the tracking pass for the several-faces check
    picks = set(np.linspace(0, max(limit - 1, 0), cfg.face_check_frames).round().astype(int).tolist())
    checked: list[np.ndarray] = []

    def tracked_frames() -> Iterator[np.ndarray]:
        with progress_bar(total=limit, desc="ingest: tracking the face") as bar:
            for index, rgb in enumerate(media.iter_video(url, fps=FPS, size=cfg.track_size)):
                if index >= limit:
                    return
                if index in picks:
                    checked.append(rgb)
                yield rgb
                bar.update()

    track = track_faces(tracked_frames(), FPS)
    found = track.found_fraction
    if found < cfg.min_face_fraction:
        raise ReplicaError(url, f"no face in most frames: found in {100 * found:.0f}% "
                                f"(at least {100 * cfg.min_face_fraction:.0f}% needed)")
    crowded = count_faces(np.stack(checked)) >= 2
    if crowded.mean() > 0.5:
        raise ReplicaError(url, f"several faces in {int(crowded.sum())} of {len(checked)} checked frames: a replica "
                                "is made from a video of one person")
    width, height = info.width, info.height
    face_px = np.median(np.ptp(track.lmk[track.found, :, 1], axis=1)) * height
    if face_px < cfg.min_face_px:
        raise ReplicaError(url, f"face too small: {face_px:.0f} px tall (at least {cfg.min_face_px:g} px)")
    boxes = crop_boxes(track.lmk, width, height, cfg)
    frames = np.empty((len(track.found), image_size, image_size, 3), np.uint8)
    count = 0
    with progress_bar(total=len(frames), desc="ingest: cutting the face crop") as bar:
        for index, rgb in enumerate(media.iter_video(url, fps=FPS)):
            if index >= len(frames):
                break
            frames[index] = cut_box(rgb, boxes[index], image_size)
            count += 1
            bar.update()
    frames = frames[:count]
    # landmarks in the crop's own normalised coordinates (z scales like x)
    x0, y0, side = boxes[:count, :1, None], boxes[:count, 1:2, None], boxes[:count, 2:3, None]
    xy = track.lmk[:count, :, :2] * np.array([width, height])
    lmk = np.concatenate([(xy[..., :1] - x0) / side, (xy[..., 1:2] - y0) / side,
                          track.lmk[:count, :, 2:3] * width / side], -1).astype(np.float32)
    n_audio = int(round(count / FPS * SAMPLE_RATE))
    audio = np.pad(audio[:n_audio], (0, max(0, n_audio - len(audio))))
    report = {"source": url, "duration_s": round(info.duration_s, 2), "frames": count,
              "source_size": [width, height], "rotation": info.rotation, "source_fps": info.fps,
              "source_audio": {"codec": info.audio_codec, "sample_rate": info.sample_rate, "channels": info.channels},
              "used_s": round(count / FPS, 2),
              "left_out_s": round(info.duration_s - count / FPS, 2) if info.duration_s > cfg.max_seconds else 0.0,
              "usable_fraction": round(found, 4), "face_px": round(float(face_px), 1),
              "crop_side_px": round(float(boxes[0, 2]), 1), "image_size": image_size}
    return PersonVideo(frames, audio.astype(np.float32), lmk, track.blendshapes[:count], track.found[:count],
                       boxes[:count], info, report)


def cut_box(rgb: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """The square `box` (x0, y0, side) of an RGB frame resampled to size² (edge pixels repeat outside).

    A crop shrinks the picture many times: the box's region is first averaged over k×k blocks (k = side // size,
    the blocks on one grid of the frame), then sampled bilinearly at 3×3 points around each output pixel's centre
    (the rest of the shrink, 1–2×, anti-aliased as before; a box that glides by a fraction of a pixel moves the
    crop smoothly). It replaced a scipy resampling (3×3 bilinear samples on the whole frame, ±side/size/3 apart)
    that took 85 % of a 1080p video's crop pass; a 1080-px box to 256² is 4.3× faster than that, side by side.
    """
    x0, y0, side = (float(v) for v in box)
    height, width = rgb.shape[:2]
    k = max(1, int(side // size))
    # the source pixels the crop can touch (with a block of margin), as float CHW; the blocks lie on one grid for
    # every box (multiples of k), so a gliding box never re-cuts them
    left, top = max(0, (int(np.floor(x0)) // k - 1) * k), max(0, (int(np.floor(y0)) // k - 1) * k)
    right, bottom = min(width, int(np.ceil(x0 + side)) + 2 * k), min(height, int(np.ceil(y0 + side)) + 2 * k)
    if right <= left or bottom <= top:  # the box lies wholly outside: repeat the nearest edge pixels
        left, right = (0, 1) if right <= 0 else (width - 1, width) if left >= width else (left, right)
        top, bottom = (0, 1) if bottom <= 0 else (height - 1, height) if top >= height else (top, bottom)
    region = torch.from_numpy(np.ascontiguousarray(rgb[top:bottom, left:right])).permute(2, 0, 1)[None].float()
    if k > 1 and min(region.shape[-2:]) >= k:
        region = F.avg_pool2d(region, k, ceil_mode=True)
    else:
        k = 1
    # output pixel centres in source pixel-centre coordinates, then in the pooled region's (block centres)
    centres = (torch.arange(size, dtype=torch.float64) + 0.5) * side / size - 0.5
    xs = (x0 + centres - left - (k - 1) / 2) / k
    ys = (y0 + centres - top - (k - 1) / 2) / k
    rows, cols = region.shape[-2:]
    # what the blocks leave of the shrink (r = 1–2×) is anti-aliased by 3×3 bilinear samples spread over the
    # output pixel's footprint (r block pixels; one sample covers one): ±(r − 1)/2, a single point at r = 1
    spread = (side / size / k - 1) / 2
    out = torch.zeros(1, 3, size, size)
    for dy in (-spread, 0.0, spread):
        for dx in (-spread, 0.0, spread):
            grid = torch.stack(torch.meshgrid((xs + dx) / max(cols - 1, 1) * 2 - 1,
                                              (ys + dy) / max(rows - 1, 1) * 2 - 1, indexing="xy"), -1)
            out += F.grid_sample(region, grid[None].float(), mode="bilinear", padding_mode="border",
                                 align_corners=True)
    return (out[0] / 9).permute(1, 2, 0).add(0.5).clamp(0, 255).to(torch.uint8).numpy()
