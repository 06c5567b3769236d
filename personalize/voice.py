"""Voice choice: several TTS voices per avatar, the one closest to the person's real voice deployed.

The seed's "multiple voice models per avatar, deploy the best". Every candidate speaks the same reference
sentences; the candidate whose speech embeds closest to the person's wins:

1. the person's speech is cut at pauses into utterances of ≤ 8 s and embedded with resemblyzer's GE2E encoder
   and, when a foundation `model.pt` is given, with our own audio encoder; each encoder's utterance embeddings
   are averaged into one person embedding;
2. their prosody is measured (`personalize.prosody`: speaking rate, pitch level and range);
3. candidates are the pool voices matching `VoiceConfig.candidates` (`foundation.tts`), each as it speaks and,
   with `prosody` on, once more with its tempo and pitch level shifted to the person's (`@fitted`; skipped when
   the shift would be inaudible) — so the ranking itself decides whether fitting the prosody helps;
4. each candidate's score per encoder is the cosine similarity of its utterances to the person embedding,
   averaged over the sentences; candidates are ranked by `rank_by`'s score, and the two encoders' rankings are
   compared with Spearman's rank correlation (`agreement`);
5. the best candidate is chosen, unless an override names another one.

`choose_voice` returns a `VoiceChoice` (its `to_json()` goes into the bundle); `speak` says new text with the choice.
"""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from datasets.config import Section
from datasets.corpora import split_at_silence
from datasets.errors import ReplicaError
from datasets.progress import progress_bar
from foundation.tts import SAMPLE_RATE, Voice, list_voices, synthesize
from personalize.prosody import Prosody, ProsodyShift, fit_shift, measure, shift_prosody

REFERENCE_SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
    "The hogs were fed chopped corn and garbage.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
)
"""Harvard sentences (IEEE 1969, phonetically balanced) every candidate speaks, in this order."""

DEFAULT_CANDIDATES = [
    "piper:*", "flite:kal16", "flite:awb", "flite:rms", "flite:slt",
    "espeak:en-029", "espeak:en-gb", "espeak:en-gb-scotland", "espeak:en-gb-x-gbcwmd", "espeak:en-us",
    "espeak:en-us-nyc", "espeak:en-us+f?", "espeak:en-us+m?",
]
"""Every neural and flite voice, the distinct espeak-ng English accents, and the US accent's female and male variants.

Left out as near-duplicates: flite:kal (kal16 at 8 kHz), espeak:en-gb-x-rp and espeak:en-gb-x-gbclan (espeak-ng's
en-gb voice with about one vowel per sentence changed: the same timbre, which speaker embeddings cannot tell apart
from en-gb's — with them in, the bench ranks en-gb and en-gb-x-rp persons second, behind en-gb-x-gbclan)."""

FITTED = "@fitted"
"""Suffix of a candidate id whose tempo and pitch level are shifted to the person's."""
_UTTERANCE_S = 8.0  # the person's speech is embedded in pieces of at most this length
_INAUDIBLE_TEMPO, _INAUDIBLE_SEMITONES = 0.03, 0.3  # shifts smaller than both leave a voice as it is


class VoiceConfig(Section):
    """How the person's voice is chosen from the TTS pool."""

    candidates: list[str] = Field(default_factory=lambda: list(DEFAULT_CANDIDATES), min_length=1)
    """Pool voice id patterns (fnmatch, e.g. "flite:*", "espeak:en-us+f?"); candidates are the matching voices."""
    max_candidates: int = Field(32, ge=1)
    """At most this many pool voices are tried (the first matches in pool order: piper, flite, espeak)."""
    sentences: int = Field(12, ge=1, le=len(REFERENCE_SENTENCES))
    """Reference sentences each candidate speaks (the first of `REFERENCE_SENTENCES`). Fewer are faster but noisier:
    with 3, voices that differ only in accent (espeak-ng's English accents share one timbre) swap places."""
    prosody: bool = True
    """Also try each voice with its speaking rate and pitch level shifted to the person's."""
    max_tempo: float = Field(1.5, ge=1.0)
    """Largest tempo change of a fitted voice (a factor; also its inverse as the smallest)."""
    max_semitones: float = Field(4.0, ge=0.0)
    """Largest pitch shift of a fitted voice (semitones; larger shifts sound processed)."""
    override: str | None = None
    """Deploy this candidate id (e.g. "flite:slt", "flite:slt@fitted") whatever the ranking (`replica create
    --voice`); None deploys the best."""
    rank_by: Literal["resemblyzer", "foundation"] = "resemblyzer"
    """Whose similarity orders the candidates. resemblyzer (GE2E, pretrained on thousands of speakers) unless the
    foundation encoder verifies speakers better (its `eval.json` EER below resemblyzer's); "foundation" needs
    an encoder."""


@dataclass(frozen=True)
class Candidate:
    """One ranked candidate: a pool voice with a prosody shift, and its similarity to the person."""

    id: str
    """The voice id, with `FITTED` appended when its prosody is shifted."""
    voice: str
    """The pool voice id (`foundation.tts`)."""
    shift: ProsodyShift
    """Tempo and pitch change applied to the voice's speech (identity for a voice as it is)."""
    prosody: Prosody
    """The voice's own prosody, measured on its reference sentences before any shift."""
    scores: dict[str, float]
    """Mean cosine similarity to the person per encoder ("resemblyzer", and "foundation" when given)."""

    def as_dict(self) -> dict:
        return {"id": self.id, "voice": self.voice, **asdict(self.shift), "prosody": self.prosody.as_dict(),
                **{name: round(score, 4) for name, score in self.scores.items()}}


@dataclass(frozen=True)
class VoiceChoice:
    """The chosen voice and the ranking it was chosen from."""

    candidate: Candidate
    """The deployed candidate (the best by `rank_by`, or the override)."""
    ranking: list[Candidate]
    """Every candidate, best first by `rank_by`."""
    person: Prosody
    """The person's measured prosody."""
    rank_by: str
    """The encoder whose similarity ordered `ranking`."""
    agreement: float | None
    """Spearman rank correlation of the two encoders' scores over the candidates (None with one encoder)."""
    overridden: bool
    """Whether `candidate` was named by the caller instead of ranked first."""

    @property
    def voice(self) -> str:
        """The chosen pool voice id."""
        return self.candidate.voice

    @property
    def shift(self) -> ProsodyShift:
        """The chosen prosody shift (apply with `personalize.prosody.shift_prosody`, or `speak`)."""
        return self.candidate.shift

    def rank_of(self, voice: str, encoder: str | None = None) -> int:
        """1-based rank of pool voice `voice` among the candidate voices (each at its best candidate) by `encoder`'s
        score (default `rank_by`): the measure against a synthetic person's true voice."""
        encoder = encoder or self.rank_by
        order = sorted(self.ranking, key=lambda c: -c.scores[encoder])
        voices = list(dict.fromkeys(c.voice for c in order))
        if voice not in voices:
            raise ReplicaError(voice, "is not a candidate voice of this choice")
        return voices.index(voice) + 1

    def to_json(self) -> dict:
        """A JSON-able dict for the bundle (`voice.json`): the choice, the person's prosody, the ranking."""
        return {"voice": self.voice, "candidate": self.candidate.id, **asdict(self.shift),
                "overridden": self.overridden, "rank_by": self.rank_by,
                "agreement": None if self.agreement is None else round(self.agreement, 4),
                "person": self.person.as_dict(),
                "ranking": [{"rank": i + 1, **c.as_dict()} for i, c in enumerate(self.ranking)]}


def candidate_voices(cfg: VoiceConfig) -> list[Voice]:
    """The pool voices matching `cfg.candidates`, in pool order, at most `cfg.max_candidates`."""
    pool = list_voices()
    chosen = [v for v in pool if any(fnmatch.fnmatch(v.id, pattern) for pattern in cfg.candidates)]
    if not chosen:
        raise ReplicaError(f"voice.candidates {cfg.candidates}", f"match none of the {len(pool)} pool voices")
    return chosen[: cfg.max_candidates]


def _person_utterances(wav: np.ndarray) -> list[np.ndarray]:
    """The person's speech [T] cut at its quietest points into pieces of ≤ 8 s (a last scrap under 1 s dropped)."""
    pieces = [wav[start:end] for start, end in split_at_silence(wav, _UTTERANCE_S)]
    return [p for p in pieces if len(p) >= SAMPLE_RATE] or pieces


def _embedders(encoder_url: str | None) -> dict:
    """Encoder name → function from 16 kHz wavs to unit embeddings [N, E]."""
    from foundation.evaluation import resemblyzer_embeddings

    embedders = {"resemblyzer": resemblyzer_embeddings}
    if encoder_url is not None:
        import torch

        from foundation.evaluation.runner import encoder_embeddings
        from foundation.models import load_audio_encoder

        model = load_audio_encoder(encoder_url)

        def foundation_embeddings(wavs: list[np.ndarray]) -> np.ndarray:
            with torch.no_grad():
                return encoder_embeddings(model.encoder, model.features, wavs)

        embedders["foundation"] = foundation_embeddings
    return embedders


@functools.lru_cache(maxsize=64)
def _reference_speech(voice_id: str, sentences: tuple[str, ...]) -> tuple[tuple[np.ndarray, ...], Prosody]:
    """The sentences spoken by a pool voice (float32 [T_i] at 16 kHz each) and the voice's prosody on them.

    Cached: they are the same for every person, so a process choosing for many people (the bench, a fleet
    worker) synthesises each voice once.
    """
    spoken = tuple(synthesize(sentence, voice_id).wav for sentence in sentences)
    return spoken, measure(np.concatenate(spoken))


def _mean_direction(embeddings: np.ndarray) -> np.ndarray:
    """[N, E] unit embeddings → [E] the unit vector of their mean."""
    mean = embeddings.mean(0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def _spearman(a: list[float], b: list[float]) -> float | None:
    from scipy.stats import spearmanr

    value = spearmanr(a, b).statistic if len(a) > 2 else float("nan")
    return None if not np.isfinite(value) else float(value)


def choose_voice(person_wav: np.ndarray, cfg: VoiceConfig | None = None, encoder_url: str | None = None,
                 voice: str | None = None, progress: bool = False) -> VoiceChoice:
    """Rank the candidate voices by similarity to the person's speech and choose one.

    person_wav: float32 [T] mono speech at 16 kHz (the person's whole recording; pauses are fine).
    encoder_url: a foundation audio `model.pt` to score with as well as resemblyzer (None: resemblyzer only).
    voice: an override, a candidate id (e.g. "flite:slt" or "flite:slt@fitted") to deploy whatever the ranking.
    Raises ReplicaError for an override that names no candidate (before any synthesis), for `rank_by`
    "foundation" without an encoder, and for speech without voiced frames.
    """
    cfg = cfg or VoiceConfig()
    if cfg.rank_by == "foundation" and encoder_url is None:
        raise ReplicaError("voice.rank_by=foundation", "needs a foundation audio encoder (model.pt)")
    voices = candidate_voices(cfg)
    if voice is not None:
        _check_override(voice, voices, cfg.prosody)
    person_wav = np.asarray(person_wav, np.float32)
    person = measure(person_wav)
    embedders = _embedders(encoder_url)
    utterances = _person_utterances(person_wav)
    person_embedding = {name: _mean_direction(embed(utterances)) for name, embed in embedders.items()}
    sentences = REFERENCE_SENTENCES[: cfg.sentences]
    candidates = []
    for pool_voice in progress_bar(voices, desc="voices", disable=not progress):
        spoken, own = _reference_speech(pool_voice.id, sentences)
        versions = [(pool_voice.id, ProsodyShift())]
        if cfg.prosody:
            shift = fit_shift(person, own, cfg.max_tempo, cfg.max_semitones)
            if abs(shift.tempo - 1) >= _INAUDIBLE_TEMPO or abs(shift.semitones) >= _INAUDIBLE_SEMITONES:
                versions.append((pool_voice.id + FITTED, shift))
        for candidate_id, shift in versions:
            wavs = [shift_prosody(w, shift) for w in spoken]
            scores = {name: float((embed(wavs) @ person_embedding[name]).mean()) for name, embed in embedders.items()}
            candidates.append(Candidate(candidate_id, pool_voice.id, shift, own, scores))
    ranking = sorted(candidates, key=lambda c: -c.scores[cfg.rank_by])
    agreement = None
    if len(embedders) == 2:
        agreement = _spearman(*([c.scores[name] for c in candidates] for name in ("resemblyzer", "foundation")))
    chosen = ranking[0] if voice is None else _named(voice, ranking)
    return VoiceChoice(chosen, ranking, person, cfg.rank_by, agreement, overridden=voice is not None)


def _check_override(voice: str, voices: list[Voice], prosody: bool) -> None:
    """Fail early, in one line, for an override that cannot be among the candidates."""
    base = voice.removesuffix(FITTED)
    ids = [v.id for v in voices]
    if base in ids and (base == voice or prosody):
        return
    known = ", ".join(ids[:6]) + (", ..." if len(ids) > 6 else "")
    reason = "is a fitted candidate but voice.prosody is off" if base in ids else "is not a candidate voice"
    raise ReplicaError(f"--voice {voice}", f"{reason} (candidates: {known}; {len(ids)} in all, "
                       f"each also as <id>{FITTED} when prosody fitting is on)")


def _named(voice: str, ranking: list[Candidate]) -> Candidate:
    """The override's candidate; a fitted id whose shift was inaudible falls back to the voice as it is."""
    by_id = {c.id: c for c in ranking}
    return by_id.get(voice) or by_id[voice.removesuffix(FITTED)]


def speak(text: str, voice: str, shift: ProsodyShift = ProsodyShift()) -> np.ndarray:
    """`text` spoken by pool voice `voice` with a prosody shift: float32 [T] at 16 kHz.

    With a choice: `speak(text, choice.voice, choice.shift)`; from a bundle's `voice.json` record:
    `speak(text, record["voice"], ProsodyShift(record["tempo"], record["semitones"]))`.
    """
    return shift_prosody(synthesize(text, voice).wav, shift)
