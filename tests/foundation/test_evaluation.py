"""Evaluation metrics and baselines: EER, verification trials, vertex errors, resemblyzer, mean and energy baselines,
the phones-known reference."""

import numpy as np
import pytest

from datasets.errors import ReplicaError
from foundation.evaluation import (EnergyJawBaseline, MeanFaceBaseline, PhonesKnownReference, eer, eer_bootstrap,
                                   frame_log_energy, lip_vertex_error, mean_vertex_error, resemblyzer_embeddings,
                                   verification_trials)
from datasets.schema import EXPRESSION_NAMES
from foundation.tts import synthesize

JAW_OPEN = EXPRESSION_NAMES.index("jawOpen")


def test_eer_is_zero_for_perfect_scores_and_one_for_inverted_scores():
    labels = np.r_[np.ones(50), np.zeros(50)]
    scores = labels + np.random.default_rng(0).uniform(0, 0.5, 100)
    assert eer(scores, labels) == 0.0
    assert eer(-scores, labels) == 1.0


def test_eer_of_random_scores_is_near_one_half():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 4000)
    assert eer(rng.random(4000), labels) == pytest.approx(0.5, abs=0.05)


def test_eer_never_splits_tied_scores():
    assert eer(np.ones(10), np.r_[np.ones(5), np.zeros(5)]) == 0.5
    assert eer([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == 0.5


def test_eer_needs_both_kinds_of_trial():
    with pytest.raises(ReplicaError, match="different"):
        eer([0.1, 0.2], [1, 1])


def test_verification_trials_are_balanced_and_separate_clustered_speakers():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16))
    speakers = [f"s{i % 5}" for i in range(40)]
    embeddings = centres[np.arange(40) % 5] + 0.05 * rng.normal(size=(40, 16))
    scores, labels = verification_trials(embeddings, speakers, rng, n=200)
    assert scores.shape == labels.shape == (400,) and labels.sum() == 200
    assert np.all(np.abs(scores) <= 1 + 1e-9)
    assert eer(scores, labels) == 0.0


def test_eer_intervals_hold_each_systems_eer_and_order_a_clearly_better_one():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(500), np.zeros(500)]
    good = labels + rng.normal(0, 0.5, 1000)  # EER ≈ 0.16
    poor = labels + rng.normal(0, 1.5, 1000)  # EER ≈ 0.37
    spread = eer_bootstrap(good, poor, labels, np.random.default_rng(1), rounds=300)
    assert spread["a"][0] <= eer(good, labels) <= spread["a"][1] and spread["a"][1] - spread["a"][0] < 0.1
    assert spread["b"][0] <= eer(poor, labels) <= spread["b"][1]
    assert spread["a_minus_b"][1] < 0 and spread["p_a_below_b"] == 1.0
    same = eer_bootstrap(good, good, labels, np.random.default_rng(1), rounds=50)
    assert same["a_minus_b"] == [0.0, 0.0] and same["p_a_below_b"] == 0.0


def test_lip_vertex_error_is_zero_for_identical_meshes_and_one_mm_for_a_one_mm_offset():
    verts = np.random.default_rng(0).normal(size=(10, 100, 3)) * 0.1
    mouth = np.arange(20, 40)
    assert lip_vertex_error(verts, verts, mouth) == 0.0
    offset = verts + np.array([0.0, 0.0006, 0.0008])  # |(0, 0.6, 0.8)| mm = 1 mm
    assert lip_vertex_error(offset, verts, mouth) * 1000 == pytest.approx(1.0)
    assert mean_vertex_error(offset, verts) * 1000 == pytest.approx(1.0)


def test_lip_vertex_error_takes_the_worst_lip_vertex_and_ignores_the_rest():
    verts = np.zeros((4, 100, 3))
    pred = verts.copy()
    pred[:, 25, 1] = 0.005  # one lip vertex 5 mm off
    pred[:, 90, 1] = 0.050  # a non-lip vertex 5 cm off
    assert lip_vertex_error(pred, verts, np.arange(20, 40)) == pytest.approx(0.005)
    assert mean_vertex_error(pred, verts, np.arange(20, 40)) == pytest.approx(0.005 / 20)


def speaking_clips(n_clips: int, frames: int) -> tuple[list[np.ndarray], list[dict[str, np.ndarray]]]:
    """Noise bursts whose loudness drives the jaw linearly in log energy, with matching parameters."""
    rng = np.random.default_rng(0)
    wavs, params = [], []
    for _ in range(n_clips):
        loudness = np.exp(rng.uniform(np.log(0.005), np.log(0.3), frames))
        wavs.append((np.repeat(loudness, 640) * rng.normal(size=640 * frames)).astype(np.float32))
        energy = frame_log_energy(wavs[-1], frames)
        jaw = np.zeros((frames, 3), np.float32)
        jaw[:, 0] = 0.3 + 0.05 * energy
        expr = np.full((frames, 52), 0.1, np.float32)
        expr[:, JAW_OPEN] = jaw[:, 0] / 0.3
        pose = {k: rng.normal(0, 0.02, (frames, 3)).astype(np.float32) for k in ("neck", "rot", "trans")}
        params.append({"expr": expr, "jaw": jaw, **pose})
    return wavs, params


def test_mean_face_baseline_predicts_the_training_mean_on_every_frame():
    _, params = speaking_clips(3, 30)
    out = MeanFaceBaseline().fit(params).predict(None, 7)
    assert out["expr"].shape == (7, 52) and all(out[k].shape == (7, 3) for k in ("jaw", "neck", "rot", "trans"))
    all_jaw = np.concatenate([p["jaw"] for p in params])
    assert np.allclose(out["jaw"], all_jaw.mean(0), atol=1e-6)


def test_energy_jaw_baseline_recovers_a_loudness_driven_jaw_the_mean_face_misses():
    wavs, params = speaking_clips(4, 50)
    energy_model = EnergyJawBaseline().fit(wavs[:3], params[:3])
    mean_model = MeanFaceBaseline().fit(params[:3])
    out = energy_model.predict(wavs[3], 50)
    assert out["expr"].shape == (50, 52) and all(out[k].shape == (50, 3) for k in ("jaw", "neck", "rot", "trans"))
    truth = params[3]["jaw"][:, 0]
    energy_error = np.abs(out["jaw"][:, 0] - truth).mean()
    mean_error = np.abs(mean_model.predict(None, 50)["jaw"][:, 0] - truth).mean()
    assert energy_error < 0.05 * mean_error
    assert np.allclose(out["expr"][:, JAW_OPEN], np.clip(truth / 0.3, 0, 1), atol=0.01)
    assert np.allclose(out["neck"], mean_model.predict(None, 50)["neck"])


def test_resemblyzer_puts_one_voice_closer_to_itself_than_to_another_voice():
    texts = ["The quick brown fox jumps over the lazy dog.", "She sells sea shells by the sea shore today."]
    wavs = [synthesize(text, voice).wav for voice in ("espeak:en-us+f3", "espeak:en-us+m3") for text in texts]
    emb = resemblyzer_embeddings(wavs)
    assert emb.shape == (4, 256) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    sim = emb @ emb.T
    same = [sim[0, 1], sim[2, 3]]
    different = [sim[0, 2], sim[0, 3], sim[1, 2], sim[1, 3]]
    assert min(same) > max(different) + 0.1


def test_phones_known_reference_is_the_worlds_mouth_for_those_phones_at_the_average_style():
    from foundation.world.motion import ARTICULATION, synthesize_motion

    speech = synthesize("Maybe we should open the window.", "espeak:en-us+f3")
    _, params = speaking_clips(2, 10)
    for seed in range(3):
        truth = synthesize_motion(speech.wav, speech.phonemes, np.random.default_rng(seed))
        articulation = np.random.default_rng(seed).uniform(*ARTICULATION)  # the clip's first style draw
        frames = len(truth.jaw)
        out = PhonesKnownReference().fit(params).predict(speech.wav, speech.phonemes, frames)
        assert all(out[k].shape == (frames, 3) for k in ("jaw", "neck", "rot", "trans")) and out["expr"].shape == (frames, 52)
        reference_jaw, true_jaw = out["jaw"][:, 0], truth.jaw[:, 0]
        assert true_jaw.max() > 0.1  # the sentence opens the mouth
        open_ = (true_jaw > 0.02) & (true_jaw < 0.44) & (reference_jaw < 0.44)  # neither clipped at the jaw's limit
        assert open_.sum() > 10
        # the same mouth, scaled by this speaker's articulation instead of the average one (1.0)
        assert np.allclose(reference_jaw[open_] * articulation, true_jaw[open_], rtol=1e-4, atol=1e-6)
        assert np.allclose(out["expr"][:, JAW_OPEN], reference_jaw / 0.35, atol=1e-5)
        assert np.allclose(out["neck"], MeanFaceBaseline().fit(params).predict(None, frames)["neck"])
