"""Synthetic talking motion reads as speech: a closed mouth in silence, open vowels, closed
bilabials, smooth curves, natural blinks, and the same performance for the same seed."""

import math

import numpy as np
import pytest

from datasets.schema import EXPRESSION_NAMES
from foundation.world.motion import FPS, JAW_OPEN_RAD, synthesize_motion
from foundation.world.sentences import WORDS_PER_SECOND, make_script, make_sentence
from foundation.world.visemes import VISEMES, frame_classes, phone_visemes

RATE = 16000
COLUMN = {name: i for i, name in enumerate(EXPRESSION_NAMES)}
VOWELS = set("aɑæɛəiɪoɔuʊ") | {"aa", "ae", "ah", "eh", "iy", "uw", "ow"}


def timing_track(phones, lead_s=0.5, tail_s=0.5, phone_s=0.1, seed=0):
    """Phone timings and a matching wav: noise bursts, loud for vowels, silence around."""
    rng = np.random.default_rng(seed)
    phonemes, t = [], lead_s
    for phone in phones:
        phonemes.append((phone, t, t + phone_s))
        t += phone_s
    wav = np.zeros(round((t + tail_s) * RATE), np.float32)
    for phone, start, end in phonemes:
        span = slice(round(start * RATE), round(end * RATE))
        wav[span] = rng.normal(0, 0.3 if phone in VOWELS else 0.08, span.stop - span.start)
    return wav, phonemes


def frame_at(seconds):
    return round(seconds * FPS)


def test_every_array_has_one_row_per_frame_of_audio():
    wav = np.zeros(round(2.01 * RATE), np.float32)
    motion = synthesize_motion(wav, [], np.random.default_rng(0))
    frames = math.ceil(2.01 * FPS)
    assert motion.fps == FPS and len(EXPRESSION_NAMES) == 52
    assert motion.expr.shape == (frames, 52)
    for name in ("jaw", "neck", "rot", "trans"):
        assert getattr(motion, name).shape == (frames, 3)
    assert all(getattr(motion, n).dtype == np.float32 for n in ("expr", "jaw", "neck", "rot", "trans"))
    assert motion.expr.min() >= 0 and motion.expr.max() <= 1


def test_mouth_rests_closed_in_silence_and_opens_on_vowels():
    wav, phonemes = timing_track(["h", "ɑ", "l", "oʊ", "w", "ɜ", "l", "d"], lead_s=0.6, tail_s=0.6)
    motion = synthesize_motion(wav, phonemes, np.random.default_rng(1))
    jaw, jaw_open = motion.jaw[:, 0], motion.expr[:, COLUMN["jawOpen"]]
    lead, tail = slice(0, frame_at(0.35)), slice(frame_at(phonemes[-1][2] + 0.3), None)
    for silent in (lead, tail):
        assert np.abs(jaw[silent]).max() < 0.01 and jaw_open[silent].max() < 0.03
    vowel = frame_at((phonemes[1][1] + phonemes[1][2]) / 2)
    assert jaw[vowel] > 0.12
    np.testing.assert_allclose(jaw_open, np.clip(jaw / JAW_OPEN_RAD, 0, 1), atol=1e-6)


@pytest.mark.parametrize("phones", [["ɑ", "b", "ɑ"], ["aa", "p", "aa"], ["a", "m", "a"]])
def test_bilabials_close_the_lips_and_jaw(phones):
    wav, phonemes = timing_track(phones, phone_s=0.12)
    motion = synthesize_motion(wav, phonemes, np.random.default_rng(2))
    bilabial, vowel = (frame_at((start + end) / 2) for _, start, end in (phonemes[1], phonemes[0]))
    assert motion.expr[bilabial, COLUMN["mouthClose"]] > 0.35
    assert motion.expr[bilabial, COLUMN["mouthPressLeft"]] > 0.25
    assert motion.jaw[bilabial, 0] < 0.06 < motion.jaw[vowel, 0]


def test_ipa_and_arpabet_spellings_map_to_the_same_visemes():
    pairs = [("p", "p"), ("f", "f"), ("dh", "ð"), ("sh", "ʃ"), ("w", "w"), ("aa", "ɑ"), ("iy", "i"), ("uw", "uː")]
    for arpabet, ipa in pairs:
        assert phone_visemes(arpabet) == phone_visemes(ipa)
    assert [VISEMES[v] for v in phone_visemes("ay1")] == ["open", "spread"]
    assert [VISEMES[v] for v in phone_visemes("aɪ")] == ["open", "spread"]
    assert phone_visemes("☃") == (VISEMES.index("velar"),)


def test_each_frame_is_labelled_with_the_viseme_spoken_at_its_time():
    phones = [("p", 0.20, 0.30), ("aɪ", 0.30, 0.60), ("m", 0.60, 0.62)]
    times = np.array([0.0, 0.19, 0.21, 0.29, 0.31, 0.44, 0.46, 0.59, 0.61, 0.63, 0.9])
    names = [VISEMES[c] for c in frame_classes(phones, 1.0, times)]
    assert names == ["silence", "silence", "bilabial", "bilabial", "open", "open", "spread", "spread",
                     "bilabial", "silence", "silence"]  # the diphthong glides from its first class to its second


def test_motion_is_smooth_from_frame_to_frame():
    rng = np.random.default_rng(3)
    phones = rng.choice(["p", "ɑ", "s", "i", "f", "u", "t", "ə", "m", "oʊ", "k", "ɛ"], 120)
    wav, phonemes = timing_track(list(phones), phone_s=0.08)
    motion = synthesize_motion(wav, phonemes, rng)
    not_eyes = [i for i, name in enumerate(EXPRESSION_NAMES) if not name.startswith("eyeBlink")]
    assert np.abs(np.diff(motion.jaw[:, 0])).max() < 0.15  # rad per 40 ms frame
    assert np.abs(np.diff(motion.expr[:, not_eyes], axis=0)).max() < 0.5
    assert np.abs(np.diff(motion.neck, axis=0)).max() < np.deg2rad(1.5)  # 37 deg/s: a brisk nod
    assert np.abs(np.diff(motion.trans, axis=0)).max() < 0.002


def test_blinks_come_15_to_20_times_a_minute_and_last_a_few_frames():
    wav, phonemes = timing_track(["ə", "t"] * 30, lead_s=0.5, tail_s=114.0)
    blink = synthesize_motion(wav, phonemes, np.random.default_rng(4)).expr[:, COLUMN["eyeBlinkLeft"]]
    closed = blink > 0.5
    onsets = np.flatnonzero(closed[1:] & ~closed[:-1])
    minutes = len(blink) / FPS / 60
    assert 10 * minutes <= len(onsets) <= 26 * minutes
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, closed.astype(int), 0])))[::2]
    assert runs.max() <= 6  # frames at 25 fps: a blink is over within 250 ms


def test_same_seed_same_motion_other_seed_other_motion():
    wav, phonemes = timing_track(["h", "ɛ", "l", "oʊ"])
    first, again = (synthesize_motion(wav, phonemes, np.random.default_rng(7)) for _ in range(2))
    other = synthesize_motion(wav, phonemes, np.random.default_rng(8))
    for name in ("expr", "jaw", "neck", "rot", "trans"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.allclose(first.neck, other.neck)


def test_without_timings_the_jaw_follows_the_loudness():
    t = np.arange(6 * RATE) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) * (t > 0.5) * (t < 5.5)
    wav = (np.random.default_rng(5).normal(0, 0.3, len(t)) * envelope).astype(np.float32)
    motion = synthesize_motion(wav, None, np.random.default_rng(5))
    loudness = envelope[(np.arange(len(motion.jaw)) * RATE // FPS)]
    assert np.corrcoef(motion.jaw[:, 0], loudness)[0, 1] > 0.7
    assert motion.jaw[: frame_at(0.4), 0].max() < 0.01
    lips = motion.expr[:, [COLUMN["mouthPucker"], COLUMN["mouthStretchLeft"], COLUMN["mouthClose"]]]
    assert lips.max() > 0.2  # syllables get lip shapes, not just a flapping jaw


def test_head_moves_a_few_degrees_and_the_body_sways_millimetres():
    wav, phonemes = timing_track(["ə", "t"] * 40, tail_s=4.0)
    motion = synthesize_motion(wav, phonemes, np.random.default_rng(6))
    assert 0.2 < np.rad2deg(motion.neck[:, 1]).std() < 6
    assert np.abs(motion.rot).max() < np.deg2rad(5)
    assert 0.0003 < np.abs(motion.trans).max() < 0.03


def test_sentences_are_varied_and_deterministic():
    sentences = [make_sentence(np.random.default_rng(seed)) for seed in range(60)]
    assert len(set(sentences)) >= 50
    assert sentences[3] == make_sentence(np.random.default_rng(3))
    assert all(s[0].isupper() and s[-1] in ".?!" for s in sentences)
    assert any(s.endswith("?") for s in sentences) and any(s.endswith("!") for s in sentences)


def test_a_script_holds_about_the_requested_seconds_of_speech():
    script = make_script(np.random.default_rng(0), seconds=30)
    words = len(script.split())
    assert 30 * WORDS_PER_SECOND <= words <= 30 * WORDS_PER_SECOND + 20
    assert make_script(np.random.default_rng(0), seconds=30) == script
