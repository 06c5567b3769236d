"""Evaluating the foundation models: metrics on arrays (`metrics`), and the runner that scores a run (`runner`).

    metrics.py  eer, eer_bootstrap, verification_trials, lip_vertex_error, mean_vertex_error, resemblyzer_embeddings,
                MeanFaceBaseline, EnergyJawBaseline, PhonesKnownReference, frame_log_energy
    runner.py   evaluate_run (writes eval.json), evaluate_audio, evaluate_animator, speech_windows,
                verification_report, release_report (the default release's table)

Public API (imported lazily, so the metrics stay usable without loading models).
"""

from datasets.exports import lazy_getattr

_METRICS = ("PARAM_KEYS", "eer", "eer_bootstrap", "verification_trials", "lip_vertex_error", "mean_vertex_error",
            "resemblyzer_embeddings", "MeanFaceBaseline", "EnergyJawBaseline", "PhonesKnownReference",
            "frame_log_energy")
_EXPORTS = {
    **{name: "foundation.evaluation.metrics" for name in _METRICS},
    "evaluate_run": "foundation.evaluation.runner", "evaluate_audio": "foundation.evaluation.runner",
    "evaluate_animator": "foundation.evaluation.runner", "release_report": "foundation.evaluation.runner",
    "speech_windows": "foundation.evaluation.runner", "verification_report": "foundation.evaluation.runner",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr("foundation.evaluation", _EXPORTS)
