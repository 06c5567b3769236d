"""A person's idle motion: blinks, brow activity and head sway measured on their tracked video, and regenerated
for any stretch of a new render so the face is not frozen above the mouth.

The animator drives the mouth and jaw from audio; what it does not know is how often *this* person blinks, how
much their brows move and how their head sways. `fit_idle` measures that on the tracked parameters (the
blinks on MediaPipe's eyeBlink scores when given; `IdleStats`, stored in the bundle as `finetune/idle.json`);
`idle_motion` turns the statistics into additive per-frame offsets for frames [start, start + n) of a render.

`idle_motion` is a pure function of the absolute frame index, so a streaming renderer can ask for any window
and get exactly the rows the whole render would have: blinks come from a seeded schedule drawn per fixed block
of `BLOCK` frames (a blink that starts in one block and ends in the next is drawn from the block it starts in),
and the brow and head signals are sums of a few seeded sinusoids (no recursive filter, whose state would have
to be carried from chunk to chunk).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import median_filter
from scipy.signal import find_peaks

from datasets.schema import FPS, N_EXPR, expression_indices
from foundation.head import FaceParams

BLINK = tuple(expression_indices("eyeBlink"))
BROW_NAMES = ("browInnerUp", "browOuterUpLeft", "browOuterUpRight", "browDownLeft", "browDownRight")
BROWS = tuple(expression_indices(name)[0] for name in BROW_NAMES)
BLOCK = 256
"""Frames per block of the blink schedule (each block draws its own blinks from (seed, block index))."""
WAVES = 6
"""Sinusoids summed per brow or head-rotation signal."""
MIN_PROMINENCE = 0.1
"""A blink must rise at least this far (eyelid closure, 0–1) above its surroundings, and `NOISE_MULTIPLE` noise
levels."""
NOISE_MULTIPLE = 8.0
"""How many noise levels a blink must stand out by. The noise is the robust std of the eyelid signal less its
one-second running median (the fast jitter, not the slow squints and laughs that also move the lids). Jitter
alone (white, or smoothed over 1–3 frames; 5 minutes) has peaks this prominent at most 3 times a minute, and 10–29
times a minute at 4 noise levels."""
BLINK_HALF_WIDTH_S = np.array([0.06, 0.16])
"""Range of a blink's duration at half closure, seconds (blinks last 100–400 ms end to end)."""
BLINK_MAX_WIDTH_S = 0.5
"""A peak wider than this at half its prominence is a squint, a laugh or a look down, not a blink (blinks last
0.1–0.4 s end to end; tracking's smoothing widens fitted ones to ~0.4 s at half closure)."""
RENDER_DEPTH = 0.8
"""Least closure a blink is rendered with. Trackers under-report eyelid closure — MediaPipe's eyeBlink peaks at
0.2–0.3, and the fitted expression at 0.1–0.2, on the synthetic world's fully closed blinks — so a detected
blink is drawn at least this closed."""


@dataclass(frozen=True)
class IdleStats:
    """How a person moves when nothing in the speech drives it (units per field)."""

    fps: float
    """Frame rate the frame counts below are in (frames per second)."""
    blink_rate: float
    """Blinks per second."""
    blink_frames: float
    """Width of a blink at half closure, frames (within `BLINK_HALF_WIDTH_S`)."""
    blink_depth: float
    """Eyelid closure at the bottom of a rendered blink (eyeBlink weight, 0–1; at least `RENDER_DEPTH`)."""
    brow_std: tuple[float, ...]
    """Standard deviation over time of each `BROW_NAMES` channel (blendshape weight)."""
    head_std: tuple[float, float, float]
    """Standard deviation of the head rotation (neck + rot, axis-angle x, y, z), radians."""
    head_ar1: float
    """Lag-one autocorrelation of the head rotation per frame (0: jitter; near 1: slow sway)."""

    @property
    def head_time_s(self) -> float:
        """Time constant of the head sway implied by `head_ar1`, seconds."""
        return -1.0 / (self.fps * math.log(min(max(self.head_ar1, 1e-3), 0.999)))

    def to_json(self) -> dict:
        return {**asdict(self), "brow_std": list(self.brow_std), "head_std": list(self.head_std)}

    @classmethod
    def from_json(cls, data: dict) -> IdleStats:
        return cls(**{**data, "brow_std": tuple(data["brow_std"]), "head_std": tuple(data["head_std"])})

    @classmethod
    def default(cls) -> IdleStats:
        """A typical adult talking calmly (~17 blinks a minute of ~0.2 s, small brow movement, ±2° of sway)
        for bundles created before the fit existed."""
        return cls(fps=float(FPS), blink_rate=17 / 60, blink_frames=2.5, blink_depth=0.9,
                   brow_std=(0.05, 0.035, 0.035, 0.01, 0.01), head_std=(0.02, 0.03, 0.012), head_ar1=0.96)


PRIOR_SECONDS = 20.0
"""Weight of the typical blink rate (`IdleStats.default`) in `fit_idle`'s estimate, in seconds of video: a 12 s
video without a visible blink gives ~11 blinks a minute (not a stare), a 2-minute one mostly its own count."""


def fit_idle(params: FaceParams, fps: float, lids: np.ndarray | None = None) -> IdleStats:
    """Measure idle statistics on F frames of (tracked or true) parameters at `fps` frames per second.

    Blinks are counted on `lids` ([F] eyelid closure, 0–1) — `replica create` passes MediaPipe's eyeBlink scores,
    which see real blinks that the fitted lids smooth away (on a real woman's video the fitted lids peaked at her
    squeezed-shut frowns and missed her quick blinks; MediaPipe's scores found those) — or, without it, on the mean
    of the parameters' eyeBlinkLeft/Right. A blink is a peak standing out by `MIN_PROMINENCE` and `NOISE_MULTIPLE`
    noise levels, at least 0.2 s from the next and at most `BLINK_MAX_WIDTH_S` wide; the rate is their count shrunk
    towards the typical rate (`PRIOR_SECONDS`); their duration is the peaks' width at half prominence. Too few
    frames for a statistic (< 2) give the default's value.
    """
    expr = params.expr.detach().cpu().numpy().astype(np.float64)  # [F, 52]
    head = (params.neck + params.rot).detach().cpu().numpy().astype(np.float64)  # [F, 3] radians
    n = len(expr)
    default = IdleStats.default()
    if n < 2:
        return IdleStats(**{**default.to_json(), "fps": float(fps)})
    lid = expr[:, BLINK].mean(axis=1) if lids is None else np.asarray(lids, np.float64)
    if lid.shape != (n,):
        raise ValueError(f"lids has shape {lid.shape}: one eyelid closure per frame ({n}) expected")
    jitter = lid - median_filter(lid, size=2 * round(fps / 2) + 1, mode="nearest")
    noise = 1.4826 * float(np.median(np.abs(jitter - np.median(jitter))))  # robust std of the fast jitter
    peaks, shape = find_peaks(lid, prominence=max(MIN_PROMINENCE, NOISE_MULTIPLE * noise),
                              distance=max(1, round(0.2 * fps)), width=(0, BLINK_MAX_WIDTH_S * fps), rel_height=0.5)
    # Blinks are rare events (a few in 12 s): the count over a short video says little, so the rate is shrunk
    # towards a typical adult's, as if `PRIOR_SECONDS` of typical blinking had been watched too (a Gamma prior).
    rate = (len(peaks) + default.blink_rate * PRIOR_SECONDS) / (n / fps + PRIOR_SECONDS)
    # Tracking's temporal smoothing widens blinks (fitted ones last ~0.4 s at half closure, true ones ~0.1 s):
    # the width is kept within what eyelids do.
    width = float(np.clip(shape["widths"].mean(), *BLINK_HALF_WIDTH_S * fps)) if len(peaks) else default.blink_frames
    depth = max(float(shape["prominences"].mean()) if len(peaks) else 0.0, RENDER_DEPTH)
    centred = head - head.mean(axis=0)
    variance = (centred**2).sum()
    ar1 = float((centred[1:] * centred[:-1]).sum() / variance) if variance > 1e-12 else default.head_ar1
    return IdleStats(fps=float(fps), blink_rate=float(rate), blink_frames=float(width), blink_depth=float(depth),
                     brow_std=tuple(float(s) for s in expr[:, BROWS].std(axis=0)),
                     head_std=tuple(float(s) for s in centred.std(axis=0)), head_ar1=float(np.clip(ar1, 0.0, 0.999)))


def idle_motion(stats: IdleStats, start: int, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Idle offsets for frames [start, start + n) of a render at `stats.fps`.

    Returns float32 arrays to add to the animator's output:
        "expr": [n, 52] blendshape offsets — blinks on eyeBlinkLeft/Right (0 to `blink_depth`), brow sway
                (zero mean; clip the sum to [0, 1]) on the `BROW_NAMES` channels, zero elsewhere;
        "rot":  [n, 3] head rotation offsets, axis-angle radians, zero mean, std `head_std`.
    Chunk-invariant: `idle_motion(s, 0, N)[k][a:b]` equals `idle_motion(s, a, b - a)[k]` exactly.
    """
    if start < 0 or n < 0:
        raise ValueError(f"frames [{start}, {start + n}) must be non-negative")
    frames = np.arange(start, start + n, dtype=np.float64)
    expr = np.zeros((n, N_EXPR), np.float32)
    expr[:, BLINK] = _blinks(stats, frames, seed)[:, None]
    # Brows move together: raised inner and outer brows, lowered brows the other way.
    brow = _sway(frames, stats, seed, 1)
    sign = np.array([1.0, 1.0, 1.0, -1.0, -1.0])
    expr[:, BROWS] = (brow[:, None] * sign * np.asarray(stats.brow_std)).astype(np.float32)
    rot = np.stack([_sway(frames, stats, seed, 2 + axis) * stats.head_std[axis] for axis in range(3)], axis=1)
    return {"expr": expr, "rot": rot.astype(np.float32)}


def _blinks(stats: IdleStats, frames: np.ndarray, seed: int) -> np.ndarray:
    """[n] eyelid closure: raised-cosine blinks of full length 2·`blink_frames` (half-depth width
    `blink_frames`), Poisson-many per block, each placed uniformly in its block."""
    length = 2.0 * stats.blink_frames
    closure = np.zeros(len(frames))
    if len(frames) == 0 or stats.blink_rate <= 0:
        return closure.astype(np.float32)
    first = int(max(frames[0] - length, 0) // BLOCK)
    last = int(frames[-1] // BLOCK)
    per_block = stats.blink_rate * BLOCK / stats.fps
    for block in range(first, last + 1):
        rng = np.random.default_rng([seed, 0, block])
        onsets = block * BLOCK + np.sort(rng.uniform(0.0, BLOCK, rng.poisson(per_block)))
        for onset in onsets:
            phase = (frames - onset) / length  # [n], a blink spans phase 0..1
            inside = (phase >= 0) & (phase <= 1)
            closure = np.maximum(closure, np.where(inside, 0.5 - 0.5 * np.cos(2 * np.pi * phase), 0.0))
    return (closure * stats.blink_depth).astype(np.float32)


def _sway(frames: np.ndarray, stats: IdleStats, seed: int, stream: int) -> np.ndarray:
    """[n] a zero-mean, unit-variance smooth signal with roughly the spectrum of an AR(1) process of time
    constant `stats.head_time_s`: `WAVES` sinusoids with frequencies drawn from that (Lorentzian) spectrum."""
    rng = np.random.default_rng([seed, stream])
    corner_hz = 1.0 / (2 * np.pi * stats.head_time_s)
    # Inverse CDF of the Lorentzian, kept between a 50 s period and 2 Hz (no visible jitter).
    hz = np.clip(corner_hz * np.tan(0.5 * np.pi * rng.uniform(0.05, 0.95, WAVES)), 0.02, 2.0)
    phase = rng.uniform(0.0, 2 * np.pi, WAVES)
    angles = 2 * np.pi * frames[:, None] * (hz / stats.fps)[None, :] + phase[None, :]  # [n, WAVES]
    return np.sin(angles).sum(axis=1) * math.sqrt(2.0 / WAVES)
