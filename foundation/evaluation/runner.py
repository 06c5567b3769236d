"""Evaluate a pre-training run's `model.pt` against its references on held-out data; writes `eval.json`.

- audio: speaker-verification EER of our encoder's embeddings on held-out speakers, next to the
  EER of resemblyzer's pretrained GE2E encoder on exactly the same trials (same utterance pairs);
- animator: lip vertex error (LVE) and mean vertex error on held-out identities and voices, next
  to the mean-face and audio-energy→jaw baselines fitted on the training data. As in VOCA and
  FaceFormer, these measure lip sync: every prediction is posed with the true head pose (neck, rot,
  trans), so the idle head motion that audio cannot determine does not swamp the mouth. The
  animator's error with its own predicted pose is reported too (`*_own_pose`).

Models come from `foundation.models` (the one loader), metrics from `foundation.evaluation.metrics`.
"""

from __future__ import annotations

import numpy as np
import torch

from datasets import storage
from datasets.errors import ReplicaError
from datasets.loader import iter_samples
from foundation.audio.encoder import AudioEncoder
from foundation.audio.features import FeatureConfig, log_mel
from foundation.evaluation.metrics import (PARAM_KEYS, EnergyJawBaseline, MeanFaceBaseline, eer, lip_vertex_error,
                                           mean_vertex_error, resemblyzer_embeddings, verification_trials)
from foundation.head import FaceParams, default_head_model
from foundation.models import load_animator, load_audio_encoder, speech_to_face
from foundation.training.config import Kind

MAX_CLIPS = 400
"""Clips read per dataset for evaluation (bounds time on big held-out sets)."""


def _mel(wav: np.ndarray, features: FeatureConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel [1, N, n_mels] of a whole 16 kHz utterance, and its length [1]."""
    mel = log_mel(torch.from_numpy(wav)[None], features)
    return mel, torch.tensor([mel.shape[1]])


@torch.no_grad()
def encoder_embeddings(encoder: AudioEncoder, features: FeatureConfig, wavs: list[np.ndarray]) -> np.ndarray:
    """Speaker embeddings [N, E] of whole utterances (16 kHz float waveforms)."""
    return np.stack([encoder(*_mel(w, features)).embedding[0].numpy() for w in wavs])


def evaluate_audio(model_url: str, heldout_url: str, trials: int = 500, seed: int = 0) -> dict:
    """EER of our encoder and of resemblyzer on the same verification trials over held-out speakers."""
    model = load_audio_encoder(model_url)
    samples = list(iter_samples(heldout_url, MAX_CLIPS))
    speakers = [str(s.meta["speaker"]) for s in samples]
    seen = sorted(set(speakers) & set(model.speakers))
    wavs = [s.wav for s in samples]
    ours = encoder_embeddings(model.encoder, model.features, wavs)
    reference = resemblyzer_embeddings(wavs)
    scores_ours, labels = verification_trials(ours, speakers, np.random.default_rng(seed), trials)
    scores_ref, labels_ref = verification_trials(reference, speakers, np.random.default_rng(seed), trials)
    assert np.array_equal(labels, labels_ref)  # same rng, same names: the very same pairs
    return {"kind": "audio", "heldout": heldout_url, "utterances": len(samples),
            "speakers": len(set(speakers)), "speakers_seen_in_training": len(seen), "trials": 2 * trials,
            "eer": eer(scores_ours, labels), "eer_resemblyzer": eer(scores_ref, labels)}


def _params(mm: dict[str, np.ndarray], frames: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(mm[k][:frames], dtype=np.float32) for k in PARAM_KEYS}


@torch.no_grad()
def evaluate_animator(model_url: str, heldout_url: str, train_url: str) -> dict:
    """LVE and mean vertex error (mm) of the animator and both baselines on held-out clips."""
    model = load_animator(model_url)
    head = default_head_model()
    train = [s for s in iter_samples(train_url, MAX_CLIPS) if s.mm is not None]
    heldout = [s for s in iter_samples(heldout_url, MAX_CLIPS) if s.mm is not None]
    if not train or not heldout:
        raise ReplicaError(heldout_url if not heldout else train_url, "no samples with head-model parameters (mm.npz)")
    train_params = [_params(s.mm, s.num_frames) for s in train]
    baselines = {"mean_face": MeanFaceBaseline().fit(train_params),
                 "energy_jaw": EnergyJawBaseline().fit([s.wav for s in train], train_params)}

    errors: dict[str, dict[str, list[float]]] = {n: {"lve": [], "mve": []}
                                                 for n in ("animator", *baselines, "animator_own_pose")}
    for sample in heldout:
        out = speech_to_face(model.encoder, model.animator, *_mel(sample.wav, model.features))
        pred = {k: v[0].numpy() for k, v in out.items()}
        # the audio's last partial frame has no latent: score the frames every model covers
        frames = min(sample.num_frames, len(sample.mm["expr"]), len(pred["expr"]))
        truth = _params(sample.mm, frames)
        shape = torch.as_tensor(sample.mm["shape"], dtype=torch.float32).expand(frames, -1)

        def verts(params: dict[str, np.ndarray]) -> torch.Tensor:
            tensors = {k: torch.as_tensor(params[k][:frames], dtype=torch.float32) for k in PARAM_KEYS}
            return head(FaceParams(shape=shape, **tensors))

        true_verts = verts(truth)
        predictions = {"animator": pred, **{n: b.predict(sample.wav, frames) for n, b in baselines.items()}}
        true_pose = {k: truth[k] for k in ("neck", "rot", "trans")}
        predictions = {name: {**params, **true_pose} for name, params in predictions.items()}
        predictions["animator_own_pose"] = pred
        for name, params in predictions.items():
            pred_verts = verts(params)
            errors[name]["lve"].append(lip_vertex_error(pred_verts, true_verts, head.mouth_vertex_ids))
            errors[name]["mve"].append(mean_vertex_error(pred_verts, true_verts))
    report = {"kind": "animator", "heldout": heldout_url, "clips": len(heldout), "train_clips": len(train)}
    for name, errs in errors.items():
        report[f"lve_mm/{name}"] = 1000 * float(np.mean(errs["lve"]))
        report[f"mve_mm/{name}"] = 1000 * float(np.mean(errs["mve"]))
    return report


def evaluate_run(kind: Kind, run_url: str, heldout_url: str, train_url: str | None = None) -> dict:
    """Evaluate `run_url/model.pt` on `heldout_url` (animator: baselines fitted on `train_url`).

    Writes the report as `run_url/eval.json` and returns it.
    """
    model_url = storage.join(run_url, "model.pt")
    if kind == "audio":
        report = evaluate_audio(model_url, heldout_url)
    else:
        if train_url is None:
            raise ReplicaError("evaluate animator", "needs the training data URL to fit the baselines")
        report = evaluate_animator(model_url, heldout_url, train_url)
    storage.write_json(storage.join(run_url, "eval.json"), report)
    return report
