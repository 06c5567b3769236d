"""Synthetic talking motion: per-frame face and head parameters for a piece of speech.

The synthetic talking-head world renders made-up people speaking TTS audio; this module decides
how they move. The mouth follows the phones through `visemes` (or, for audio without timings,
the loudness envelope); around it go the things that make a face look alive: Poisson blinks,
brow raises and nods on emphasised syllables, a per-clip smile, slow head drift and body sway.
Each clip draws its own style (expressiveness, head-motion amplitude, blink rate) from the rng,
so one seed gives one reproducible performance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from datasets.schema import EXPRESSION_NAMES, expression_indices
from foundation.world.visemes import VISEMES, coarticulate, keyframes

FPS = 25
"""Video frame rate (frames per second)."""

JAW_OPEN_RAD = 0.35
"""Jaw angle at which the jawOpen blendshape reaches 1 (radians)."""

ARTICULATION = (0.8, 1.2)
"""Range of a clip's articulation (drawn uniformly): the factor on its mouth shapes and jaw angle."""

SMILE = (0.0, 0.25)
"""Range of a clip's baseline mouthSmile weight (drawn uniformly)."""


@dataclass(frozen=True)
class Motion:
    """Per-frame head parameters for F frames at `fps`, all float32."""

    expr: np.ndarray
    """[F, 52] ARKit blendshape weights in [0, 1], `EXPRESSION_NAMES` order."""
    jaw: np.ndarray
    """[F, 3] jaw axis-angle (radians); +x opens the mouth."""
    neck: np.ndarray
    """[F, 3] head relative to shoulders, axis-angle (radians); +x pitches the chin down (a nod)."""
    rot: np.ndarray
    """[F, 3] global bust rotation, axis-angle (radians)."""
    trans: np.ndarray
    """[F, 3] global bust translation (metres)."""
    fps: int = FPS
    """Frames per second."""


@dataclass(frozen=True)
class _Style:
    """How one clip's speaker moves, drawn once per clip."""

    articulation: float  # scales mouth shapes and jaw
    expressiveness: float  # probability an emphasis peak gets a brow raise / nod
    smile: float  # baseline mouthSmile weight
    blinks_per_min: float
    head_rad: float  # standard deviation of the slow head yaw
    sway_m: float  # standard deviation of the sideways body sway


def synthesize_motion(
    wav: np.ndarray,
    phonemes: list[tuple[str, float, float]] | None,
    rng: np.random.Generator,
    sample_rate: int = 16000,
) -> Motion:
    """Talking motion for `wav`: exactly ceil(duration_s * FPS) frames.

    wav: [T] float audio in [-1, 1] at `sample_rate` Hz. phonemes: (phone, start_s, end_s) in time
    order (e.g. `foundation.tts.Speech.phonemes`), or None to drive the mouth from loudness alone.
    rng: the only source of randomness; the same seed gives the same motion.
    """
    wav = np.asarray(wav, np.float32)
    if wav.ndim != 1:
        raise ValueError(f"wav must be [T], got shape {wav.shape}")
    duration_s = len(wav) / sample_rate
    frames = max(1, math.ceil(duration_s * FPS - 1e-9))
    frame_times = np.arange(frames) / FPS
    style = _Style(
        articulation=rng.uniform(*ARTICULATION),
        expressiveness=rng.uniform(0.3, 0.9),
        smile=rng.uniform(*SMILE),
        blinks_per_min=rng.uniform(15.0, 20.0),
        head_rad=np.deg2rad(rng.uniform(1.0, 3.0)),
        sway_m=rng.uniform(0.002, 0.006),
    )
    loudness = _loudness(wav, sample_rate, frame_times)

    if phonemes is not None:
        jaw_angle, expr = _mouth_from_phones(phonemes, loudness, duration_s, frame_times)
    else:
        jaw_angle, expr = _mouth_from_loudness(loudness, frame_times, rng)
    jaw_angle, expr = _articulate(jaw_angle, expr, style.articulation)
    expr[:, expression_indices("mouthSmile")] += style.smile * (1.0 + 0.3 * _drift(rng, frame_times, 0.1, 2))[:, None]
    expr[:, expression_indices("cheekSquint")] += 0.4 * style.smile
    expr[:, expression_indices("eyeBlink")] = _blinks(rng, frame_times, style.blinks_per_min)[:, None]

    peaks = _emphasis(loudness, rng, style.expressiveness)
    raise_ = _bumps(frame_times, frame_times[peaks], rng.uniform(0.15, 0.45, len(peaks)), 0.12, 0.45)
    expr[:, expression_indices("browInnerUp")] += raise_[:, None]
    expr[:, expression_indices("browOuterUp")] += 0.7 * raise_[:, None]
    nods = _bumps(frame_times, frame_times[peaks] + 0.05, rng.uniform(0.02, 0.05, len(peaks)), 0.15, 0.3)

    talking = gaussian_filter1d((loudness > 0.1).astype(np.float32), sigma=0.5 * FPS)
    neck = np.stack(
        [
            0.6 * style.head_rad * _drift(rng, frame_times, 0.6, 4) + nods,
            style.head_rad * _drift(rng, frame_times, 0.5, 4),
            0.4 * style.head_rad * _drift(rng, frame_times, 0.4, 4),
        ],
        axis=1,
    ) * (0.6 + 0.4 * talking)[:, None]
    rot = 0.3 * style.head_rad * np.stack([_drift(rng, frame_times, 0.2, 3) for _ in range(3)], axis=1)
    trans = style.sway_m * np.stack([s * _drift(rng, frame_times, 0.3, 3) for s in (1.0, 0.5, 0.7)], axis=1)
    jaw = np.zeros((frames, 3), np.float32)
    jaw[:, 0] = jaw_angle
    # The jaw drifts sideways a little when it opens wide, as real jaws do.
    jaw[:, 1] = 0.03 * jaw_angle * _drift(rng, frame_times, 1.0, 2)
    return Motion(
        expr=np.clip(expr, 0.0, 1.0).astype(np.float32),
        jaw=jaw,
        neck=neck.astype(np.float32),
        rot=rot.astype(np.float32),
        trans=trans.astype(np.float32),
    )


def average_speaker_mouth(
    wav: np.ndarray, phonemes: list[tuple[str, float, float]], sample_rate: int = 16000
) -> tuple[np.ndarray, np.ndarray]:
    """The mouth `synthesize_motion` gives these exact phones when the speaker's style is the average one.

    Mean articulation and mean smile, none of the random parts (smile drift, sideways jaw). Returns jaw
    [F, 3] (axis-angle radians) and expr [F, 52] with only the mouth's channels set (jawOpen, the viseme
    shapes, mouthSmile, cheekSquint). What a perfect phone recogniser would predict without knowing the
    speaker: the evaluation's floor for audio-only animators (`foundation.evaluation`).
    """
    wav = np.asarray(wav, np.float32)
    duration_s = len(wav) / sample_rate
    frame_times = np.arange(max(1, math.ceil(duration_s * FPS - 1e-9))) / FPS
    loudness = _loudness(wav, sample_rate, frame_times)
    jaw_angle, expr = _articulate(*_mouth_from_phones(phonemes, loudness, duration_s, frame_times),
                                  float(np.mean(ARTICULATION)))
    expr[:, expression_indices("mouthSmile")] += float(np.mean(SMILE))
    expr[:, expression_indices("cheekSquint")] += 0.4 * float(np.mean(SMILE))
    jaw = np.zeros((len(frame_times), 3), np.float32)
    jaw[:, 0] = jaw_angle
    return jaw, np.clip(expr, 0.0, 1.0).astype(np.float32)


def _mouth_from_phones(
    phonemes: list[tuple[str, float, float]], loudness: np.ndarray, duration_s: float, frame_times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Jaw [F] and mouth shapes [F, 52] from phone timings through `visemes` (before articulation)."""
    jaw_angle, expr = coarticulate(*keyframes(phonemes, duration_s), frame_times)
    # Louder syllables open wider; quiet ones are mumbled.
    return jaw_angle * (0.8 + 0.3 * np.clip(loudness, 0.0, 1.5)), expr


def _articulate(jaw_angle: np.ndarray, expr: np.ndarray, articulation: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale jaw [F] and mouth shapes [F, 52] by the speaker's articulation; jawOpen follows the jaw."""
    jaw_angle = np.clip(jaw_angle * articulation, 0.0, 0.45)
    expr = expr * articulation
    expr[:, expression_indices("jawOpen")[0]] = jaw_angle / JAW_OPEN_RAD
    return jaw_angle, expr


def _loudness(wav: np.ndarray, sample_rate: int, frame_times: np.ndarray) -> np.ndarray:
    """[F] RMS loudness around each frame time, 1.0 ≈ the clip's loud speech (95th percentile)."""
    hop = sample_rate // 100
    padded = np.pad(wav, (0, (-len(wav)) % hop))
    rms = np.sqrt((padded.reshape(-1, hop) ** 2).mean(axis=1))  # [T/hop] at 100 Hz
    rms = gaussian_filter1d(rms, sigma=2.0)
    reference = np.percentile(rms, 95)
    if reference < 1e-4:
        return np.zeros(len(frame_times), np.float32)
    envelope = np.interp(frame_times, (np.arange(len(rms)) + 0.5) / 100.0, rms / reference)
    return envelope.astype(np.float32)


def _mouth_from_loudness(
    loudness: np.ndarray, frame_times: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Jaw [F] from the loudness envelope and mouth shapes [F, 52] from random visemes at its syllables.

    Syllable nuclei are loudness peaks at least 0.12 s apart; each gets a random vowel, the dips
    between close nuclei a random consonant, and quiet frames silence.
    """
    nuclei, _ = find_peaks(loudness, height=0.25, distance=max(1, round(0.12 * FPS)))
    vowels = [VISEMES.index(v) for v in ("open", "mid", "spread", "round_close", "round_mid")]
    consonants = [VISEMES.index(c) for c in ("bilabial", "labiodental", "alveolar", "sibilant", "velar", "rhotic")]
    close = np.flatnonzero(np.diff(nuclei) < 0.5 * FPS)
    quiet = np.flatnonzero(loudness < 0.08)
    times = np.concatenate(
        [frame_times[nuclei], (frame_times[nuclei[close]] + frame_times[nuclei[close + 1]]) / 2, frame_times[quiet]]
    )
    classes = np.concatenate(
        [
            rng.choice(vowels, len(nuclei)),
            rng.choice(consonants, len(close)),
            np.full(len(quiet), VISEMES.index("silence")),
        ]
    ).astype(np.int64)
    spans = np.where(np.isin(classes, vowels), 0.1, 0.06)
    order = np.argsort(times, kind="stable")
    if len(times) == 0:
        return np.zeros(len(frame_times), np.float32), np.zeros((len(frame_times), len(EXPRESSION_NAMES)), np.float32)
    _, shapes = coarticulate(times[order], spans[order], classes[order], frame_times)
    jaw = 0.3 * np.clip(loudness, 0.0, 1.3) ** 0.8
    return jaw.astype(np.float32), shapes


def _blinks(rng: np.random.Generator, frame_times: np.ndarray, per_min: float) -> np.ndarray:
    """[F] eyelid closure in [0, 1]: Poisson blinks of 150–250 ms, quick to close, slower to open."""
    duration = frame_times[-1] + 1.0 / FPS
    count = int(duration / 0.25) + 2  # gaps are >= 0.25 s, so this many always cover the clip
    gaps = 0.25 + rng.exponential(60.0 / per_min - 0.25, count)
    starts = np.cumsum(gaps) - rng.uniform(0.0, gaps[0])
    starts = starts[starts < duration]
    lengths = rng.uniform(0.15, 0.25, len(starts))
    depths = rng.uniform(0.85, 1.0, len(starts))
    phase = (frame_times[:, None] - starts[None, :]) / lengths[None, :]  # [F, B]
    closing = np.sin(np.clip(phase / 0.35, 0.0, 1.0) * np.pi / 2) ** 2
    opening = np.cos(np.clip((phase - 0.35) / 0.65, 0.0, 1.0) * np.pi / 2) ** 2
    lid = np.where(phase < 0.35, closing, opening) * ((phase >= 0) & (phase <= 1))
    return (lid * depths[None, :]).max(axis=1, initial=0.0)


def _emphasis(loudness: np.ndarray, rng: np.random.Generator, probability: float) -> np.ndarray:
    """Frame indices of emphasised syllables: prominent loudness peaks ≥ 0.6 s apart, each kept with `probability`."""
    smooth = gaussian_filter1d(loudness, sigma=0.1 * FPS)
    peaks, _ = find_peaks(smooth, height=0.5, prominence=0.2, distance=round(0.6 * FPS))
    return peaks[rng.random(len(peaks)) < probability]


def _bumps(frame_times: np.ndarray, centres: np.ndarray, heights: np.ndarray, rise_s: float, fall_s: float) -> np.ndarray:
    """[F] sum of asymmetric Gaussian bumps: `rise_s` wide before each centre, `fall_s` after."""
    offset = frame_times[:, None] - centres[None, :]
    width = np.where(offset < 0, rise_s, fall_s)
    return (heights[None, :] * np.exp(-0.5 * (offset / width) ** 2)).sum(axis=1)


def _drift(rng: np.random.Generator, frame_times: np.ndarray, max_hz: float, terms: int) -> np.ndarray:
    """[F] smooth zero-mean noise with unit standard deviation: `terms` sinusoids below `max_hz`."""
    hz = rng.uniform(0.05, max_hz, terms)
    phase = rng.uniform(0, 2 * np.pi, terms)
    amplitude = 1.0 / hz  # slower components swing further, as in 1/f head motion
    wave = (amplitude * np.sin(2 * np.pi * hz * frame_times[:, None] + phase)).sum(axis=1)
    return wave / (np.sqrt(0.5 * (amplitude**2).sum()) + 1e-12)
