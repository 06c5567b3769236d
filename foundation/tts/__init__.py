"""The TTS voice pool: every installed speech engine (piper, flite, espeak-ng) behind one interface.

Public API:
    list_voices()            every voice of every engine installed here (`Voice`: id, engine, language, gender)
    synthesize(text, voice)  16 kHz speech with per-phone timings (`Speech`: wav, phonemes, voice, text)
    get_voice(voice_id)      the `Voice` of an id, or ReplicaError naming it
    split_sentences(text)    the sentences `synthesize` speaks one at a time (streaming speaks them one by one)
    languages()              every language the pool speaks (espeak-ng's ~100) → name
    language_voice(v, lang)  the id of a voice like `v` speaking `lang` (for scripts in other languages)
    Voice, Speech, SAMPLE_RATE
"""

from foundation.tts.pool import (SAMPLE_RATE, SENTENCE_PAUSE_S, Speech, Voice, get_voice, language_voice, languages,
                                 list_voices, split_sentences, synthesize)

__all__ = ["SAMPLE_RATE", "SENTENCE_PAUSE_S", "Speech", "Voice", "get_voice", "language_voice", "languages",
           "list_voices", "split_sentences", "synthesize"]
