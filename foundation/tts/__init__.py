"""The TTS voice pool: every installed speech engine (piper, flite, espeak-ng) behind one interface.

Public API:
    list_voices()            every voice of every engine installed here (`Voice`: id, engine, language, gender)
    synthesize(text, voice)  16 kHz speech with per-phone timings (`Speech`: wav, phonemes, voice, text)
    Voice, Speech, SAMPLE_RATE
"""

from foundation.tts.pool import SAMPLE_RATE, Speech, Voice, list_voices, synthesize

__all__ = ["SAMPLE_RATE", "Speech", "Voice", "list_voices", "synthesize"]
