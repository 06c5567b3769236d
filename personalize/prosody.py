"""Prosody of speech: how fast and how high a person speaks, and shifting a voice's tempo and pitch to match.

Voice choice (`personalize.voice`) measures the person and every candidate voice the same way, then adapts each
candidate's tempo and pitch level toward the person before the candidates are compared:

- **pitch** (`pitch_track`): YIN (de Cheveigné & Kawahara 2002) on 10 ms hops. YIN gives a voicing decision with
  each estimate (its aperiodicity), which is what pitch statistics need: torchaudio's `detect_pitch_frequency`
  returns a value for every frame, silence and fricatives included, median-smoothed across them. It is a few
  vectorised numpy lines; librosa's `yin` would do the same but is only a transitive dependency here.
- **speaking rate** (`syllable_rate`): syllable nuclei counted as peaks of the vowel-band intensity contour that
  stand at least 2 dB above the dips around them (after de Jong & Wempe 2009, with a band-pass filter in place of
  their voicing check, which YIN's dropouts on creaky voices made undercount), per second of speech (webrtcvad):
  the articulation rate, so pauses do not count. No transcript or phone recogniser is needed.
- **adapting** (`shift_prosody`): a phase-vocoder time stretch (torchaudio) and a resampling pitch shift, applied
  to any engine's output alike. The engines' own controls are not used: only espeak-ng has them, and its binding
  (`foundation.tts.espeak`) does not expose them. The shift moves the whole F0 contour (and the formants with
  it), so it matches pitch *level*; pitch *range* is measured but not adapted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torchaudio.functional as AF
from scipy.ndimage import median_filter
from scipy.signal import butter, find_peaks, sosfilt

from datasets.errors import ReplicaError
from datasets.ingest import speech_mask
from datasets.schema import SAMPLE_RATE

HOP = 160
"""Samples between pitch and intensity frames (10 ms at 16 kHz)."""
F0_MIN_HZ, F0_MAX_HZ = 60.0, 500.0
"""The pitch search range: low male voices to children."""
_YIN_WINDOW = 400  # integration window (25 ms): two periods of a 80 Hz voice
_YIN_THRESHOLD = 0.25  # aperiodicity below which a frame is voiced (0.1–0.15 in the paper: clean speech only)
_OCTAVE_CHECK_FRAMES = 25  # voiced frames in the running median that octave jumps are judged against
_SILENCE_DB = 35.0  # frames this far below the loud frames count as silence
_NUCLEUS_DIP_DB = 2.0  # de Jong & Wempe's minimum dip between syllable nuclei
_NUCLEUS_GAP_S = 0.05  # nuclei closer than this are one syllable
_VOWEL_BAND = butter(2, (300, 2500), btype="bandpass", fs=SAMPLE_RATE, output="sos")
_VAD_FRAME_S = 0.03  # `speech_mask` frames


@dataclass(frozen=True)
class Prosody:
    """How someone speaks, measured on their audio."""

    rate: float
    """Articulation rate: syllable nuclei per second of speech (pauses excluded)."""
    f0_hz: float
    """Pitch level: median F0 over voiced frames (Hz)."""
    f0_range_st: float
    """Pitch range: the 10th–90th percentile span of voiced F0 (semitones)."""
    speech_s: float
    """Seconds of speech (voice activity) the numbers are measured on."""

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ProsodyShift:
    """A change of tempo and pitch level applied to synthesised speech."""

    tempo: float = 1.0
    """Speed factor (> 1: faster, shorter); pitch is kept."""
    semitones: float = 0.0
    """Pitch shift (> 0: higher); duration is kept."""

    @property
    def is_identity(self) -> bool:
        return self.tempo == 1.0 and self.semitones == 0.0


def _frames(wav: np.ndarray, length: int) -> np.ndarray:
    """[T] → [T // HOP, length] windows starting at each hop (zero-padded at the end)."""
    n = len(wav) // HOP
    padded = np.pad(wav, (0, n * HOP + length - len(wav))) if n * HOP + length > len(wav) else wav
    return np.lib.stride_tricks.sliding_window_view(padded, length)[: n * HOP : HOP]


def _level_db(wav: np.ndarray) -> np.ndarray:
    """Frame intensity [T // HOP] in dB (RMS over 40 ms, Hann-weighted, centred on each hop's start)."""
    window = np.hanning(640).astype(np.float32)
    frames = _frames(np.pad(wav, (320, 0)), 640)[: len(wav) // HOP]
    return 10 * np.log10((frames**2 * window).sum(1) / window.sum() + 1e-10)


def _yin_lags(frames: np.ndarray, tau_min: int, tau_max: int) -> tuple[np.ndarray, np.ndarray]:
    """YIN on frames [N, W + tau_max]: (lag [N] in samples, sub-sample interpolated; periodic [N] bool)."""
    n_fft = 1 << int(np.ceil(np.log2(2 * frames.shape[1])))
    # difference d(tau) = e(0) + e(tau) - 2 r(tau): energies from a running sum, r from one FFT correlation
    spectrum = np.fft.rfft(frames, n_fft)
    head = np.fft.rfft(frames[:, :_YIN_WINDOW], n_fft)
    r = np.fft.irfft(np.conj(head) * spectrum, n_fft)[:, : tau_max + 1]
    energy = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames**2, axis=1)], axis=1)
    e_tau = energy[:, _YIN_WINDOW: _YIN_WINDOW + tau_max + 1] - energy[:, : tau_max + 1]
    d = np.maximum(e_tau[:, :1] + e_tau - 2 * r, 0.0)
    taus = np.arange(tau_max + 1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] * taus[1:] / np.maximum(np.cumsum(d[:, 1:], axis=1), 1e-12)
    cmnd[:, :tau_min] = np.inf
    # the first dip below the threshold, then the bottom of that dip (YIN's "absolute threshold" step)
    below = cmnd < _YIN_THRESHOLD
    first = below.argmax(1)
    after = taus[None, :] >= first[:, None]
    in_dip = np.logical_and.accumulate(below | ~after, axis=1) & after
    tau = np.where(in_dip, cmnd, np.inf).argmin(1)
    # a dip still falling at the range's edge is no period inside the range
    periodic = below.any(1) & (tau > tau_min) & (tau < tau_max)
    rows, inner = np.arange(len(tau)), np.clip(tau, tau_min + 1, tau_max - 1)
    left, mid, right = (cmnd[rows, inner + k] for k in (-1, 0, 1))
    curvature = left - 2 * mid + right
    offset = np.where(curvature > 0, 0.5 * (left - right) / np.where(curvature > 0, curvature, 1.0), 0.0)
    return np.where(periodic, inner + np.clip(offset, -1, 1), np.nan), periodic


def pitch_track(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """YIN pitch estimates per 10 ms hop.

    wav: float32 [T] mono speech at 16 kHz.
    Returns (f0 [T // 160] in Hz, NaN where unvoiced; voiced [T // 160] bool). A frame is voiced when its
    cumulative-mean-normalised difference dips below 0.25 inside the 60–500 Hz lag range, it is not silent, and
    its F0 is within 7 semitones of the running median of its voiced neighbours (octave jumps are dropped).
    """
    if sample_rate != SAMPLE_RATE:
        raise ReplicaError(f"audio at {sample_rate} Hz", f"pitch tracking expects {SAMPLE_RATE} Hz")
    wav = np.asarray(wav, np.float32)
    tau_min, tau_max = int(SAMPLE_RATE / F0_MAX_HZ), int(np.ceil(SAMPLE_RATE / F0_MIN_HZ))
    lag, periodic = _yin_lags(_frames(wav.astype(np.float64), _YIN_WINDOW + tau_max), tau_min, tau_max)
    voiced = periodic & (_level_db(wav) > _loud_db(wav) - _SILENCE_DB)
    semitones = 12 * np.log2(SAMPLE_RATE / lag[voiced])
    if len(semitones):
        voiced[voiced] = np.abs(semitones - median_filter(semitones, _OCTAVE_CHECK_FRAMES, mode="nearest")) < 7
    return np.where(voiced, SAMPLE_RATE / np.where(voiced, lag, 1.0), np.nan).astype(np.float32), voiced


def _loud_db(wav: np.ndarray) -> float:
    """The level of the loud frames (95th percentile of frame intensity, dB)."""
    return float(np.percentile(_level_db(np.asarray(wav, np.float32)), 95))


def syllable_rate(wav: np.ndarray) -> tuple[float, float]:
    """Articulation rate of 16 kHz speech: (syllable nuclei per second of speech, seconds of speech).

    wav: float32 [T] at 16 kHz. Nuclei are peaks of the 300–2500 Hz intensity (vowels; fricatives and bursts
    fall mostly outside the band) standing 2 dB above the dips on either side, at most 25 dB below the loud
    frames, at least 50 ms apart. Seconds of speech come from webrtcvad.
    """
    wav = np.asarray(wav, np.float32)
    level = _level_db(sosfilt(_VOWEL_BAND, wav).astype(np.float32))
    smooth = np.convolve(level, [0.25, 0.5, 0.25], mode="same")  # one peak per vowel, not per pitch pulse
    peaks, _ = find_peaks(smooth, height=np.percentile(level, 95) - 25.0, prominence=_NUCLEUS_DIP_DB,
                          distance=int(_NUCLEUS_GAP_S * SAMPLE_RATE / HOP))
    speech_s = float(speech_mask(wav).sum() * _VAD_FRAME_S)
    if speech_s <= 0:
        raise ReplicaError(f"speech of {len(wav) / SAMPLE_RATE:.1f}s", "no voice activity to measure a rate on")
    return len(peaks) / speech_s, speech_s


def measure(wav: np.ndarray) -> Prosody:
    """Speaking rate, pitch level and pitch range of 16 kHz speech (float32 [T] in [-1, 1])."""
    f0, voiced = pitch_track(wav)
    if voiced.sum() < 10:
        raise ReplicaError(f"speech of {len(wav) / SAMPLE_RATE:.1f}s", "too few voiced frames to measure pitch")
    rate, speech_s = syllable_rate(wav)
    semitones = 12 * np.log2(f0[voiced])
    low, high = np.percentile(semitones, [10, 90])
    return Prosody(rate=rate, f0_hz=float(np.median(f0[voiced])), f0_range_st=float(high - low), speech_s=speech_s)


def fit_shift(person: Prosody, voice: Prosody, max_tempo: float, max_semitones: float) -> ProsodyShift:
    """The shift bringing `voice`'s rate and pitch level to `person`'s, clamped to ×/÷ max_tempo and ±max_semitones
    (tempo 1 when either rate is unknown, i.e. no syllable was found)."""
    ratio = person.rate / voice.rate if person.rate > 0 and voice.rate > 0 else 1.0
    tempo = float(np.clip(ratio, 1 / max_tempo, max_tempo))
    semitones = float(np.clip(12 * np.log2(person.f0_hz / voice.f0_hz), -max_semitones, max_semitones))
    return ProsodyShift(round(tempo, 3), round(semitones, 2))


def shift_prosody(wav: np.ndarray, shift: ProsodyShift) -> np.ndarray:
    """Speech with tempo and pitch level changed: float32 [T] at 16 kHz → float32 [≈ T / tempo], same peak.

    Pitch: played faster by s = 2^(semitones/12) through a resampler (pitch × s, duration ÷ s); tempo: a phase
    vocoder stretch by tempo / s, so the duration ends at T / tempo. One vocoder pass, one resampling.
    """
    if shift.is_identity:
        return np.asarray(wav, np.float32)
    speed = 2 ** (shift.semitones / 12)
    # resample from a rate on a 80 Hz grid: keeps the resampler's kernel small (gcd ≥ 80) at ≤ 0.1 semitone error
    source_rate = int(round(SAMPLE_RATE * speed / 80) * 80)
    audio = torch.from_numpy(np.asarray(wav, np.float32))
    n_fft, hop = 512, 128
    window = torch.hann_window(n_fft)
    spec = torch.stft(audio, n_fft, hop, window=window, return_complex=True)
    advance = torch.linspace(0, torch.pi * hop, spec.shape[0])[..., None]
    stretched = AF.phase_vocoder(spec, shift.tempo * SAMPLE_RATE / source_rate, advance)
    audio = torch.istft(stretched, n_fft, hop, window=window)
    if source_rate != SAMPLE_RATE:
        audio = AF.resample(audio, source_rate, SAMPLE_RATE)
    out = audio.numpy().astype(np.float32)
    peak = float(np.abs(out).max())
    return out * (float(np.abs(wav).max()) / peak) if peak > 0 else out
