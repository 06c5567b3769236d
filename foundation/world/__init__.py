"""The synthetic talking-head world: made-up people speaking TTS sentences, with exact ground truth.

It is what the foundation models are trained and measured on, built on the head model, the camera and the
voice pool: scripts (`sentences`), talking motion (`motion`, `visemes`), looks (`appearance`, `photo`,
`texels`), surroundings (`scene`) and shading (`shading`), put together by `world`.

Public API (imported lazily):

    SynthConfig, SynthWorld, build_world        a world of made-up people
    synth_identity, synth_person, write_person  the units of work (one identity's clips; one long person video)
    short_take                                  a few seconds of one person (tests, benchmarks, quick looks)
    fingerprint, TRAIN_VOICES, HELDOUT_VOICES   re-run detection; voice splits for training and held-out sets
    synthesize_motion                           speech → per-frame face and head parameters
"""

from datasets.exports import lazy_getattr

_EXPORTS = {
    "SynthConfig": "foundation.world.world", "SynthWorld": "foundation.world.world",
    "build_world": "foundation.world.world", "synth_identity": "foundation.world.world",
    "synth_person": "foundation.world.world", "write_person": "foundation.world.world",
    "fingerprint": "foundation.world.world", "TRAIN_VOICES": "foundation.world.world",
    "HELDOUT_VOICES": "foundation.world.world", "synthesize_motion": "foundation.world.motion",
    "short_take": "foundation.world.world",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr("foundation.world", _EXPORTS)
