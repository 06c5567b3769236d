"""Prosody measurement and shifting: the estimators against signals whose answer is known, then on real TTS speech
made faster, slower, higher and lower (monotonic checks: the estimators are for comparing voices, not phonetics)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from datasets.errors import ReplicaError
from foundation.tts import synthesize
from personalize.prosody import Prosody, ProsodyShift, fit_shift, measure, pitch_track, shift_prosody, syllable_rate

RATE = 16_000
PARAGRAPH = ("The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
             "It is easy to tell the depth of a well. These days a chicken leg is a rare dish.")




def syllables(f0_hz: float, per_second: float, seconds: float = 6.0) -> np.ndarray:
    """A harmonic tone at `f0_hz` switched on and off `per_second` times a second: a reference 'speech'."""
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in range(1, 8))
    envelope = np.sin(np.pi * per_second * t) ** 2
    return (0.5 * tone * envelope / np.abs(tone).max()).astype(np.float32)


@functools.cache
def speech() -> np.ndarray:
    return synthesize(PARAGRAPH, "flite:slt").wav


@pytest.mark.parametrize("f0_hz", [85.0, 140.0, 230.0, 380.0])
def test_pitch_track_recovers_the_f0_of_a_harmonic_tone(f0_hz):
    f0, voiced = pitch_track(syllables(f0_hz, 4.0))
    assert voiced.mean() > 0.5
    assert np.median(f0[voiced]) == pytest.approx(f0_hz, rel=0.01)


def test_silence_and_noise_are_unvoiced():
    rng = np.random.default_rng(0)
    wav = np.concatenate([np.zeros(RATE, np.float32), 0.3 * rng.standard_normal(RATE).astype(np.float32)])
    f0, voiced = pitch_track(wav)
    assert voiced.mean() < 0.05 and np.isnan(f0[~voiced]).all()


@pytest.mark.parametrize("per_second", [3.0, 6.0])
def test_syllable_rate_counts_bursts_per_second_of_sound(per_second):
    rate, speech_s = syllable_rate(syllables(150.0, per_second))
    # each burst is one nucleus; speech time is the bursts' voice activity, a little under the 6 s
    assert 4.0 < speech_s <= 6.0
    assert rate * speech_s == pytest.approx(6.0 * per_second, abs=1)


def test_faster_speech_measures_a_higher_rate():
    rates = [measure(shift_prosody(speech(), ProsodyShift(tempo=tempo))).rate for tempo in (0.75, 1.0, 1.3)]
    assert rates[0] < rates[1] < rates[2]


def test_higher_speech_measures_a_higher_pitch_by_the_shift():
    levels = [measure(shift_prosody(speech(), ProsodyShift(semitones=st))).f0_hz for st in (-3.0, 0.0, 3.0)]
    assert levels[0] < levels[1] < levels[2]
    assert 12 * np.log2(levels[2] / levels[0]) == pytest.approx(6.0, abs=0.7)


def test_a_female_voice_measures_higher_than_a_male_one():
    male, female = (measure(synthesize(PARAGRAPH, voice).wav) for voice in ("espeak:en-us", "espeak:en-us+f3"))
    assert female.f0_hz > 1.5 * male.f0_hz
    assert male.f0_range_st > 0 and female.f0_range_st > 0


def test_shift_changes_duration_by_the_tempo_and_keeps_the_peak():
    wav = speech()
    shifted = shift_prosody(wav, ProsodyShift(tempo=1.25, semitones=2.0))
    assert len(shifted) / len(wav) == pytest.approx(1 / 1.25, rel=0.02)
    assert np.abs(shifted).max() == pytest.approx(np.abs(wav).max(), rel=1e-5)
    assert np.array_equal(shift_prosody(wav, ProsodyShift()), wav)


def test_fit_shift_moves_the_voice_to_the_person_within_limits():
    person = Prosody(rate=5.0, f0_hz=220.0, f0_range_st=4.0, speech_s=30.0)
    close = fit_shift(person, Prosody(rate=4.0, f0_hz=196.0, f0_range_st=4.0, speech_s=8.0), 1.5, 4.0)
    assert close.tempo == pytest.approx(1.25) and close.semitones == pytest.approx(12 * np.log2(220 / 196), abs=0.01)
    far = fit_shift(person, Prosody(rate=2.0, f0_hz=100.0, f0_range_st=4.0, speech_s=8.0), 1.5, 4.0)
    assert (far.tempo, far.semitones) == (1.5, 4.0)


def test_silence_has_no_prosody_to_measure():
    with pytest.raises(ReplicaError, match="voiced"):
        measure(np.zeros(2 * RATE, np.float32))
