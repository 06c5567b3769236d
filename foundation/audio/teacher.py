"""The distillation teacher: resemblyzer's GE2E embedding of each clean training window.

resemblyzer's encoder (a 3-layer LSTM over 40-channel mel power at 16 kHz, trained on thousands of
real speakers) verifies real voices far better than an encoder trained on TTS voices alone; its
embedding of a window is a target the audio objective regresses onto (`losses.distill_loss`).

`teacher_embeddings` gives exactly what `foundation.evaluation.resemblyzer_embeddings` gives
(resemblyzer's volume normalisation and silence trimming, then `embed_utterance`'s 1.6 s partials
at 1.3 per second averaged and renormalised), but forwards the partials of a whole batch through
the LSTM at once. It runs in the loader's workers; each process loads the encoder once, on CPU.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from datasets.schema import SAMPLE_RATE

TEACHER_DIM = 256
"""Size of resemblyzer's embedding."""

SILENCE = 1e-4
"""Peak amplitude below which a window counts as silent (-80 dBFS): no teacher embedding."""

PARTIAL_RATE, MIN_COVERAGE = 1.3, 0.75
"""`VoiceEncoder.embed_utterance`'s defaults: partial windows per second, and how full the last one must be."""


@functools.lru_cache(maxsize=1)
def voice_encoder():
    """resemblyzer's pretrained `VoiceEncoder` (weights ship inside the package), CPU, eval, once per process."""
    from resemblyzer import VoiceEncoder

    return VoiceEncoder(device="cpu", verbose=False).eval()


@functools.lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    import librosa
    from resemblyzer import hparams

    n_fft = SAMPLE_RATE * hparams.mel_window_length // 1000
    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=hparams.mel_n_channels).astype(np.float32)


def mel_power(wav: np.ndarray) -> np.ndarray:
    """`resemblyzer.audio.wav_to_mel_spectrogram` ([t] → [frames, 40] mel power), with its filterbank built once and
    applied as one matrix product (librosa rebuilds it per call and applies it with a slow einsum: ~14 ms a window)."""
    import librosa
    from resemblyzer import hparams

    n_fft = SAMPLE_RATE * hparams.mel_window_length // 1000
    power = np.abs(librosa.stft(wav, n_fft=n_fft, hop_length=SAMPLE_RATE * hparams.mel_window_step // 1000)) ** 2
    # in torch, which runs on the worker's own thread budget (numpy's BLAS spin-waits on busy cores)
    return (torch.from_numpy(_mel_basis()) @ torch.from_numpy(power.astype(np.float32))).T.numpy()


def _partials(wav: np.ndarray) -> np.ndarray:
    """resemblyzer's preprocessing and partial mels of one utterance: [t] → [P, 160, 40]."""
    from resemblyzer import preprocess_wav

    trimmed = preprocess_wav(wav)
    wav = trimmed if len(trimmed) >= SAMPLE_RATE // 4 else wav  # as resemblyzer_embeddings does
    wav_slices, mel_slices = voice_encoder().compute_partial_slices(len(wav), PARTIAL_RATE, MIN_COVERAGE)
    if wav_slices[-1].stop >= len(wav):
        wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
    mel = mel_power(wav)
    return np.stack([mel[s] for s in mel_slices])


def teacher_embeddings(wavs: list[np.ndarray]) -> torch.Tensor:
    """resemblyzer utterance embeddings [N, 256] float32, unit L2 norm (a zero row for silence), of 16 kHz
    float waveforms [t_i]."""
    wavs = [np.asarray(wav, dtype=np.float32) for wav in wavs]
    # Silence (or a window with no samples) has no voice to embed: resemblyzer's volume normalisation
    # would divide by zero. It gets a zero row, which `losses.distill_loss` leaves out.
    audible = [i for i, wav in enumerate(wavs) if len(wav) and float(np.abs(wav).max()) > SILENCE]
    out = torch.zeros(len(wavs), TEACHER_DIM)
    if not audible:
        return out
    partials = [_partials(wavs[i]) for i in audible]
    with torch.no_grad():
        embeds = voice_encoder()(torch.from_numpy(np.concatenate(partials)))  # [ΣP, 256], each unit norm
    embeds = embeds.nan_to_num(0.0)  # a partial of near-silence can come out 0/0
    per_item = torch.stack([chunk.mean(0) for chunk in embeds.split([len(p) for p in partials])])
    out[audible] = torch.nn.functional.normalize(per_item, dim=-1).float()
    return out


def batch_teacher(batch: dict) -> torch.Tensor:
    """The teacher embedding [B, 256] of each window's valid samples (`wav` [B, T], `wav_len` [B])."""
    wav = batch["wav"].float().numpy()
    return teacher_embeddings([wav[i, :n] for i, n in enumerate(batch["wav_len"].tolist())])
