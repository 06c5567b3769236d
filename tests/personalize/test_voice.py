"""Voice choice: a person speaking in a known TTS voice gets that voice back; the ranking, its JSON, the override,
the foundation encoder as a second opinion, and real speech (CMU ARCTIC).

Candidates here are a few clearly different voices speaking 4 reference sentences, so the suite stays fast;
the bench (`bench/voice.py`) measures the default candidate set, where accents of one espeak-ng voice compete.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from datasets.corpora import build_corpora
from datasets.errors import ReplicaError
from datasets.loader import iter_samples
from foundation.tts import synthesize
from personalize.prosody import ProsodyShift
from personalize.voice import FITTED, VoiceConfig, choose_voice, speak

CANDIDATES = ["flite:slt", "flite:rms", "flite:awb", "espeak:en-us", "espeak:en-us+f3"]
CFG = VoiceConfig(candidates=CANDIDATES, sentences=4)
SCRIPT = ("My brother bought a blue bicycle at the market. Yesterday the teacher painted the wooden boat near the "
          "river. Did our neighbour really see the purple kite in the park? We waited twenty minutes behind the "
          "station, but nobody came. Please bring an umbrella, a pair of shoes and five old books on Friday night.")




@functools.cache
def person(voice: str) -> np.ndarray:
    """About 15 s of a synthetic person speaking `SCRIPT` in `voice` (none of the reference sentences)."""
    return synthesize(SCRIPT, voice).wav


@functools.cache
def choice_for(voice: str):
    return choose_voice(person(voice), CFG)


@pytest.mark.parametrize("voice", ["flite:slt", "espeak:en-us+f3"])
def test_the_true_voice_ranks_first_among_clearly_different_voices(voice):
    choice = choice_for(voice)
    assert choice.voice == voice and not choice.overridden
    assert choice.ranking[0].voice == voice and choice.rank_of(voice) == 1


def test_ranking_holds_every_candidate_best_first_with_scores():
    choice = choice_for("flite:slt")
    scores = [c.scores["resemblyzer"] for c in choice.ranking]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    assert {c.voice for c in choice.ranking} == set(CANDIDATES)
    # a voice speaking far faster or higher than slt also competes with its prosody fitted to hers
    fitted = [c for c in choice.ranking if c.id.endswith(FITTED)]
    assert fitted and all(not c.shift.is_identity for c in fitted)
    assert choice.agreement is None and choice.rank_by == "resemblyzer"
    assert sorted(choice.rank_of(v) for v in CANDIDATES) == list(range(1, len(CANDIDATES) + 1))


def test_choice_serialises_with_its_ranking():
    record = json.loads(json.dumps(choice_for("flite:slt").to_json()))
    assert record["voice"] == "flite:slt" and record["overridden"] is False
    assert {"tempo", "semitones", "person", "ranking", "agreement"} <= set(record)
    assert [row["rank"] for row in record["ranking"]] == list(range(1, len(record["ranking"]) + 1))
    assert {"id", "voice", "tempo", "semitones", "prosody", "resemblyzer"} <= set(record["ranking"][0])
    assert record["person"]["f0_hz"] > 120  # slt is a female voice


def test_an_override_deploys_the_named_candidate():
    fitted = next(c.id for c in choice_for("flite:slt").ranking if c.id.endswith(FITTED))
    choice = choose_voice(person("flite:slt"), CFG, voice=fitted)
    assert choice.overridden and choice.candidate.id == fitted
    assert choice.ranking[0].voice == "flite:slt"  # the ranking is kept as measured
    plain = choose_voice(person("flite:slt"), CFG, voice="flite:rms")
    assert plain.candidate.id == "flite:rms" and plain.shift == ProsodyShift()


@pytest.mark.parametrize("voice", ["flite:kal16", "nobody:here"])
def test_an_override_outside_the_candidates_is_a_one_line_error(voice):
    with pytest.raises(ReplicaError, match="not a candidate") as err:
        choose_voice(person("flite:slt"), CFG, voice=voice)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"--voice {voice}:")


def test_a_fitted_override_needs_prosody_fitting_on():
    with pytest.raises(ReplicaError, match="prosody is off"):
        choose_voice(person("flite:slt"), CFG.model_copy(update={"prosody": False}), voice="flite:rms" + FITTED)


def test_patterns_matching_no_voice_are_an_error():
    with pytest.raises(ReplicaError, match="match none"):
        choose_voice(person("flite:slt"), VoiceConfig(candidates=["festival:*"]))


def test_ranking_by_the_foundation_encoder_needs_one():
    with pytest.raises(ReplicaError, match="needs a foundation audio encoder"):
        choose_voice(person("flite:slt"), CFG.model_copy(update={"rank_by": "foundation"}))


def test_the_foundation_encoder_ranks_too_and_agreement_is_recorded(tmp_path):
    from foundation.audio import AudioEncoder, FeatureConfig
    from foundation.models import audio_export, save_export

    model = str(tmp_path / "model.pt")
    save_export(audio_export(AudioEncoder().eval(), FeatureConfig(), []), model)  # untrained: only the plumbing
    cfg = CFG.model_copy(update={"candidates": CANDIDATES[:3], "sentences": 2, "rank_by": "foundation"})
    choice = choose_voice(person("flite:slt"), cfg, encoder_url=model)
    assert all(set(c.scores) == {"resemblyzer", "foundation"} for c in choice.ranking)
    scores = [c.scores["foundation"] for c in choice.ranking]
    assert scores == sorted(scores, reverse=True)
    assert choice.agreement is not None and -1 <= choice.agreement <= 1
    assert choice.to_json()["rank_by"] == "foundation"


def test_speak_applies_the_chosen_prosody():
    plain = speak("Four hours of steady work faced us.", "flite:slt")
    faster = speak("Four hours of steady work faced us.", "flite:slt", ProsodyShift(tempo=1.25))
    assert len(faster) == pytest.approx(len(plain) / 1.25, rel=0.02)


def test_real_speech_is_ranked_with_scores(tmp_path, corpora_config):
    # CMU ARCTIC's slt recording; flite's slt voice was built from the same speaker's ARCTIC recordings
    build_corpora("arctic", str(tmp_path / "arctic"), corpora_config)
    wav = next(s.wav for s in iter_samples(str(tmp_path / "arctic")) if s.meta["speaker"] == "arctic-slt")
    choice = choose_voice(wav, CFG)
    assert len(choice.ranking) >= len(CANDIDATES)
    assert all(np.isfinite(c.scores["resemblyzer"]) for c in choice.ranking)
    assert choice.person.speech_s > 1.0 and 120 < choice.person.f0_hz < 300
