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

from typing import Callable

import numpy as np
import torch

from datasets import storage
from datasets.errors import ReplicaError
from datasets.loader import iter_samples
from datasets.schema import SAMPLE_RATE
from foundation.audio.encoder import AudioEncoder
from foundation.audio.features import FeatureConfig, log_mel
from foundation.evaluation.metrics import (PARAM_KEYS, EnergyJawBaseline, MeanFaceBaseline, PhonesKnownReference,
                                           eer, eer_bootstrap, lip_vertex_error, mean_vertex_error,
                                           resemblyzer_embeddings, verification_trials)
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


def speech_windows(samples: list, window_s: float, max_per_speaker: int = 24) -> tuple[list[np.ndarray], list[str]]:
    """Cut utterances into non-overlapping `window_s` windows (the remainder dropped; windows under a tenth of
    their utterance's loudest window's RMS dropped as silence), at most `max_per_speaker` per speaker, spread
    evenly over that speaker's windows. Returns (wavs, speaker names)."""
    n = int(round(window_s * SAMPLE_RATE))
    per: dict[str, list[np.ndarray]] = {}
    for sample in samples:
        wav = np.asarray(sample.wav, np.float32)
        pieces = [wav[i:i + n] for i in range(0, len(wav) - n + 1, n)]
        if not pieces:
            continue
        rms = np.array([np.sqrt(np.mean(p ** 2)) for p in pieces])
        per.setdefault(str(sample.meta["speaker"]), []).extend(p for p, r in zip(pieces, rms) if r >= 0.1 * rms.max())
    wavs, names = [], []
    for speaker, pieces in sorted(per.items()):
        keep = np.unique(np.linspace(0, len(pieces) - 1, min(max_per_speaker, len(pieces))).round().astype(int))
        wavs += [pieces[i] for i in keep]
        names += [speaker] * len(keep)
    return wavs, names


def verification_report(model, wavs: list[np.ndarray], speakers: list[str], trials: int = 500, seed: int = 0,
                        degrade: Callable[[np.ndarray, int], np.ndarray] | None = None) -> dict:
    """EER of `model` (an `AudioEncoderModel`) and of resemblyzer on the very same trials over `wavs`.

    degrade: (wav, index) → wav applied to every utterance first (e.g. noise or a telephone channel, seeded by the
    index so both encoders hear the same degraded audio)."""
    if degrade is not None:
        wavs = [degrade(w, i) for i, w in enumerate(wavs)]
    ours = encoder_embeddings(model.encoder, model.features, wavs)
    reference = resemblyzer_embeddings(wavs)
    scores_ours, labels = verification_trials(ours, speakers, np.random.default_rng(seed), trials)
    scores_ref, labels_ref = verification_trials(reference, speakers, np.random.default_rng(seed), trials)
    assert np.array_equal(labels, labels_ref)  # same rng, same names: the very same pairs
    spread = eer_bootstrap(scores_ours, scores_ref, labels, np.random.default_rng(seed))
    return {"utterances": len(wavs), "speakers": len(set(speakers)), "trials": 2 * trials,
            "eer": eer(scores_ours, labels), "eer_resemblyzer": eer(scores_ref, labels),
            "eer_ci95": spread["a"], "eer_resemblyzer_ci95": spread["b"],
            "eer_minus_resemblyzer_ci95": spread["a_minus_b"], "p_eer_below_resemblyzer": spread["p_a_below_b"]}


def evaluate_audio(model_url: str | None, heldout_url: str, trials: int = 500, seed: int = 0,
                   window_s: float | None = None, degrade: Callable[[np.ndarray, int], np.ndarray] | None = None) -> dict:
    """EER of our encoder (None: the default release's) and of resemblyzer on the same verification trials over
    held-out speakers.

    window_s: score fixed-length windows cut from the utterances (`speech_windows`) instead of whole utterances
    (a few long real recordings give many trials); degrade: see `verification_report`."""
    model = load_audio_encoder(model_url)
    samples = list(iter_samples(heldout_url, MAX_CLIPS))
    if window_s:
        wavs, speakers = speech_windows(samples, window_s)
    else:
        wavs, speakers = [s.wav for s in samples], [str(s.meta["speaker"]) for s in samples]
    seen = sorted(set(speakers) & set(model.speakers))
    return {"kind": "audio", "heldout": heldout_url, "window_s": window_s, "speakers_seen_in_training": len(seen),
            **verification_report(model, wavs, speakers, trials, seed, degrade)}


def _params(mm: dict[str, np.ndarray], frames: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(mm[k][:frames], dtype=np.float32) for k in PARAM_KEYS}


@torch.no_grad()
def evaluate_animator(model_url: str | None, heldout_url: str, train_url: str) -> dict:
    """LVE and mean vertex error (mm) of the animator (None: the default release's) and both baselines on held-out
    clips; also of `PhonesKnownReference` (the floor, not a competitor) when every held-out clip has its phones.
    `by_speaker` gives each speaker's clips and LVE (mm) of the animator and the energy→jaw baseline: where it fails."""
    model = load_animator(model_url)
    head = default_head_model()
    train = [s for s in iter_samples(train_url, MAX_CLIPS) if s.mm is not None]
    heldout = [s for s in iter_samples(heldout_url, MAX_CLIPS) if s.mm is not None]
    if not train or not heldout:
        raise ReplicaError(heldout_url if not heldout else train_url, "no samples with head-model parameters (mm.npz)")
    train_params = [_params(s.mm, s.num_frames) for s in train]
    baselines = {"mean_face": MeanFaceBaseline().fit(train_params),
                 "energy_jaw": EnergyJawBaseline().fit([s.wav for s in train], train_params)}

    phones_known = PhonesKnownReference().fit(train_params) if all(s.meta.get("phones") for s in heldout) else None
    names = ("animator", *baselines, "animator_own_pose") + (("phones_known",) if phones_known is not None else ())
    errors: dict[str, dict[str, list[float]]] = {n: {"lve": [], "mve": []} for n in names}
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
        if phones_known is not None:
            predictions["phones_known"] = phones_known.predict(sample.wav, sample.meta["phones"], frames)
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
    speakers = [str(s.meta.get("speaker", "?")) for s in heldout]
    report["by_speaker"] = {who: {"clips": speakers.count(who), **{
        f"lve_mm/{name}": round(1000 * float(np.mean([e for e, s in zip(errors[name]["lve"], speakers) if s == who])), 3)
        for name in ("animator", "energy_jaw")}} for who in sorted(set(speakers))}
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


RELEASE_WINDOW_S = 2.0
"""Speaker-verification windows of the release evaluation (the length the issue's real-speech numbers use)."""


def release_report(audio_url: str, animator_url: str, data: dict[str, str],
                   degradations: dict[str, Callable[[np.ndarray, int], np.ndarray]] | None = None) -> dict:
    """The foundation release's evaluation table.

    data: dataset URLs by role — `real_heldout` (real speakers never trained on), `tts_heldout` (held-out TTS
    voices, with face parameters), `faces_heldout` (held-out real speech driving the world's faces) and
    `animator_mix` (the animator's training data, which the baselines are fitted on).
    audio: EER of ours vs resemblyzer on 2 s windows of the held-out real speakers, the same windows under each
    of `degradations`, and held-out TTS voices; animator: LVE/MVE vs energy→jaw and mean face on held-out real-
    speech and TTS clips.
    """
    model = load_audio_encoder(audio_url)
    audio: dict[str, dict] = {}
    real, real_speakers = speech_windows(list(iter_samples(data["real_heldout"], MAX_CLIPS)), RELEASE_WINDOW_S)
    audio["real_heldout"] = {**verification_report(model, real, real_speakers),
                             "speaker_names": sorted(set(real_speakers))}
    for name, degrade in (degradations or {}).items():
        audio[f"real_heldout/{name}"] = verification_report(model, real, real_speakers, degrade=degrade)
    tts, tts_speakers = speech_windows(list(iter_samples(data["tts_heldout"], MAX_CLIPS)), RELEASE_WINDOW_S)
    audio["tts_heldout"] = verification_report(model, tts, tts_speakers)
    animator = {name: evaluate_animator(animator_url, data[url], data["animator_mix"])
                for name, url in (("real_heldout", "faces_heldout"), ("tts_heldout", "tts_heldout"))}
    for row in animator.values():
        row["lve_ratio_energy_jaw"] = row["lve_mm/energy_jaw"] / max(row["lve_mm/animator"], 1e-9)
    return {"audio": audio, "animator": animator}


def standard_degradations(seed: int = 0) -> dict[str, Callable[[np.ndarray, int], np.ndarray]]:
    """The channels the release is also scored under: pink noise at 10 dB SNR, and a telephone line
    (`foundation.audio.augment`'s own operations, seeded per utterance so every encoder hears the same audio)."""
    from foundation.audio.augment import coloured_noise, mix_at_snr, telephone

    def noise(wav: np.ndarray, index: int) -> np.ndarray:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
        x = torch.from_numpy(np.asarray(wav, np.float32))
        return mix_at_snr(x, coloured_noise(len(x), torch.ones(1), [gen])[0], 10.0).numpy()

    def phone(wav: np.ndarray, index: int) -> np.ndarray:
        return telephone(torch.from_numpy(np.asarray(wav, np.float32))).numpy()

    return {"noise_10db": noise, "telephone": phone}
