"""The TTS voice pool: every engine speaks 16 kHz audio with phone timings that fit the audio.

The engines are real (piper wheel, Debian flite and espeak-ng); a missing engine fails these
tests rather than skipping them, because the Makefile installs all three.
"""

import numpy as np
import pytest

from datasets.errors import ReplicaError
from foundation.tts import SAMPLE_RATE, Voice, list_voices, synthesize
from foundation.tts.pool import SENTENCE_PAUSE_S

SENTENCE = "The quick brown fox jumps over the lazy dog."
ONE_PER_ENGINE = ["piper:joe", "flite:slt", "flite:kal", "espeak:en-us+f3"]


def test_pool_offers_all_three_engines_and_many_distinct_voices():
    voices = list_voices()
    assert {v.engine for v in voices} == {"piper", "flite", "espeak"}
    assert len({v.id for v in voices}) == len(voices) >= 100
    assert all(v.id.startswith(v.engine + ":") and v.language.startswith("en") for v in voices)
    assert {"female", "male"} <= {v.gender for v in voices}


@pytest.mark.parametrize("voice_id", ONE_PER_ENGINE)
def test_each_engine_speaks_a_sentence_at_16k_with_plausible_duration(voice_id):
    speech = synthesize(SENTENCE, voice_id)
    words = len(SENTENCE.split())
    assert speech.sample_rate == SAMPLE_RATE
    assert speech.wav.dtype == np.float32 and speech.wav.ndim == 1
    assert 0.2 * words <= speech.duration_s <= 1.0 * words
    assert np.abs(speech.wav).max() <= 1.0
    assert np.sqrt(np.mean(speech.wav**2)) > 0.02
    assert speech.voice.id == voice_id and speech.text == SENTENCE


@pytest.mark.parametrize("voice_id", ONE_PER_ENGINE)
def test_phone_timings_are_monotonic_and_inside_the_audio(voice_id):
    speech = synthesize(SENTENCE, voice_id)
    starts = np.array([start for _, start, _ in speech.phonemes])
    ends = np.array([end for _, _, end in speech.phonemes])
    assert len(speech.phonemes) >= 25  # ~30 phones in this sentence
    assert np.all(ends > starts) and np.all(starts[1:] >= ends[:-1] - 1e-6)
    assert starts[0] >= 0 and ends[-1] <= speech.duration_s
    # Phones cover the loud part: the audio is quiet well before the first and after the last.
    hop = SAMPLE_RATE // 100
    loud = np.flatnonzero(np.abs(speech.wav) > 0.1)
    assert starts[0] <= loud[0] / SAMPLE_RATE + 0.05
    assert ends[-1] >= loud[-1] / SAMPLE_RATE - 0.05 - hop / SAMPLE_RATE


def test_a_voice_object_and_its_id_pick_the_same_voice():
    voice = next(v for v in list_voices() if v.id == "espeak:en-gb-scotland+m3")
    assert isinstance(voice, Voice)
    by_object, by_id = synthesize("Good morning.", voice), synthesize("Good morning.", voice.id)
    assert by_object.voice == by_id.voice == voice
    assert abs(by_object.duration_s - by_id.duration_s) < 0.05


def test_variants_of_one_accent_sound_different():
    female = synthesize("Good morning.", "espeak:en-us+f3").wav
    male = synthesize("Good morning.", "espeak:en-us+m3").wav
    assert female.shape != male.shape or not np.allclose(female, male)


def test_unknown_voice_is_an_error_naming_it_and_some_known_voices():
    with pytest.raises(ReplicaError, match=r"^espeak:klingon: unknown voice; known: piper:joe"):
        synthesize("Hello.", "espeak:klingon")


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_an_error(text):
    with pytest.raises(ReplicaError, match="empty"):
        synthesize(text, "espeak:en-us")


def test_long_text_is_spoken_sentence_by_sentence_with_offset_timings():
    sentences = ["It rained all night.", "The river rose by morning!", "Did anyone see the boats?"]
    whole = synthesize(" ".join(sentences), "espeak:en-us")
    parts = [synthesize(s, "espeak:en-us") for s in sentences]
    # espeak-ng's output length jitters from call to call (up to ~65 ms over these three sentences seen
    # on a fresh machine), so lengths and offsets are compared to within 0.1 s.
    jitter_s = 0.1
    assert whole.duration_s == pytest.approx(sum(p.duration_s for p in parts) + 2 * SENTENCE_PAUSE_S, abs=jitter_s)
    offset_s = parts[0].duration_s + parts[1].duration_s + 2 * SENTENCE_PAUSE_S
    last = whole.phonemes[-len(parts[2].phonemes) :]
    assert [p for p, _, _ in last] == [p for p, _, _ in parts[2].phonemes]
    np.testing.assert_allclose(
        [s for _, s, _ in last], [s + offset_s for _, s, _ in parts[2].phonemes], atol=2 * jitter_s
    )
    # The pause between sentences is silent (located from the whole's own timings, not the parts').
    third_starts_s = last[0][1] - parts[2].phonemes[0][1]
    gap = whole.wav[round((third_starts_s - SENTENCE_PAUSE_S) * SAMPLE_RATE) : round(third_starts_s * SAMPLE_RATE)]
    assert np.abs(gap[len(gap) // 4 : -len(gap) // 4]).max() < 0.05


def test_every_listed_accent_and_engine_voice_speaks():
    # Variants share their accent's voice file, so the plain voices cover every file lookup.
    plain = [v.id for v in list_voices() if "+" not in v.id]
    for voice in plain:
        assert synthesize("Yes.", voice).wav.size > 0, voice
