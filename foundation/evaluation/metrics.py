"""Evaluation metrics and reference baselines on arrays: nothing here reads a run or trains (see `runner`).

Speaker embeddings are judged by verification: cosine scores of same- and different-speaker pairs,
summarised by the equal error rate (EER). Resemblyzer's pretrained GE2E encoder (its weights ship
inside the package) is the reference our audio encoder is measured against.

Animation is judged on the head model's vertices: the lip vertex error (LVE, as in MeshTalk and
FaceFormer: per frame the largest L2 error over the lip vertices, averaged over frames) and the mean
vertex error. Two baselines bound what an animator must beat: the training-set mean face, and a
least-squares fit from per-frame audio energy to jaw opening. A reference bounds it from below where the
truth came from the synthetic world: the world's own mouth model on the clip's exact phone timings with the
average speaker's style (`PhonesKnownReference`), what a perfect phone recogniser would score without
knowing how far this speaker opens their mouth or how much they smile.

Arrays are NumPy or torch; distances are metres (multiply by 1000 to report mm).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from datasets.errors import ReplicaError
from datasets.schema import EXPRESSION_NAMES, FPS, SAMPLE_RATE

PARAM_KEYS = ("expr", "jaw", "neck", "rot", "trans")
"""Per-frame parameter arrays the baselines predict: expr [F, 52], the rest [F, 3]."""

SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
"""Audio samples per video frame (640)."""


def eer(scores, labels) -> float:
    """Equal error rate of verification trials.

    scores: [N] similarity (higher = more likely the same speaker); labels: [N] 1 same, 0 different.
    Sweeping the acceptance threshold from high to low, the false-acceptance rate rises and the
    false-rejection rate falls; the EER is where they are equal (linearly interpolated between
    distinct score values, so ties are never split). 0 is perfect, 0.5 chance, 1 perfectly inverted.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ReplicaError(f"scores {scores.shape} / labels {labels.shape}", "expected two [N] arrays")
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        raise ReplicaError("verification trials", f"need both same ({n_pos}) and different ({n_neg}) pairs")
    order = np.argsort(-scores, kind="stable")
    s, l = scores[order], labels[order]
    cuts = np.r_[np.flatnonzero(np.diff(s) != 0) + 1, len(s)]  # accept the top k, k only between distinct scores
    far = np.r_[0.0, np.cumsum(~l)[cuts - 1] / n_neg]
    frr = np.r_[1.0, 1.0 - np.cumsum(l)[cuts - 1] / n_pos]
    gap = frr - far  # falls from 1 to -1
    k = int(np.argmax(gap <= 0))
    t = gap[k - 1] / (gap[k - 1] - gap[k])
    return float(far[k - 1] + t * (far[k] - far[k - 1]))


def eer_bootstrap(scores_a, scores_b, labels, rng: np.random.Generator, rounds: int = 1000) -> dict:
    """95 % intervals of two systems' EERs on the same trials and of their difference (a − b), by resampling the
    trials with replacement (paired: each round scores both systems on the same resampled trials).

    It shows how far a table's EER could move with another draw of trials from the same recordings. It does not
    see how few the recordings are (trials sharing a window are not independent), so on a small held-out set
    the real spread — another set of speakers, another training seed — is larger.
    """
    a, b, labels = np.asarray(scores_a), np.asarray(scores_b), np.asarray(labels).astype(bool)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    draws = np.empty((rounds, 2))
    for r in range(rounds):  # positives and negatives resampled separately: both kinds stay in every round
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        draws[r] = eer(a[idx], labels[idx]), eer(b[idx], labels[idx])

    def interval(values: np.ndarray) -> list[float]:
        return [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]

    return {"a": interval(draws[:, 0]), "b": interval(draws[:, 1]), "a_minus_b": interval(draws[:, 0] - draws[:, 1]),
            "p_a_below_b": round(float(np.mean(draws[:, 0] < draws[:, 1])), 3), "rounds": rounds}


def verification_trials(embeddings, speakers: list[str], rng: np.random.Generator,
                        n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of n same-speaker and n different-speaker pairs drawn at random.

    embeddings: [N, E]; speakers: N names. Returns (scores [2n], labels [2n]: 1 same, 0 different).
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)
    names = np.asarray(speakers)
    if len(names) != len(emb):
        raise ReplicaError(f"{len(emb)} embeddings", f"but {len(names)} speaker names")
    groups = [np.flatnonzero(names == s) for s in np.unique(names)]
    multi = [g for g in groups if len(g) >= 2]
    if not multi or len(groups) < 2:
        raise ReplicaError("verification trials", "need ≥ 2 speakers and one with ≥ 2 utterances")
    same = []
    for g in (multi[i] for i in rng.integers(len(multi), size=n)):
        same.append(rng.choice(g, size=2, replace=False))
    diff = []
    while len(diff) < n:
        i, j = rng.integers(len(emb), size=2)
        if names[i] != names[j]:
            diff.append((i, j))
    pairs = np.array(same + diff)
    scores = (emb[pairs[:, 0]] * emb[pairs[:, 1]]).sum(1)
    return scores, np.r_[np.ones(n), np.zeros(n)]


@functools.lru_cache(maxsize=1)
def _voice_encoder():
    from resemblyzer import VoiceEncoder  # loads resemblyzer/pretrained.pt from inside the package

    return VoiceEncoder(device="cpu", verbose=False)


def resemblyzer_embeddings(wavs: list[np.ndarray]) -> np.ndarray:
    """Resemblyzer (GE2E) utterance embeddings [N, 256], unit norm, of 16 kHz float waveforms.

    Each wav is volume-normalised and long silences are trimmed (resemblyzer's own preprocessing,
    which its encoder was trained with); an utterance that trims to almost nothing is used as is.
    """
    from resemblyzer import preprocess_wav

    encoder = _voice_encoder()
    out = []
    for wav in wavs:
        wav = np.asarray(wav, dtype=np.float32)
        trimmed = preprocess_wav(wav)
        out.append(encoder.embed_utterance(trimmed if len(trimmed) >= SAMPLE_RATE // 4 else wav))
    return np.stack(out)


def _vertex_distances(pred_verts, true_verts) -> np.ndarray:
    pred = torch.as_tensor(pred_verts, dtype=torch.float64)
    true = torch.as_tensor(true_verts, dtype=torch.float64)
    if pred.shape != true.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ReplicaError(f"vertices {list(pred.shape)} vs {list(true.shape)}", "expected two [F, V, 3]")
    return (pred - true).norm(dim=-1).numpy()  # [F, V]


def lip_vertex_error(pred_verts, true_verts, mouth_ids) -> float:
    """LVE (metres): per frame the largest L2 error over the lip vertices, averaged over frames.

    pred_verts, true_verts: [F, V, 3] metres; mouth_ids: [M] lip vertex ids (`HeadModel.mouth_vertex_ids`).
    """
    return float(_vertex_distances(pred_verts, true_verts)[:, np.asarray(mouth_ids)].max(1).mean())


def mean_vertex_error(pred_verts, true_verts, vertex_ids=None) -> float:
    """Mean L2 error (metres) over frames and vertices (all, or `vertex_ids`). Vertices: [F, V, 3]."""
    dist = _vertex_distances(pred_verts, true_verts)
    return float((dist if vertex_ids is None else dist[:, np.asarray(vertex_ids)]).mean())


class MeanFaceBaseline:
    """Predicts the training set's mean parameters on every frame, whatever the audio."""

    def fit(self, params: list[dict[str, np.ndarray]]) -> "MeanFaceBaseline":
        """params: per clip, arrays expr [F, 52] and jaw/neck/rot/trans [F, 3] (valid frames only)."""
        if not params:
            raise ReplicaError("MeanFaceBaseline.fit", "no training clips")
        self.mean = {k: np.concatenate([p[k] for p in params]).mean(0).astype(np.float32) for k in PARAM_KEYS}
        return self

    def predict(self, wav: np.ndarray | None, n_frames: int) -> dict[str, np.ndarray]:
        """Parameters for n_frames frames: expr [F, 52], jaw/neck/rot/trans [F, 3]. The audio is ignored."""
        return {k: np.tile(v, (n_frames, 1)) for k, v in self.mean.items()}


def frame_log_energy(wav: np.ndarray, n_frames: int) -> np.ndarray:
    """Log RMS amplitude of each video frame's 640 samples [F] (zero-padded past the end of wav)."""
    wav = np.asarray(wav, dtype=np.float64)[: n_frames * SAMPLES_PER_FRAME]
    frames = np.pad(wav, (0, n_frames * SAMPLES_PER_FRAME - len(wav))).reshape(n_frames, SAMPLES_PER_FRAME)
    return np.log(np.sqrt((frames**2).mean(1)) + 1e-4)


class EnergyJawBaseline:
    """Jaw angle and jawOpen from audio loudness by least squares; everything else the mean face.

    Features of frame f: log energy of frames f-2 … f+2 (the jaw leads and trails the sound) and 1.
    """

    CONTEXT = 2
    """Frames of energy either side of the predicted frame."""

    def _features(self, wav: np.ndarray, n_frames: int) -> np.ndarray:
        energy = np.pad(frame_log_energy(wav, n_frames), self.CONTEXT, mode="edge")
        shifted = [energy[i: i + n_frames] for i in range(2 * self.CONTEXT + 1)]
        return np.stack([*shifted, np.ones(n_frames)], axis=1)  # [F, 2·CONTEXT + 2]

    def fit(self, wavs: list[np.ndarray], params: list[dict[str, np.ndarray]]) -> "EnergyJawBaseline":
        """wavs: per clip, 16 kHz audio aligned with its params (frame f = samples [640 f, 640 (f+1)))."""
        if len(wavs) != len(params) or not wavs:
            raise ReplicaError("EnergyJawBaseline.fit", f"{len(wavs)} wavs for {len(params)} parameter sets")
        self.mean = MeanFaceBaseline().fit(params)
        self.jaw_open = EXPRESSION_NAMES.index("jawOpen")
        x = np.concatenate([self._features(w, len(p["expr"])) for w, p in zip(wavs, params)])
        y = np.concatenate([np.stack([p["jaw"][:, 0], p["expr"][:, self.jaw_open]], 1) for p in params])
        self.coef = np.linalg.lstsq(x, y, rcond=None)[0]  # [features, 2]
        return self

    def predict(self, wav: np.ndarray, n_frames: int) -> dict[str, np.ndarray]:
        """Parameters for n_frames frames of `wav`: expr [F, 52], jaw/neck/rot/trans [F, 3]."""
        out = self.mean.predict(None, n_frames)
        jaw, jaw_open = (self._features(wav, n_frames) @ self.coef).T
        out["jaw"][:, 0] = np.clip(jaw, 0.0, None)  # a jaw does not close past its rest pose
        out["expr"][:, self.jaw_open] = np.clip(jaw_open, 0.0, 1.0)
        return out


class PhonesKnownReference:
    """The synthetic world's mouth for a clip's exact phones, average speaker style; the rest the mean face.

    Not a baseline an audio model could match by construction: it reads the phone timings that generated
    the truth (`meta["phones"]`; for real speech driving faces, the aligner's phones). What separates it
    from the truth is only each clip's own style draw (articulation, smile, their drift), which the audio
    barely carries: LVE well below it means the scoring is wrong, near it means phone recognition is solved.
    """

    def fit(self, params: list[dict[str, np.ndarray]]) -> "PhonesKnownReference":
        """params: per training clip, as `MeanFaceBaseline.fit` (for the channels the mouth does not set)."""
        self.mean = MeanFaceBaseline().fit(params)
        return self

    def predict(self, wav: np.ndarray, phones: list, n_frames: int) -> dict[str, np.ndarray]:
        """wav: 16 kHz audio; phones: [(phone, start_s, end_s)] → expr [F, 52], jaw/neck/rot/trans [F, 3]."""
        from foundation.world.motion import average_speaker_mouth

        out = self.mean.predict(None, n_frames)
        jaw, expr = average_speaker_mouth(wav, [tuple(p) for p in phones], SAMPLE_RATE)
        frames = min(n_frames, len(jaw))
        out["jaw"][:frames] = jaw[:frames]
        mouth = expr[:frames].any(0)  # the channels the mouth model sets
        out["expr"][:frames, mouth] = expr[:frames, mouth]
        return out
