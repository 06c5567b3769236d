"""What real recordings do to a voice, applied to training windows in the loader's workers.

The TTS pool is clean studio speech; a person's video is not. `augment_batch` degrades each window
of a loader batch the way rooms, microphones, phone lines and codecs do, before features are
computed (`features.BatchFeatures`), so the encoder learns the speaker and not the recording.

    wav [B, T], wav_len [B], item_seed [B]
      → speed (resample: tempo, pitch and formants together)
      → formant shift (LPC envelope warped, harmonics kept: a longer or shorter vocal tract)
      → room (convolution with a generated exponential-decay impulse response, random RT60)
      → babble (other windows of the batch, low) and coloured noise (white…brown) at a drawn SNR
      → telephone (300–3400 Hz, 8 kHz, μ-law) or a lossy codec round-trip (mp3 / opus via PyAV)
      → level change (gain, then clipped to [-1, 1] as a recorder would)

Every choice is drawn from a generator seeded by (config seed, the item's `item_seed`, the kind of
augmentation); the loader derives `item_seed` from (loader seed, round, stream, position), so an
item is degraded identically whenever it is read, and a resumed run sees the very same batches.
Lengths are kept: the output is [B, T] with padding past `wav_len` zero; a speed change moves
`wav_len` with the speech it stretches (cropped to T) and is recorded in `speed` [B] (the factor each window
was played at, 1.0 without one), so frame-aligned labels can follow the speech (`foundation.training.viseme_labels`).
"""

from __future__ import annotations

import functools
import io
import math
from typing import Callable

import numpy as np
import torch
import torchaudio
from pydantic import Field, model_validator

from datasets.config import Section
from datasets.errors import ReplicaError
from datasets.schema import SAMPLE_RATE


class AugmentConfig(Section):
    """Seeded degradations of training audio (speed, formants, rooms, noise, phone lines, codecs, level)."""

    enabled: bool = False
    """Apply augmentation to training batches (evaluation never augments)."""
    seed: int = 0
    """Mixed with each item's loader seed: a different seed gives different degradations of the same data."""
    speed_p: float = Field(0.5, ge=0, le=1)
    """Probability of a speed change by resampling (tempo, pitch and formants move together)."""
    speed_range: tuple[float, float] = (0.88, 1.12)
    """Speed factor range (1.1: 10% faster and higher)."""
    formant_p: float = Field(0.4, ge=0, le=1)
    """Probability of a vocal-tract-length change (spectral envelope warped, pitch kept)."""
    formant_range: tuple[float, float] = (0.88, 1.14)
    """Formant frequency factor range (>1: a shorter vocal tract, formants up)."""
    reverb_p: float = Field(0.4, ge=0, le=1)
    """Probability of a simulated room."""
    rt60_range: tuple[float, float] = (0.15, 0.8)
    """Reverberation time range (s): the tail decays 60 dB in this time."""
    drr_range_db: tuple[float, float] = (0.0, 12.0)
    """Direct-to-reverberant energy ratio range (dB)."""
    noise_p: float = Field(0.4, ge=0, le=1)
    """Probability of additive coloured noise."""
    noise_snr_db: tuple[float, float] = (0.0, 25.0)
    """Signal-to-noise ratio range over the valid samples (dB)."""
    noise_colour: tuple[float, float] = (0.0, 2.0)
    """Spectral slope range of the noise power, 1/f^β (0 white, 1 pink, 2 brown)."""
    babble_p: float = Field(0.2, ge=0, le=1)
    """Probability of babble: other windows of the same batch mixed in at a low level."""
    babble_snr_db: tuple[float, float] = (10.0, 25.0)
    """Signal-to-babble ratio range (dB)."""
    babble_voices: tuple[int, int] = (1, 3)
    """How many other windows make up the babble (inclusive range)."""
    telephone_p: float = Field(0.15, ge=0, le=1)
    """Probability of a telephone channel: band-pass 300–3400 Hz, 8 kHz, 8-bit μ-law."""
    codec_p: float = Field(0.1, ge=0, le=1)
    """Probability of a lossy codec round-trip (when no telephone channel was applied)."""
    codecs: tuple[str, ...] = ("mp3", "opus")
    """Codecs to draw from; one missing from this machine's PyAV is skipped (see `available_codecs`)."""
    codec_kbps: tuple[int, int] = (16, 48)
    """Codec bitrate range (kbit/s)."""
    gain_p: float = Field(0.5, ge=0, le=1)
    """Probability of a level change."""
    gain_db: tuple[float, float] = (-18.0, 8.0)
    """Gain range (dB); the result is clipped to [-1, 1]."""
    new_voice: bool = False
    """A window whose voice a speed or formant change altered counts as a new voice, not its speaker's: the
    distillation teacher embeds the altered voice (before rooms, noise and channels), and the speaker loss leaves
    the window out (`voice_changed` in the batch). False: the altered window keeps its speaker's label and the
    teacher's embedding of the clean window, which teaches the encoder to ignore pitch and vocal-tract length —
    what tells real speakers apart. (Speaker-recognition recipes such as WeSpeaker's likewise give
    speed-perturbed copies new speaker labels.)"""
    new_voice_labels: bool = False
    """With `new_voice`: instead of leaving a changed window out of the speaker loss, give it a class of its own —
    its speaker × which way its speed and its formants moved (`VOICE_VARIANTS`; `voice_variant` in the batch), as
    WeSpeaker does with speed perturbation."""

    @model_validator(mode="after")
    def _ranges(self) -> "AugmentConfig":
        for name in ("speed_range", "formant_range", "rt60_range", "drr_range_db", "noise_snr_db", "noise_colour",
                     "babble_snr_db", "babble_voices", "codec_kbps", "gain_db"):
            low, high = getattr(self, name)
            if low > high:
                raise ReplicaError(f"augment.{name}={[low, high]}", "low end above high end")
        for name in ("speed_range", "formant_range", "rt60_range"):
            if getattr(self, name)[0] <= 0:
                raise ReplicaError(f"augment.{name}={list(getattr(self, name))}", "must be positive")
        unknown = sorted(set(self.codecs) - set(CODECS))
        if unknown:
            raise ReplicaError(f"augment.codecs={list(self.codecs)}", f"unknown codec {unknown[0]!r} (know {list(CODECS)})")
        return self


CODECS = {"mp3": ("mp3", "libmp3lame", 16000), "opus": ("ogg", "libopus", 16000)}
"""Codec name → (container, PyAV encoder, encoder sample rate)."""


@functools.lru_cache(maxsize=1)
def available_codecs() -> tuple[str, ...]:
    """The codecs of `CODECS` whose encoder this machine's PyAV has."""
    import av

    return tuple(name for name, (_, encoder, _) in CODECS.items() if encoder in av.codecs_available)


def item_rng(seed: int, item_seed: int) -> np.random.Generator:
    """The generator of one item's augmentation: a pure function of the config seed and the item's seed."""
    return np.random.default_rng([seed & 0xFFFFFFFF, (item_seed >> 32) & 0xFFFFFFFF, item_seed & 0xFFFFFFFF])


def _power(wav: torch.Tensor) -> float:
    return float(wav.pow(2).mean()) if wav.numel() else 0.0


@functools.lru_cache(maxsize=64)
def _resampler(orig: int, new: int, sharp: bool = False) -> torchaudio.transforms.Resample:
    # torchaudio's functional resample rebuilds its sinc kernel on every call; the transform keeps it.
    # sharp: a long filter rolling off early (the default one lets μ-law noise image above 4 kHz at -25 dB).
    options = {"lowpass_filter_width": 16, "rolloff": 0.9} if sharp else {}
    return torchaudio.transforms.Resample(orig, new, **options)


def played_speed(factor: float) -> float:
    """The factor `speed` really plays at: 100 / round(100 / factor) (its resampling ratio is quantised)."""
    return 100 / int(round(100 / factor))


def speed(wav: torch.Tensor, factor: float) -> torch.Tensor:
    """Play `wav` [t] `factor` times faster: tempo, pitch and formants × factor, [≈ t / factor] samples
    (band-limited resampling at `played_speed(factor)`)."""
    new = int(round(100 / factor))
    return _resampler(100, new)(wav) if new != 100 else wav


def lpc_log_envelope(power: torch.Tensor, order: int) -> torch.Tensor:
    """All-pole (LPC) spectral envelope of STFT frames: power [..., F, N] (F = n_fft/2 + 1) → log magnitude [..., F, N].

    The frames' autocorrelation is the inverse FFT of their power; Levinson–Durbin (vectorised over
    frames) gives the predictor A(z), and the envelope is 1 / |A(e^jω)| (up to each frame's gain).
    """
    n_fft = 2 * (power.shape[-2] - 1)
    r = torch.fft.irfft(power, n=n_fft, dim=-2)[..., : order + 1, :].transpose(-1, -2).contiguous()  # [..., N, p+1]
    r[..., 0] = r[..., 0] * (1 + 1e-4) + 1e-10  # white-noise floor: silent frames stay finite, Levinson stable
    a = torch.zeros_like(r)
    a[..., 0] = 1.0
    err = r[..., 0].clone()
    for i in range(1, order + 1):
        k = -(r[..., i] + (a[..., 1:i] * r[..., 1:i].flip(-1)).sum(-1)) / err
        a[..., 1:i] = a[..., 1:i] + k[..., None] * a[..., 1:i].flip(-1)
        a[..., i] = k
        err = err * (1 - k * k)
    return -torch.fft.rfft(a, n=n_fft, dim=-1).abs().clamp_min(1e-12).log().transpose(-1, -2)  # [..., F, N]


def formant_shift(wav: torch.Tensor, factor: torch.Tensor, n_fft: int = 512, order: int = 18,
                  max_change_db: float = 25.0) -> torch.Tensor:
    """Scale the vocal-tract resonances' frequencies by `factor`, keeping the harmonics (pitch).

    wav: [B, t]; factor: [B] (>1: formants up, a shorter vocal tract). Returns [B, t].
    Each STFT frame is multiplied by warped / original LPC envelope, the warped one reading the
    original at f / factor; the excitation's fine structure (the pitch harmonics) is left where it
    is. The per-bin change is capped at ±`max_change_db` so a valley meeting a peak stays sane.
    """
    if wav.shape[-1] < n_fft:
        return wav
    window = torch.hann_window(n_fft)
    # Zero (not reflected) edges: a row padded with zeros to the batch's length then transforms as it would alone.
    spec = torch.stft(wav, n_fft, hop_length=n_fft // 2, window=window, pad_mode="constant",
                      return_complex=True)  # [B, F, N]
    env = lpc_log_envelope(spec.abs().pow(2), order)
    bins = env.shape[1]
    src = (torch.arange(bins, dtype=torch.float32)[None] / factor[:, None]).clamp(max=bins - 1)  # [B, F]
    low = src.floor().long()
    high = (low + 1).clamp(max=bins - 1)
    frac = (src - low)[..., None]
    shape = (-1, -1, env.shape[2])
    warped = env.gather(1, low[..., None].expand(*shape)) * (1 - frac) + env.gather(1, high[..., None].expand(*shape)) * frac
    limit = max_change_db / 20 * math.log(10)
    # nan_to_num: a float32 Levinson recursion can break down on a degenerate frame; leave such a frame as it is
    spec = spec * torch.exp((warped - env).nan_to_num(0.0, limit, -limit).clamp(-limit, limit))
    return torch.istft(spec, n_fft, hop_length=n_fft // 2, window=window, length=wav.shape[-1])


def room_response(rt60: float, drr_db: float, gen: torch.Generator) -> torch.Tensor:
    """A generated room impulse response [L]: a unit direct path, then Gaussian noise decaying 60 dB in `rt60` s,
    its energy `drr_db` below the direct path's. L = rt60 s (the tail is then 60 dB down)."""
    n = max(int(rt60 * SAMPLE_RATE), 2)
    t = torch.arange(n, dtype=torch.float32) / SAMPLE_RATE
    tail = torch.randn(n, generator=gen) * torch.exp(-3 * math.log(10) * t / rt60)  # amplitude: -60 dB at rt60
    tail[0] = 0
    tail *= math.sqrt(10 ** (-drr_db / 10) / float(tail.pow(2).sum()))
    tail[0] = 1.0
    return tail


def convolve(wav: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """Linear convolution by FFT, cut to the input's length: [..., t], [..., L] → [..., t]."""
    n = wav.shape[-1] + response.shape[-1] - 1
    size = 1 << (n - 1).bit_length()
    out = torch.fft.irfft(torch.fft.rfft(wav, size) * torch.fft.rfft(response, size), size)
    return out[..., : wav.shape[-1]]


def coloured_noise(n: int, beta: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
    """Gaussian noise [B, n], row b with power spectrum ∝ 1/f^β_b and unit power; row b drawn from gens[b]."""
    bins = n // 2 + 1
    white = torch.stack([torch.complex(torch.randn(bins, generator=g), torch.randn(bins, generator=g)) for g in gens])
    freqs = torch.arange(bins, dtype=torch.float32).clamp_min(1.0)
    noise = torch.fft.irfft(white * freqs[None].pow(-beta[:, None] / 2), n)
    return noise / noise.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-12)


def mix_at_snr(wav: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """wav + noise scaled so that power(wav) / power(noise) is `snr_db` dB: [t], [t] → [t]."""
    signal, interference = _power(wav), _power(noise)
    if signal == 0 or interference == 0:
        return wav
    return wav + noise * math.sqrt(signal / (interference * 10 ** (snr_db / 10)))


def telephone(wav: torch.Tensor) -> torch.Tensor:
    """A narrow-band phone line: 8 kHz, 300–3400 Hz band-pass, 8-bit μ-law, back to 16 kHz: [..., t] → [..., t]."""
    narrow = _resampler(SAMPLE_RATE, 8000, sharp=True)(wav)
    narrow = torchaudio.functional.highpass_biquad(narrow, 8000, 300.0)
    narrow = torchaudio.functional.lowpass_biquad(narrow, 8000, 3400.0)
    narrow = torchaudio.functional.mu_law_decoding(torchaudio.functional.mu_law_encoding(narrow.clamp(-1, 1), 256), 256)
    wide = _resampler(8000, SAMPLE_RATE, sharp=True)(narrow)
    t = wav.shape[-1]
    return torch.nn.functional.pad(wide, (0, max(0, t - wide.shape[-1])))[..., :t]


def codec_roundtrip(wav: torch.Tensor, codec: str, kbps: int) -> torch.Tensor:
    """Encode `wav` [t] (16 kHz) with `codec` at `kbps` kbit/s through PyAV and decode it back: [t] → [t].

    The decoder drops the encoder's priming samples (mp3's LAME header, opus' pre-skip), so the
    output is aligned with the input; it is cut or zero-padded to the input's length.
    """
    import av

    container, encoder, rate = CODECS[codec]
    pcm = (wav.clamp(-1, 1).numpy() * 32767).astype(np.int16)[None, :]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(encoder, rate=rate, layout="mono")
        stream.bit_rate = kbps * 1000
        stream.codec_context.options = {"compression_level": "9" if codec == "mp3" else "0"}  # fastest settings
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buffer.seek(0)
    pieces = []
    with av.open(buffer, "r") as src:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for decoded in src.decode(audio=0):
            pieces += [r.to_ndarray().reshape(-1) for r in resampler.resample(decoded)]
        pieces += [r.to_ndarray().reshape(-1) for r in resampler.resample(None)]
    out_wav = torch.from_numpy(np.concatenate(pieces)) if pieces else torch.zeros(0)
    return torch.nn.functional.pad(out_wav, (0, max(0, len(wav) - len(out_wav))))[: len(wav)]


VOICE_VARIANTS = 9
"""Ways a window's voice can be changed, as the speaker loss tells them apart: speed down / kept / up × formants
down / kept / up (`voice_variant` = 3·speed + formant; 4 = the voice as recorded)."""
VARIANT_TOLERANCE = 0.03
"""A speed or formant factor within this of 1 counts as kept (too small a change to be another voice)."""


def _variant_side(factor: float) -> int:
    """0 below, 1 within, 2 above `VARIANT_TOLERANCE` of 1."""
    return 0 if factor < 1 - VARIANT_TOLERANCE else 2 if factor > 1 + VARIANT_TOLERANCE else 1


def augment_batch(batch: dict, cfg: AugmentConfig, teacher: Callable[[dict], torch.Tensor] | None = None) -> dict:
    """Degrade each window of a loader batch in place of its `wav` (see the module docstring).

    batch: `wav` [B, T] float32, `wav_len` [B] valid samples, `item_seed` [B] int64 (from the loader).
    teacher: called on `{"wav", "wav_len"}` after the speed and formant changes, before the rest; its result is
    the batch's `teacher` (`AugmentConfig.new_voice`: the distillation target of the altered voice).
    Returns the batch with `wav` [B, T] (padding past the new `wav_len` zero) and `wav_len` [B] updated,
    `speed` [B] float32: the factor each window was played at (1.0 where its speed was kept), and
    `voice_changed` [B] bool: windows whose speed or formants were changed, and `voice_variant` [B] int64 (see
    `VOICE_VARIANTS`).
    Each kind runs on all the items it applies to at once (the FFTs are batched); what an item gets
    depends only on its own draws, its own audio and, for babble, the batch's other clean windows.
    """
    if not cfg.enabled:
        return batch
    if "item_seed" not in batch:
        raise ReplicaError(f"batch {batch.get('keys', [])[:2]}", "augmentation needs the loader's item_seed")
    wav, lengths = batch["wav"].float(), batch["wav_len"].tolist()
    clean = [wav[i, :n] for i, n in enumerate(lengths)]
    draws = [_draw(cfg, item_rng(cfg.seed, int(seed))) for seed in batch["item_seed"].tolist()]
    xs = [x.clone() for x in clean]

    def chosen(kind: str) -> list[int]:
        return [i for i, d in enumerate(draws) if d[kind][0] and len(xs[i]) >= 2]

    played = torch.ones(len(xs))
    for i in chosen("speed"):
        xs[i] = speed(xs[i], draws[i]["speed"][1])[: wav.shape[1]]  # a slowed window ends at the window's end
        played[i] = played_speed(draws[i]["speed"][1])
    if idx := chosen("formant"):
        factors = torch.tensor([draws[i]["formant"][1] for i in idx])
        _apply(xs, idx, lambda padded: formant_shift(padded, factors))
    changed = torch.zeros(len(xs), dtype=torch.bool)
    changed[chosen("speed") + chosen("formant")] = True
    formants = {i: draws[i]["formant"][1] for i in chosen("formant")}
    variant = torch.tensor([3 * _variant_side(float(played[i])) + _variant_side(formants.get(i, 1.0))
                            for i in range(len(xs))], dtype=torch.int64)
    if teacher is not None:
        batch["teacher"] = teacher(_padded(xs, wav.shape[1]))
    if idx := chosen("reverb"):
        rooms = [room_response(*draws[i]["reverb"][1:3], torch.Generator().manual_seed(draws[i]["reverb"][3]))
                 for i in idx]
        responses = _pad_stack(rooms)
        _apply(xs, idx, lambda padded: convolve(padded, responses))
    for i in chosen("babble"):
        _, snr, count, pick_seed = draws[i]["babble"]
        others = [j for j in range(len(clean)) if j != i and len(clean[j])]
        if others:
            xs[i] = mix_at_snr(xs[i], _babble(len(xs[i]), [clean[j] for j in others], count, pick_seed), snr)
    if idx := chosen("noise"):
        # drawn at the window's length, whatever the other items' lengths: an item's noise is its own
        noise = coloured_noise(wav.shape[1], torch.tensor([draws[i]["noise"][2] for i in idx]),
                               [torch.Generator().manual_seed(draws[i]["noise"][3]) for i in idx])
        for row, i in enumerate(idx):
            xs[i] = mix_at_snr(xs[i], noise[row, : len(xs[i])], draws[i]["noise"][1])
    phone = chosen("telephone")
    if phone:
        _apply(xs, phone, telephone)
    codecs = [c for c in cfg.codecs if c in available_codecs()]
    for i in chosen("codec"):
        if codecs and i not in phone:
            _, which, kbps = draws[i]["codec"]
            xs[i] = codec_roundtrip(xs[i], codecs[int(which * len(codecs))], kbps)
    for i in chosen("gain"):
        xs[i] = xs[i] * 10 ** (draws[i]["gain"][1] / 20)

    dtype = batch["wav_len"].dtype
    batch.update(_padded([x.clamp(-1.0, 1.0) for x in xs], wav.shape[1]))
    batch["wav_len"] = batch["wav_len"].to(dtype)
    batch["speed"] = played
    batch["voice_changed"] = changed
    batch["voice_variant"] = variant
    return batch


def _padded(xs: list[torch.Tensor], width: int) -> dict:
    """Windows of any length → {"wav": [B, width] zero-padded (cut at width), "wav_len": [B]}."""
    out = torch.zeros(len(xs), width)
    lengths = []
    for i, x in enumerate(xs):
        x = x[:width]
        out[i, : len(x)] = x
        lengths.append(len(x))
    return {"wav": out, "wav_len": torch.tensor(lengths)}


def _pad_stack(xs: list[torch.Tensor]) -> torch.Tensor:
    """[t_i] → [k, max t_i], zero-padded."""
    return torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)


def _apply(xs: list[torch.Tensor], idx: list[int], fn) -> None:
    """xs[i] = fn(padded batch of xs[idx])[row, :len(xs[i])] for the items in idx: one batched call."""
    out = fn(_pad_stack([xs[i] for i in idx]))
    for row, i in enumerate(idx):
        xs[i] = out[row, : len(xs[i])]


def _babble(n: int, voices: list[torch.Tensor], count: int, seed: int) -> torch.Tensor:
    """`count` of `voices` at equal power, each at a random phase and looped to n samples: [n]."""
    pick = np.random.default_rng(seed)
    babble = torch.zeros(n)
    for j in pick.choice(len(voices), size=min(count, len(voices)), replace=False):
        voice = voices[int(j)]
        voice = voice[(torch.arange(n) + int(pick.integers(len(voice)))) % len(voice)]
        babble += voice / math.sqrt(max(_power(voice), 1e-12))
    return babble


def _draw(cfg: AugmentConfig, rng: np.random.Generator) -> dict:
    """Every random choice of one item, drawn in a fixed order whether or not a kind applies, so each
    kind's parameters are independent of the others' outcomes (and of the batch)."""
    def u(bounds: tuple[float, float]) -> float:
        return float(rng.uniform(*bounds))

    return {
        "speed": (rng.random() < cfg.speed_p, u(cfg.speed_range)),
        "formant": (rng.random() < cfg.formant_p, u(cfg.formant_range)),
        "reverb": (rng.random() < cfg.reverb_p, u(cfg.rt60_range), u(cfg.drr_range_db), int(rng.integers(2 ** 62))),
        "babble": (rng.random() < cfg.babble_p, u(cfg.babble_snr_db),
                   int(rng.integers(cfg.babble_voices[0], cfg.babble_voices[1] + 1)), int(rng.integers(2 ** 62))),
        "noise": (rng.random() < cfg.noise_p, u(cfg.noise_snr_db), u(cfg.noise_colour), int(rng.integers(2 ** 62))),
        "telephone": (rng.random() < cfg.telephone_p,),
        "codec": (rng.random() < cfg.codec_p, rng.random(), int(rng.integers(cfg.codec_kbps[0], cfg.codec_kbps[1] + 1))),
        "gain": (rng.random() < cfg.gain_p, u(cfg.gain_db)),
    }
