"""Put the rendered head back into the person's own footage, at its resolution and aspect ratio.

The avatar renders the square face crop `replica create` cut from the person's video (`ingest/face.npz`
holds each frame's crop box in source pixels). For a full frame, a *plate* is taken from that video: the
calmest stretch of `seconds` (least head motion in the tracked parameters), played forwards then backwards
so it loops without a jump, supplies body and background, and each rendered crop is scaled into that plate
frame's box and blended in:

- a feathered mask (full inside, a raised-cosine fall-off over the box's outer `feather` fraction, so the
  corners of the square never show);
- one colour correction per render — per-channel gain and offset fitted on the feather ring between the
  first rendered crop and its plate — so the crop carries no colour shift against its surroundings and no
  flicker (fitted once, it is the same however the render is chunked).

Memory: the plate's frames at the output size (`seconds` × 25 frames), whatever the render's length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from datasets import media
from datasets.errors import ReplicaError
from datasets.schema import FPS


@dataclass
class Plate:
    """A looping stretch of the person's footage with the crop box of each frame."""

    frames: np.ndarray
    """uint8 [P, H, W, 3] at the output size."""
    boxes: np.ndarray
    """Crop boxes (x0, y0, side) in output pixels, one per plate frame. float [P, 3]"""
    feather: float = 0.15
    """Fraction of the box side over which the crop fades into the plate."""
    gain: np.ndarray | None = None
    """Per-channel (gain, offset) [2, 3] fitted on the first composited frame (None until then)."""

    def index(self, frame: int) -> int:
        """The plate frame shown at output frame `frame` (forwards, then backwards: a loop without a jump)."""
        count = len(self.frames)
        if count == 1:
            return 0
        phase = frame % (2 * count - 2)
        return phase if phase < count else 2 * count - 2 - phase


def calm_start(motion: np.ndarray, frames: int) -> int:
    """The first frame of the `frames`-long window with the least head motion. motion: per-frame pose [F, k]."""
    if len(motion) <= frames:
        return 0
    speed = np.linalg.norm(np.diff(motion, axis=0), axis=1)  # [F - 1]
    window = np.convolve(speed, np.ones(frames - 1), mode="valid")
    return int(np.argmin(window))


def load_plate(video_url: str, boxes: np.ndarray, motion: np.ndarray, source_size: tuple[int, int],
               size: int | None = None, seconds: float = 3.0, feather: float = 0.15) -> Plate:
    """Read the calmest `seconds` of the person's video as a plate.

    Args:
        video_url: the person's video (what `replica create` ingested).
        boxes: the crop box of every ingested frame, (x0, y0, side) in source pixels. [F, 3]
        motion: the tracked head pose per frame (e.g. rot and trans side by side), for picking the stretch. [F, k]
        source_size: (width, height) of the source frames the boxes are in (after rotation).
        size: longer side of the output in pixels (None: the source's own).
        seconds: length of the stretch.
        feather: see `Plate.feather`.
    """
    count = max(1, min(len(boxes), len(motion), int(round(seconds * FPS))))
    start = calm_start(motion[: len(boxes)], count)
    frames = []
    for index, rgb in enumerate(media.iter_video(video_url, fps=FPS, size=size)):
        if index >= start + count:
            break
        if index >= start:
            frames.append(rgb)
    if not frames:
        raise ReplicaError(video_url, f"has no frames at {start / FPS:.1f}–{(start + count) / FPS:.1f} s for the plate")
    plate = np.stack(frames)
    scale = plate.shape[2] / source_size[0]
    return Plate(plate, boxes[start:start + len(plate)].astype(np.float64) * scale, feather)


def _mask(side: int, feather: float) -> np.ndarray:
    """[side, side] in [0, 1]: 1 inside, a raised-cosine fall-off to 0 over the outer `feather` of a rounded box."""
    centre = (np.arange(side) + 0.5) / side * 2 - 1  # [-1, 1]
    # a superellipse distance: square-ish but with round corners, 1 at the box edge
    dist = (np.abs(centre)[None, :] ** 4 + np.abs(centre)[:, None] ** 4) ** 0.25
    inner = 1.0 - 2.0 * feather
    ramp = np.clip((dist - inner) / (1.0 - inner), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * ramp))


def _place(crop: np.ndarray, box: np.ndarray, height: int, width: int) -> tuple[np.ndarray, tuple[slice, slice],
                                                                                 tuple[slice, slice]]:
    """The crop scaled to its box's side and the overlapping slices of (plate, scaled crop)."""
    x0, y0, side = box
    side_px = max(2, int(round(side)))
    scaled = torch.nn.functional.interpolate(torch.as_tensor(crop).permute(2, 0, 1)[None].float(),
                                             size=(side_px, side_px), mode="bilinear", align_corners=False,
                                             antialias=side_px < crop.shape[0])[0].permute(1, 2, 0).numpy()
    left, top = int(round(x0)), int(round(y0))
    rows = slice(max(top, 0), min(top + side_px, height))
    cols = slice(max(left, 0), min(left + side_px, width))
    inner = (slice(rows.start - top, rows.stop - top), slice(cols.start - left, cols.stop - left))
    return scaled, (rows, cols), inner


def composite(crops: np.ndarray, start: int, plate: Plate) -> np.ndarray:
    """Blend rendered crops (output frames start … start + n - 1) into their plate frames.

    crops: uint8 [n, s, s, 3]. Returns uint8 [n, H, W, 3] at the plate's size.
    """
    out = []
    for offset, crop in enumerate(crops):
        index = plate.index(start + offset)
        frame = plate.frames[index].astype(np.float32)
        scaled, (rows, cols), (inner_rows, inner_cols) = _place(crop, plate.boxes[index], *frame.shape[:2])
        alpha = _mask(scaled.shape[0], plate.feather)[inner_rows, inner_cols, None]
        patch = scaled[inner_rows, inner_cols]
        if plate.gain is None:
            plate.gain = _fit_colour(patch, frame[rows, cols], alpha[..., 0])
        patch = np.clip(patch * plate.gain[0] + plate.gain[1], 0, 255)
        frame[rows, cols] = alpha * patch + (1 - alpha) * frame[rows, cols]
        out.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    return np.stack(out)


def _fit_colour(rendered: np.ndarray, plate: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Per-channel (gain, offset) [2, 3] mapping the render onto the plate where they meet (0 < alpha < 1)."""
    ring = (alpha > 0.05) & (alpha < 0.95)
    if ring.sum() < 16:
        return np.array([[1.0] * 3, [0.0] * 3])
    src, dst = rendered[ring], plate[ring]  # [K, 3]
    gain = np.clip(dst.std(0) / np.maximum(src.std(0), 1e-3), 0.8, 1.25)
    offset = np.clip(dst.mean(0) - gain * src.mean(0), -40.0, 40.0)
    return np.stack([gain, offset])


def frame_to_aspect(frames: np.ndarray, aspect: float, centre_x: float, centre_y: float) -> np.ndarray:
    """Cut frames [n, H, W, 3] to width/height = `aspect` (the largest such window), centred on the face
    (`centre_x`, `centre_y` in pixels) as far as the frame allows; even sides for H.264."""
    height, width = frames.shape[1:3]
    if width / height > aspect:
        new_w, new_h = int(height * aspect) // 2 * 2, height // 2 * 2
    else:
        new_w, new_h = width // 2 * 2, int(width / aspect) // 2 * 2
    x0 = int(np.clip(round(centre_x - new_w / 2), 0, width - new_w))
    y0 = int(np.clip(round(centre_y - new_h / 2), 0, height - new_h))
    return frames[:, y0:y0 + new_h, x0:x0 + new_w]
