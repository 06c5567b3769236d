"""Training-audio augmentation: seeded per item, lengths kept, and each kind does what a real recording does."""

import math

import numpy as np
import pytest
import torch

from datasets.errors import ReplicaError
from foundation.audio.augment import (AugmentConfig, augment_batch, available_codecs, codec_roundtrip, convolve,
                                      formant_shift, room_response)
from foundation.audio.features import BatchFeatures, FeatureConfig
from foundation.tts import synthesize


SR = 16000
OFF = dict(speed_p=0, formant_p=0, reverb_p=0, noise_p=0, babble_p=0, telephone_p=0, codec_p=0, gain_p=0)


def only(**on) -> AugmentConfig:
    """Augmentation with every kind off except the given settings."""
    return AugmentConfig(enabled=True, **{**OFF, **on})


@pytest.fixture(scope="module")
def speech() -> torch.Tensor:
    """Two 2 s windows of real TTS speech (two espeak-ng voices): [2, 32000]."""
    wavs = [synthesize("The quick brown fox jumps over the lazy dog near the river bank.", voice).wav
            for voice in ("espeak:en-us", "espeak:en-gb")]
    return torch.stack([torch.as_tensor(w[: 2 * SR], dtype=torch.float32) for w in wavs])


def batch_of(wav: torch.Tensor, lengths=None, seeds=None) -> dict:
    lengths = torch.tensor(lengths if lengths is not None else [wav.shape[1]] * len(wav))
    wav = wav.clone()
    for i, n in enumerate(lengths.tolist()):
        wav[i, n:] = 0
    return {"wav": wav, "wav_len": lengths, "keys": [f"k{i}" for i in range(len(wav))],
            "item_seed": torch.tensor(seeds if seeds is not None else list(range(len(wav))), dtype=torch.int64)}


def power_db(x: torch.Tensor) -> float:
    return 10 * math.log10(float(x.pow(2).mean()))


def band_power(x: torch.Tensor, low: float, high: float) -> float:
    spec = torch.fft.rfft(x).abs().pow(2)
    freqs = torch.fft.rfftfreq(len(x), 1 / SR)
    return float(spec[(freqs >= low) & (freqs < high)].sum())


def test_same_item_seed_gives_identical_audio_and_another_seed_changes_only_that_item(speech):
    cfg = AugmentConfig(enabled=True, speed_p=1, formant_p=1, reverb_p=1, noise_p=1, babble_p=1, gain_p=1, codec_p=0)
    first = augment_batch(batch_of(speech, seeds=[11, 12]), cfg)
    again = augment_batch(batch_of(speech, seeds=[11, 12]), cfg)
    other = augment_batch(batch_of(speech, seeds=[11, 99]), cfg)
    assert torch.equal(first["wav"], again["wav"]) and torch.equal(first["wav_len"], again["wav_len"])
    # the other item's draws change the batched FFTs' sizes: the same result up to float rounding
    assert torch.allclose(first["wav"][0], other["wav"][0], atol=1e-5) and first["wav_len"][0] == other["wav_len"][0]
    assert not torch.allclose(first["wav"][1], other["wav"][1], atol=1e-3)
    reseeded = augment_batch(batch_of(speech, seeds=[11, 12]), cfg.model_copy(update={"seed": 1}))
    assert not torch.allclose(first["wav"][0], reseeded["wav"][0], atol=1e-3)


def test_disabled_augmentation_leaves_the_batch_untouched(speech):
    batch = batch_of(speech)
    assert torch.equal(augment_batch(batch_of(speech), AugmentConfig())["wav"], batch["wav"])


@pytest.mark.parametrize("seed", range(4))
def test_shape_kept_lengths_sane_and_padding_zero(speech, seed):
    cfg = AugmentConfig(enabled=True, speed_p=1, formant_p=1, reverb_p=1, noise_p=1, babble_p=1, telephone_p=0.5,
                        codec_p=0.5, gain_p=1, gain_db=(6.0, 12.0))
    out = augment_batch(batch_of(speech, lengths=[32000, 17000], seeds=[seed, seed + 10]), cfg)
    assert out["wav"].shape == (2, 32000) and out["wav"].dtype == torch.float32
    assert out["wav_len"].tolist()[0] <= 32000 and abs(out["wav_len"][1] - 17000) <= 17000 * 0.15
    for row, n in zip(out["wav"], out["wav_len"].tolist()):
        assert torch.all(row[n:] == 0) and row[:n].abs().max() <= 1.0 and row[:n].abs().max() > 0.01


def test_speed_raises_pitch_and_shortens_the_speech():
    t = torch.arange(SR) / SR
    tone = 0.5 * torch.sin(2 * math.pi * 200 * t)  # 1 s of 200 Hz in a 2 s window
    out = augment_batch(batch_of(torch.cat([tone, torch.zeros(SR)])[None], lengths=[SR]),
                        only(speed_p=1, speed_range=(1.25, 1.25)))
    n = int(out["wav_len"][0])
    assert abs(n - SR / 1.25) <= 2
    spec = torch.fft.rfft(out["wav"][0, :n]).abs()
    assert abs(float(spec.argmax()) * SR / n - 250) < 3


def test_each_window_records_the_speed_it_was_played_at(speech):
    from foundation.audio.augment import played_speed

    cfg = only(speed_p=0.5, formant_p=1, gain_p=1)
    batch = batch_of(speech.repeat(4, 1), seeds=list(range(8)))
    out = augment_batch(batch, cfg)
    played = out["speed"].tolist()
    assert len(played) == 8 and 1.0 in played and any(p != 1.0 for p in played)  # seeds 0-7 draw both
    for p, n in zip(played, out["wav_len"].tolist()):
        assert p == 1.0 or p == pytest.approx(played_speed(p)), p  # quantised as `speed` plays it
        assert abs(n - min(32000, 32000 / p)) <= 2


def test_formant_shift_moves_the_envelope_and_keeps_the_pitch():
    # A 125 Hz pulse train through one resonance at 1 kHz: a vowel with one formant.
    pulses = torch.zeros(2 * SR)
    pulses[:: SR // 125] = 1.0
    t = torch.arange(400) / SR
    resonance = torch.exp(-2 * math.pi * 80 * t) * torch.sin(2 * math.pi * 1000 * t)
    vowel = convolve(pulses, resonance)
    vowel = 0.5 * vowel / vowel.abs().max()
    shifted = formant_shift(vowel[None], torch.tensor([1.3]))[0]

    def envelope_peak(x):  # frequency of the strongest region, the spectrum smoothed over 250 Hz (2 harmonics)
        spec = torch.fft.rfft(x).abs().pow(2)
        smooth = torch.nn.functional.avg_pool1d(spec[None, None], 501, 1, 250)[0, 0]
        return float(smooth.argmax()) * SR / len(x)

    def pitch(x):
        spec = torch.fft.rfft(x).abs()
        freqs = torch.fft.rfftfreq(len(x), 1 / SR)
        harmonic = spec[(freqs > 1000) & (freqs < 1500)]
        strongest = float(freqs[(freqs > 1000) & (freqs < 1500)][harmonic.argmax()])
        return (strongest + 62.5) % 125 - 62.5  # offset from the 125 Hz harmonic grid

    assert 1150 < envelope_peak(shifted) < 1500 and 900 < envelope_peak(vowel) < 1100
    assert pitch(vowel) == pytest.approx(0, abs=1.0) and pitch(shifted) == pytest.approx(0, abs=1.0)


def test_reverb_decays_at_the_drawn_rt60():
    click = torch.zeros(2 * SR)
    click[100] = 1.0
    out = augment_batch(batch_of(click[None]), only(reverb_p=1, rt60_range=(0.5, 0.5), drr_range_db=(0.0, 0.0)))
    tail = out["wav"][0, 101:]
    decay = torch.flip(torch.cumsum(torch.flip(tail.pow(2), [0]), 0), [0])  # Schroeder integral
    decay_db = 10 * torch.log10(decay / decay[0])
    t5, t25 = (int((decay_db < -level).nonzero()[0]) / SR for level in (5, 25))
    assert (t25 - t5) * 3 == pytest.approx(0.5, rel=0.15)  # T20 extrapolated to 60 dB
    assert room_response(0.5, 0.0, torch.Generator().manual_seed(0))[1:].pow(2).sum() == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_noise_is_added_at_the_drawn_snr(speech, snr):
    clean = batch_of(speech, lengths=[32000, 20000])
    out = augment_batch(batch_of(speech, lengths=[32000, 20000]), only(noise_p=1, noise_snr_db=(snr, snr)))
    for i, n in enumerate(clean["wav_len"].tolist()):
        measured = power_db(clean["wav"][i, :n]) - power_db(out["wav"][i, :n] - clean["wav"][i, :n])
        assert measured == pytest.approx(snr, abs=1.0)


def test_babble_mixes_the_other_windows_in_at_the_drawn_level(speech):
    clean = batch_of(speech)
    out = augment_batch(batch_of(speech), only(babble_p=1, babble_snr_db=(15.0, 15.0)))
    residual = out["wav"][0] - clean["wav"][0]
    assert power_db(clean["wav"][0]) - power_db(residual) == pytest.approx(15.0, abs=1.0)
    # the babble is the other voice (a looped, shifted copy): its spectrum, not white noise
    other = torch.fft.rfft(clean["wav"][1]).abs()
    assert torch.corrcoef(torch.stack([torch.fft.rfft(residual).abs(), other]))[0, 1] > 0.5


def test_telephone_removes_energy_above_4_khz_and_below_300_hz(speech):
    clean = batch_of(speech)
    out = augment_batch(batch_of(speech), only(telephone_p=1))
    x, y = clean["wav"][0], out["wav"][0]
    assert band_power(y, 4200, 8000) < 1e-3 * band_power(x, 4200, 8000)
    assert band_power(y, 0, 150) < 0.1 * band_power(x, 0, 150)
    assert band_power(y, 500, 3000) > 0.3 * band_power(x, 500, 3000)


def test_gain_changes_the_level_by_the_drawn_db(speech):
    out = augment_batch(batch_of(speech), only(gain_p=1, gain_db=(-12.0, -12.0)))
    assert power_db(out["wav"][0]) - power_db(speech[0]) == pytest.approx(-12.0, abs=0.01)


@pytest.mark.parametrize("codec", ["mp3", "opus"])
def test_codec_roundtrip_is_aligned_lossy_and_band_limited(speech, codec):
    assert codec in available_codecs()  # the pinned PyAV wheel carries libmp3lame and libopus
    x = speech[0]
    y = codec_roundtrip(x, codec, 16)
    assert y.shape == x.shape and not torch.allclose(x, y, atol=1e-3)
    lags = range(-200, 201, 5)
    corr = [float(torch.dot(torch.roll(y, lag), x)) for lag in lags]
    assert abs(list(lags)[int(np.argmax(corr))]) <= 5  # the priming samples were dropped: no delay
    assert torch.corrcoef(torch.stack([x, y]))[0, 1] > 0.8


def test_transform_augments_before_features(speech):
    plain = BatchFeatures(FeatureConfig())(batch_of(speech))
    noisy = BatchFeatures(FeatureConfig(), only(noise_p=1, noise_snr_db=(0.0, 0.0)))(batch_of(speech))
    assert noisy["mel"].shape == plain["mel"].shape and (noisy["mel"] - plain["mel"]).abs().mean() > 0.5


def test_bad_ranges_are_user_errors():
    with pytest.raises(ReplicaError, match="speed_range"):
        AugmentConfig(speed_range=(1.2, 0.9))
    with pytest.raises(ReplicaError, match="codec"):
        AugmentConfig(codecs=("flac",))
