"""Log-mel and MFCC features, computed from `wav` in the loader's workers.

Features are not stored in shards (one feature config lives here, in code). Frames are laid out so
that audio features and video frames line up exactly: feature frame i is centred on the middle of
its 10 ms hop, samples [160 i, 160 (i+1)), so a wav of T samples gives `T // 160` frames and video
frame f (samples [640 f, 640 (f+1)) at 25 fps) owns exactly feature frames 4f … 4f+3. The signal
is zero-padded at both ends (silence, like the loader's padding) rather than reflected.

    loader = ShardLoader(url, cfg, transform=BatchFeatures(FeatureConfig()))
    batch["mel"]      # [B, N, 80] log-mel, N = T // 160
    batch["mel_len"]  # [B] valid feature frames = wav_len // 160

`BatchFeatures` may first degrade `wav` (seeded augmentation, training only) and add the distillation
teacher's embedding of the clean window; see its docstring.

`stream_log_mel` computes the same frames from a waveform that arrives in pieces (text→video streams
speech sentence by sentence): it keeps only the samples the next frame's window still needs, so its
memory and per-piece cost do not grow with the length of the stream.
"""

from __future__ import annotations

import functools
from typing import Iterable, Iterator

import numpy as np
import torch
import torchaudio
from pydantic import Field, model_validator

from datasets.config import Section
from datasets.errors import ReplicaError
from datasets.schema import FPS, SAMPLE_RATE
from foundation.audio.augment import AugmentConfig, augment_batch


class FeatureConfig(Section):
    """How audio features are computed from 16 kHz waveforms."""

    sample_rate: int = SAMPLE_RATE
    """Waveform sample rate (Hz); must match the data (16 kHz everywhere in replica)."""
    n_mels: int = Field(80, ge=8)
    """Mel filterbank channels."""
    hop: int = Field(160, ge=1)
    """Samples between feature frames (160 = 10 ms: 100 frames/s, 4 per 25 fps video frame)."""
    win: int = Field(400, ge=16)
    """Analysis window length in samples (400 = 25 ms), Hann."""
    n_fft: int = Field(512, ge=16)
    """FFT size in samples (≥ win; the window is centred inside it)."""
    f_min: float = Field(20.0, ge=0)
    """Lowest mel filter edge (Hz)."""
    f_max: float = Field(7600.0, gt=0)
    """Highest mel filter edge (Hz), below Nyquist."""
    n_mfcc: int = Field(20, ge=1)
    """MFCC coefficients kept (DCT-II of the log-mel, orthonormal)."""
    log_floor: float = Field(1e-6, gt=0)
    """Mel power is clamped to at least this before the log (so silence is finite: ln 1e-6 ≈ -13.8)."""

    @model_validator(mode="after")
    def _consistent(self) -> "FeatureConfig":
        if self.win > self.n_fft:
            raise ReplicaError(f"features.win={self.win}", f"must be ≤ n_fft={self.n_fft}")
        if self.f_max > self.sample_rate / 2 or self.f_min >= self.f_max:
            raise ReplicaError(f"features.f_min/f_max={self.f_min}/{self.f_max}",
                               f"need f_min < f_max ≤ {self.sample_rate / 2} Hz")
        if self.n_mfcc > self.n_mels:
            raise ReplicaError(f"features.n_mfcc={self.n_mfcc}", f"must be ≤ n_mels={self.n_mels}")
        return self

    @property
    def frames_per_video_frame(self) -> int:
        """Feature frames per 25 fps video frame (4 with the default 10 ms hop)."""
        per_frame = self.sample_rate / FPS / self.hop
        if per_frame != int(per_frame):
            raise ReplicaError(f"features.hop={self.hop}",
                               f"must divide {self.sample_rate // FPS} samples per video frame")
        return int(per_frame)


def n_frames(n_samples: int, cfg: FeatureConfig) -> int:
    """Feature frames for a wav of `n_samples` samples: one per complete hop."""
    return n_samples // cfg.hop


@functools.lru_cache(maxsize=16)
def _mel_transform(cfg_json: str, device: str) -> torchaudio.transforms.MelSpectrogram:
    # Keyed by the config's JSON (configs are unhashable pydantic models) and device, so each
    # loader worker builds the filterbank once.
    cfg = FeatureConfig.model_validate_json(cfg_json)
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win, hop_length=cfg.hop,
        f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels, power=2.0, center=False,
    ).to(device)


@functools.lru_cache(maxsize=16)
def _dct_matrix(n_mfcc: int, n_mels: int, device: str) -> torch.Tensor:
    return torchaudio.functional.create_dct(n_mfcc, n_mels, norm="ortho").to(device)


def log_mel(wav: torch.Tensor, cfg: FeatureConfig | None = None) -> torch.Tensor:
    """Log-mel spectrogram aligned to hops.

    wav: [B, T] float32 in [-1, 1] at `cfg.sample_rate`.
    Returns [B, T // hop, n_mels], natural log of mel power (floored at `log_floor`).
    """
    cfg = cfg or FeatureConfig()
    if wav.ndim != 2:
        raise ReplicaError(f"wav {list(wav.shape)}", "expected [B, T]")
    if wav.shape[1] < cfg.hop:
        raise ReplicaError(f"wav of {wav.shape[1]} samples", f"shorter than one hop ({cfg.hop})")
    # Centre frame i's FFT span on sample 160 i + 80: pad (n_fft - hop) / 2 on each side; then
    # exactly T // hop full spans fit (an odd leftover sample goes to the right).
    left = (cfg.n_fft - cfg.hop) // 2
    right = cfg.n_fft - cfg.hop - left
    padded = torch.nn.functional.pad(wav.float(), (left, right))
    mel = _mel_transform(cfg.model_dump_json(), str(wav.device))(padded)  # [B, n_mels, N]
    mel = mel[..., : n_frames(wav.shape[1], cfg)]
    return torch.log(mel.clamp_min(cfg.log_floor)).transpose(1, 2).contiguous()


def stream_log_mel(wav_chunks: Iterable[torch.Tensor], cfg: FeatureConfig | None = None,
                   multiple: int = 1) -> Iterator[torch.Tensor]:
    """`log_mel` of a waveform arriving in pieces, yielding frames as soon as their window is complete.

    wav_chunks: [B, t_k] float32 pieces in time order, any sizes. Yields [B, n_k, n_mels] with n_k a
    multiple of `multiple` (4: whole video frames, what `AudioEncoder.stream` reads); at the end of the
    stream the right edge is zero-padded as `log_mel` pads it, and frames past the last whole multiple
    are dropped. Concatenated, the yields equal `log_mel(torch.cat(wav_chunks, 1))[:, :N]` with N the
    largest multiple of `multiple` ≤ T // hop, up to float rounding.
    """
    cfg = cfg or FeatureConfig()
    transform = None
    left = (cfg.n_fft - cfg.hop) // 2
    right = cfg.n_fft - cfg.hop - left
    pending: torch.Tensor | None = None  # padded samples from the first frame not yet emitted
    total = emitted = 0  # samples received; frames emitted

    def frames(span: torch.Tensor, count: int) -> torch.Tensor:
        mel = transform(span)[..., :count]  # [B, n_mels, count]
        return torch.log(mel.clamp_min(cfg.log_floor)).transpose(1, 2).contiguous()

    for chunk in wav_chunks:
        chunk = chunk.float()
        if pending is None:
            transform = _mel_transform(cfg.model_dump_json(), str(chunk.device))
            pending = chunk.new_zeros(chunk.shape[0], left)
        pending, total = torch.cat((pending, chunk), dim=1), total + chunk.shape[1]
        ready = (pending.shape[1] - cfg.n_fft) // cfg.hop + 1 if pending.shape[1] >= cfg.n_fft else 0
        ready -= ready % multiple
        if ready:
            yield frames(pending[:, : (ready - 1) * cfg.hop + cfg.n_fft], ready)
            pending, emitted = pending[:, ready * cfg.hop:], emitted + ready
    if pending is None:
        return
    last = n_frames(total, cfg) - emitted
    last -= last % multiple
    if last > 0:
        padded = torch.nn.functional.pad(pending, (0, right))
        yield frames(padded[:, : (last - 1) * cfg.hop + cfg.n_fft], last)


def mfcc(wav: torch.Tensor, cfg: FeatureConfig | None = None) -> torch.Tensor:
    """MFCCs: orthonormal DCT-II of `log_mel`.

    wav: [B, T] float32 at `cfg.sample_rate`. Returns [B, T // hop, n_mfcc].
    """
    cfg = cfg or FeatureConfig()
    return log_mel(wav, cfg) @ _dct_matrix(cfg.n_mfcc, cfg.n_mels, str(wav.device))


def batch_features(batch: dict, cfg: FeatureConfig | None = None) -> dict:
    """Add `mel` [B, N, n_mels] and `mel_len` [B] (valid frames, from `wav_len`) to a loader batch."""
    cfg = cfg or FeatureConfig()
    batch["mel"] = log_mel(batch["wav"], cfg)
    batch["mel_len"] = torch.div(batch["wav_len"], cfg.hop, rounding_mode="floor").clamp_max(batch["mel"].shape[1])
    return batch


class BatchFeatures:
    """The loader's `transform`: a picklable callable adding features to each batch in its worker.

    In order: `teacher` [B, 256] (resemblyzer's embedding of the clean window, `foundation.audio.teacher`; with
    `augment.new_voice`, of the window after its speed and formant changes) when `teacher` is set; the `augment`
    degradations of `wav` (`foundation.audio.augment`, seeded by the loader's `item_seed`) when given and
    enabled; then `mel` and `mel_len` of the result.
    """

    def __init__(self, cfg: FeatureConfig | None = None, augment: AugmentConfig | None = None,
                 teacher: bool = False):
        self.cfg = cfg or FeatureConfig()
        self.augment, self.teacher = augment, teacher
        # Import what the workers will need here, before the DataLoader forks them: a module first imported in a
        # forked worker (librosa, through resemblyzer) trips wandb's import hook, which refuses to run in a fork.
        if teacher:
            from foundation.audio.teacher import teacher_embeddings

            teacher_embeddings([np.random.default_rng(0).normal(0, 0.1, self.cfg.sample_rate).astype(np.float32)])
        if augment is not None and augment.enabled and augment.codec_p > 0:
            import av  # noqa: F401  (the codec round-trip's encoder)

    def __call__(self, batch: dict) -> dict:
        augment = self.augment is not None and self.augment.enabled
        teacher = None
        if self.teacher:
            from foundation.audio.teacher import batch_teacher  # resemblyzer loads only where distillation runs

            if augment and self.augment.new_voice:
                teacher = batch_teacher  # embeds the altered voice, inside the augmentation
            else:
                batch["teacher"] = batch_teacher(batch)
        if augment:
            batch = augment_batch(batch, self.augment, teacher)
        return batch_features(batch, self.cfg)
