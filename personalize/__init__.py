"""replica.personalize: one person's video → a replica (tracking, voice choice, fine-tuning, the bundle).

Public API (imported lazily):

    TrackingConfig, Tracking, track, fit_landmarks, refine_photometric, contact_sheet
                                        video frames + MediaPipe landmarks → head-model parameters (tracking)
    VoiceConfig, VoiceChoice, choose_voice, speak
                                        the person's voice chosen from the TTS pool, and new text said with it
    FinetuneConfig, PersonData, finetune_animator
                                        the foundation animator fine-tuned on the person (Ray Tune + ASHA)
    IdleStats, fit_idle, idle_motion    the person's blinks, brow activity and head sway, measured and regenerated
"""

from datasets.exports import lazy_getattr

_EXPORTS = {
    "TrackingConfig": "personalize.tracking", "Tracking": "personalize.tracking", "track": "personalize.tracking",
    "fit_landmarks": "personalize.tracking", "refine_photometric": "personalize.tracking",
    "contact_sheet": "personalize.tracking",
    "VoiceConfig": "personalize.voice", "VoiceChoice": "personalize.voice", "choose_voice": "personalize.voice",
    "speak": "personalize.voice",
    "FinetuneConfig": "personalize.finetune", "PersonData": "personalize.finetune",
    "finetune_animator": "personalize.finetune",
    "IdleStats": "personalize.idle", "fit_idle": "personalize.idle", "idle_motion": "personalize.idle",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr("personalize", _EXPORTS)
