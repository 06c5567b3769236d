"""replica.foundation: the models every replica is built from, and their pre-training.

Public API (imported lazily):

    HeadModel, FaceParams, default_head_model, EXPRESSION_NAMES    the morphable head model (foundation.head)
    Camera                                                          pinhole camera, OpenCV/gsplat convention
    list_voices, synthesize                                         the TTS voice pool (foundation.tts)
    AudioEncoder, Animator                                          the two pre-trained models
    pretrain                                                        Ray Train + DeepSpeed pre-training (foundation.train)
    evaluate_run                                                    EER / LVE against references (foundation.evaluate)
"""

from datasets.exports import lazy_getattr

_EXPORTS = {
    "HeadModel": "foundation.head", "FaceParams": "foundation.head",
    "default_head_model": "foundation.head", "EXPRESSION_NAMES": "foundation.head",
    "Camera": "foundation.camera", "list_voices": "foundation.tts", "synthesize": "foundation.tts",
    "AudioEncoder": "foundation.audio.encoder", "Animator": "foundation.animation.model",
    "pretrain": "foundation.train", "evaluate_run": "foundation.evaluate",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr("foundation", _EXPORTS)
