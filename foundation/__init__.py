"""replica.foundation: what every replica is built from, one sub-package per component.

    head/        the morphable head model, FaceParams, the params.npz reader/writer, the one mesh renderer
    camera.py    the pinhole camera (OpenCV / gsplat convention)
    tts/         the TTS voice pool (piper, flite, espeak-ng)
    audio/       log-mel features and the audio encoder;  animation/  the animator;  conformer.py  their backbone
    world/       the synthetic talking-head world (exact ground truth for every stage)
    training/    pre-training components and `build_trainer` (the Ray driver is `cluster.pretrain`)
    evaluation/  metrics (EER, LVE/MVE, baselines) and the runner that writes eval.json
    models.py    the exported models on storage: `load_audio_encoder`, `load_animator`

Public API (imported lazily, so `import foundation` stays cheap): HeadModel, FaceParams, PersonParams,
default_head_model, load_params, save_params, Camera, list_voices, synthesize, AudioEncoder, Animator,
SynthConfig, SynthWorld, build_trainer, evaluate_run, load_audio_encoder, load_animator.
"""

from datasets.exports import lazy_getattr

_EXPORTS = {
    "HeadModel": "foundation.head", "FaceParams": "foundation.head", "PersonParams": "foundation.head",
    "default_head_model": "foundation.head", "load_params": "foundation.head", "save_params": "foundation.head",
    "Camera": "foundation.camera", "list_voices": "foundation.tts", "synthesize": "foundation.tts",
    "AudioEncoder": "foundation.audio.encoder", "Animator": "foundation.animation.model",
    "SynthConfig": "foundation.world", "SynthWorld": "foundation.world",
    "build_trainer": "foundation.training", "evaluate_run": "foundation.evaluation",
    "load_audio_encoder": "foundation.models", "load_animator": "foundation.models",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr("foundation", _EXPORTS)
