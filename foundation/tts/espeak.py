"""A thin ctypes binding to libespeak-ng (Debian `espeak-ng`) for the TTS voice pool.

The `espeak-ng` command line prints phonemes but no timings (its `--pho` output needs MBROLA),
while the library reports a phoneme event at the sample each phoneme starts, in the same pass
that produces the audio. The library keeps one global synthesiser, so every call holds a lock.
`foundation.tts` is the public face; this module only speaks to the library.
"""

from __future__ import annotations

import ctypes
import functools
import threading

import numpy as np

from datasets.errors import ReplicaError

_LIBRARY = "libespeak-ng.so.1"
_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS_IPA_DONT_EXIT = 0x0001 | 0x0002 | 0x8000
_CHARS_UTF8 = 1
_EVENT_LIST_END, _EVENT_END, _EVENT_MSG_END, _EVENT_PHONEME = 0, 5, 6, 7
_GENDERS = {1: "male", 2: "female"}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """`espeak_EVENT` from speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds from the start of the message
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _VoiceInfo(ctypes.Structure):
    """`espeak_VOICE` from speak_lib.h."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, language string, NUL)*, NUL
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_lock = threading.Lock()
_samples: list[np.ndarray] = []
_events: list[tuple[int, int, str]] = []  # (type, audio_position_ms, phoneme)


def _collect(wav, num_samples: int, events) -> int:
    if num_samples > 0:
        _samples.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
    index = 0
    while events[index].type != _EVENT_LIST_END:
        event = events[index]
        phoneme = bytes(event.id.string).split(b"\0")[0].decode("utf-8", "replace")
        _events.append((event.type, event.audio_position, phoneme if event.type == _EVENT_PHONEME else ""))
        index += 1
    return 0


# The library calls back into this object: it must live as long as the process.
_callback = _Callback(_collect)


@functools.cache
def _library() -> tuple[ctypes.CDLL, int] | None:
    try:
        library = ctypes.CDLL(_LIBRARY)
    except OSError:
        return None
    rate = library.espeak_Initialize(_OUTPUT_SYNCHRONOUS, 200, None, _INIT_PHONEME_EVENTS_IPA_DONT_EXIT)
    if rate <= 0:
        return None
    library.espeak_SetSynthCallback(_callback)
    library.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_VoiceInfo))
    library.espeak_ListVoices.argtypes = [ctypes.POINTER(_VoiceInfo)]
    library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    library.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]
    return library, rate


def available() -> bool:
    """Whether libespeak-ng loads and initialises on this machine."""
    return _library() is not None


def sample_rate() -> int:
    """The library's output rate (Hz; 22050 for espeak-ng 1.5x)."""
    return _library()[1]


def _list(language: str | None) -> list[tuple[str, str, str, str | None]]:
    """(name, first language, identifier, gender) of each voice matching `language` (None: all)."""
    library, _ = _library()
    spec = None
    if language is not None:
        spec = _VoiceInfo(languages=ctypes.cast(ctypes.c_char_p(language.encode()), ctypes.c_void_p))
    with _lock:
        entries = library.espeak_ListVoices(spec)
        voices = []
        index = 0
        while entries[index]:
            info = entries[index].contents
            first_language = ctypes.string_at(info.languages + 1).decode()
            voices.append((info.name.decode(), first_language, info.identifier.decode(), _GENDERS.get(info.gender)))
            index += 1
    return voices


def english_accents() -> dict[str, str]:
    """English accent voices of the formant synthesiser (not MBROLA): language tag → voice name."""
    return {
        language: name.replace("_", " ")
        for name, language, identifier, _ in _list(None)
        if identifier.startswith("gmw/en")
    }


def languages() -> dict[str, str]:
    """Every language of the formant synthesiser (not MBROLA): language tag → its name (`de` → `German`)."""
    return {language: name.replace("_", " ") for name, language, _, _ in _list(None)}


@functools.lru_cache(maxsize=1)
def _identifiers() -> dict[str, str]:
    """Language tag → voice file identifier of the formant voices (`en-gb` → `gmw/en`, `de` → `gmw/de`)."""
    table: dict[str, str] = {}
    for _, language, identifier, _ in _list(None):
        table.setdefault(language, identifier)  # a tag with two voices (yue) keeps espeak's first
    return table


def _voice_file(voice_name: str) -> str:
    # Voices are named by language tag (`en-gb+f3`), but espeak looks voices up by file: a tag
    # such as `en-gb` is no file name (its file is `gmw/en`), so map the tag before the variant.
    language, plus, variant = voice_name.partition("+")
    return _identifiers().get(language, language) + plus + variant


def variants() -> dict[str, str | None]:
    """Voice variants (applied as `<voice>+<variant>`): variant file name → gender."""
    return {identifier.split("/", 1)[1]: gender for _, _, identifier, gender in _list("variant")}


def speak(text: str, voice_name: str) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Synthesise `text` with espeak voice `voice_name` (e.g. `"en-us+f3"`).

    Returns the audio, float32 [T] in [-1, 1] at `sample_rate()`, and the IPA phones as
    (phone, start_s, end_s). A phone ends where the next phoneme event (a phone or a pause,
    which espeak reports with an empty name) or the end of the clause begins.
    """
    library, rate = _library()
    encoded = text.encode("utf-8")
    voice_file = _voice_file(voice_name).encode()  # before taking the lock: it lists voices itself
    with _lock:
        _samples.clear()
        _events.clear()
        if library.espeak_SetVoiceByName(voice_file) != 0:
            raise ReplicaError(voice_name, "espeak-ng has no such voice")
        library.espeak_Synth(encoded, len(encoded) + 1, 0, 1, 0, _CHARS_UTF8, None, None)
        library.espeak_Synchronize()
        wav = np.concatenate(_samples) if _samples else np.zeros(0, np.int16)
        events = list(_events)
    boundaries = [(ms / 1000.0, phone) for kind, ms, phone in events if kind in (_EVENT_PHONEME, _EVENT_END, _EVENT_MSG_END)]
    phones = [
        (phone, start, boundaries[i + 1][0])
        for i, (start, phone) in enumerate(boundaries[:-1])
        if phone and boundaries[i + 1][0] > start
    ]
    return wav.astype(np.float32) / 32768.0, phones
