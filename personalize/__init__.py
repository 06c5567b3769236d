"""replica.personalize: one person's video → a replica (tracking, voice choice, fine-tuning, the bundle).

Public API (imported lazily):

    TrackingConfig, Tracking, track, fit_landmarks, refine_photometric, contact_sheet
                                        video frames + MediaPipe landmarks → head-model parameters (tracking)
"""

from datasets.exports import lazy_getattr

_EXPORTS = {
    "TrackingConfig": "personalize.tracking", "Tracking": "personalize.tracking", "track": "personalize.tracking",
    "fit_landmarks": "personalize.tracking", "refine_photometric": "personalize.tracking",
    "contact_sheet": "personalize.tracking",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr("personalize", _EXPORTS)
