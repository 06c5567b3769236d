"""Distillation from resemblyzer: the teacher embeds clean windows as resemblyzer does, and the term trains."""

import pytest
import torch

from datasets.errors import ReplicaError
from foundation.audio.augment import VOICE_VARIANTS, AugmentConfig, augment_batch
from foundation.audio.encoder import AudioEncoderConfig
from foundation.audio.features import BatchFeatures, FeatureConfig
from foundation.audio.losses import AudioLossConfig
from foundation.audio.teacher import batch_teacher, mel_power
from foundation.evaluation import resemblyzer_embeddings
from foundation.training.objectives import AudioObjective, build_objective
from foundation.tts import synthesize


SR = 16000
VOICES = ("espeak:en-us", "espeak:en-gb", "espeak:en-us+f3", "espeak:en-gb-x-rp+m2")
TINY = AudioEncoderConfig(dim=32, layers=1, heads=2, embed_dim=32)


@pytest.fixture(scope="module")
def speech_batch() -> dict:
    """Four 2 s windows of TTS speech by four voices, the last one cut short: a loader batch."""
    wavs = []
    for voice in VOICES:
        wav = torch.as_tensor(synthesize("Please call Stella and ask her to bring these things.", voice).wav)
        wavs.append(torch.nn.functional.pad(wav, (0, max(0, 2 * SR - len(wav))))[: 2 * SR].float())
    wav = torch.stack(wavs)
    wav[3, 25000:] = 0
    return {"wav": wav, "wav_len": torch.tensor([2 * SR] * 3 + [25000]), "keys": list(VOICES),
            "speaker": list(VOICES), "item_seed": torch.arange(4, dtype=torch.int64)}


def fresh(batch: dict) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def test_teacher_equals_resemblyzer_on_each_window(speech_batch):
    teacher = batch_teacher(speech_batch)
    reference = resemblyzer_embeddings([w[:n].numpy() for w, n in zip(speech_batch["wav"], speech_batch["wav_len"])])
    assert teacher.shape == (4, 256) and teacher.dtype == torch.float32
    assert torch.allclose(teacher.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.allclose(teacher, torch.from_numpy(reference).float(), atol=1e-4)


def test_mel_matches_resemblyzers_own(speech_batch):
    from resemblyzer.audio import wav_to_mel_spectrogram

    wav = speech_batch["wav"][0].numpy()
    reference = wav_to_mel_spectrogram(wav)
    assert mel_power(wav).shape == reference.shape
    assert abs(mel_power(wav) - reference).max() <= 1e-4 * reference.max()


def test_teacher_embeds_the_clean_window_not_the_augmented_one(speech_batch):
    noisy = AugmentConfig(enabled=True, noise_p=1, noise_snr_db=(0.0, 0.0), telephone_p=1)
    clean = BatchFeatures(FeatureConfig(), teacher=True)(fresh(speech_batch))
    augmented = BatchFeatures(FeatureConfig(), noisy, teacher=True)(fresh(speech_batch))
    assert torch.equal(clean["teacher"], augmented["teacher"])
    assert not torch.allclose(clean["mel"], augmented["mel"])


def test_silence_gets_a_zero_teacher_row_and_is_left_out_of_the_loss():
    teacher = batch_teacher({"wav": torch.zeros(1, SR), "wav_len": torch.tensor([SR])})
    assert torch.all(teacher == 0)


def train_steps(objective: AudioObjective, batch: dict, steps: int) -> list[dict]:
    optimizer = torch.optim.Adam(objective.parameters(), lr=5e-3)
    history = []
    for _ in range(steps):
        loss, metrics = objective(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append({k: float(v) for k, v in metrics.items()})
    return history


def test_distillation_term_falls_in_a_few_steps(speech_batch):
    torch.manual_seed(0)
    objective = AudioObjective(TINY, FeatureConfig(), list(VOICES), AudioLossConfig(distill_weight=1.0))
    batch = objective.transform()(fresh(speech_batch))
    assert batch["teacher"].shape == (4, 256)
    history = train_steps(objective, batch, 12)
    print("distill_loss", history[0]["distill_loss"], "→", history[-1]["distill_loss"])
    assert {"speaker_loss", "cpc_loss", "distill_loss", "speaker_acc"} <= set(history[0])
    assert history[-1]["distill_loss"] < 0.6 * history[0]["distill_loss"]


def test_pure_distillation_and_cpc_trains_one_speaker_without_the_speaker_head(speech_batch):
    torch.manual_seed(0)
    loss_cfg = AudioLossConfig(speaker_weight=0.0, distill_weight=1.0)
    objective = AudioObjective(TINY, FeatureConfig(), ["only"], loss_cfg)
    assert objective.speaker_loss is None
    batch = objective.transform()(fresh(speech_batch))
    batch["speaker"] = ["only"] * 4
    history = train_steps(objective, batch, 15)
    assert set(history[0]) == {"cpc_loss", "distill_loss"}
    assert history[-1]["distill_loss"] < history[0]["distill_loss"]


def test_zero_distill_weight_builds_no_head_asks_no_teacher_and_gets_no_gradient(speech_batch):
    objective = AudioObjective(TINY, FeatureConfig(), list(VOICES), AudioLossConfig(distill_weight=0.0))
    assert objective.distill_head is None and not objective.transform().teacher
    batch = objective.transform()(fresh(speech_batch))
    assert "teacher" not in batch
    loss, metrics = objective(batch)
    assert "distill_loss" not in metrics
    assert float(loss.detach()) == pytest.approx(float(metrics["speaker_loss"] + metrics["cpc_loss"]), rel=1e-5)
    with pytest.raises(ReplicaError, match="2 speakers"):
        AudioObjective(TINY, FeatureConfig(), ["only"])


def test_projection_head_is_training_only(speech_batch):
    objective = AudioObjective(TINY, FeatureConfig(), list(VOICES), AudioLossConfig(distill_weight=1.0))
    export = objective.export()
    assert set(export["state_dict"]) == set(objective.encoder.state_dict())  # the encoder's alone, no head
    assert not objective.transform(train=False).teacher and objective.transform(train=False).augment is None


def test_model_section_without_loss_or_augment_builds_the_old_objective():
    model = {"encoder": TINY.model_dump(mode="json"), "features": FeatureConfig().model_dump(mode="json"),
             "speakers": ["a", "b"]}
    objective = build_objective("audio", model)
    assert objective.loss_cfg == AudioLossConfig() and objective.augment is None and objective.distill_head is None
    model["augment"] = AugmentConfig(enabled=True).model_dump(mode="json")
    model["loss"] = {"distill_weight": 0.5}
    objective = build_objective("audio", model)
    assert objective.augment.enabled and objective.transform().teacher and objective.loss_cfg.distill_weight == 0.5


def test_all_weights_zero_is_a_user_error():
    with pytest.raises(ReplicaError, match="nothing to train"):
        AudioLossConfig(speaker_weight=0, cpc_weight=0, distill_weight=0)


def test_animator_training_audio_is_augmented_without_speed_changes(tmp_path):
    from foundation.animation.model import AnimatorConfig
    from foundation.models import save_export
    from foundation.training.objectives import AnimatorObjective

    start = str(tmp_path / "audio.pt")
    save_export(AudioObjective(TINY, FeatureConfig(), ["a", "b"]).export(), start)
    mean_face = {"expr": torch.zeros(52), **{k: torch.zeros(3) for k in ("jaw", "neck", "rot", "trans")}}
    objective = AnimatorObjective(AnimatorConfig(latent_dim=TINY.dim), start, mean_face,
                                  augment=AugmentConfig(enabled=True, speed_p=1.0))
    assert objective.transform().augment.enabled and objective.transform().augment.speed_p == 0
    assert objective.transform(train=False).augment is None


def test_a_changed_voice_is_distilled_as_itself_and_left_out_of_the_speaker_loss(speech_batch):
    """`augment.new_voice`: a window played faster is a new voice — the teacher embeds it as played (before the
    noise), and the speaker loss does not call it its speaker's; windows left as they were keep both."""
    off = dict(formant_p=0, reverb_p=0, babble_p=0, telephone_p=0, codec_p=0, gain_p=0)
    faster = AugmentConfig(enabled=True, speed_p=1, speed_range=(1.12, 1.12), noise_p=1, noise_snr_db=(5.0, 5.0),
                           new_voice=True, **off)
    out = BatchFeatures(FeatureConfig(), faster, teacher=True)(fresh(speech_batch))
    played = faster.model_copy(update={"noise_p": 0, "new_voice": False})
    assert out["voice_changed"].all()
    assert torch.allclose(out["teacher"], batch_teacher(augment_batch(fresh(speech_batch), played)), atol=1e-5)
    assert (out["teacher"] * batch_teacher(speech_batch)).sum(-1).max() < 0.99  # not the clean window's
    kept = BatchFeatures(FeatureConfig(), faster.model_copy(update={"speed_p": 0}), teacher=True)(fresh(speech_batch))
    assert not kept["voice_changed"].any() and torch.equal(kept["teacher"], batch_teacher(speech_batch))

    torch.manual_seed(0)
    objective = AudioObjective(TINY, FeatureConfig(), list(VOICES), AudioLossConfig(distill_weight=1.0), faster).eval()
    batch = fresh(out)
    batch["voice_changed"] = torch.tensor([True, False, False, True])
    _, metrics = objective(batch)
    ids = torch.tensor([objective.vocab[v] for v in VOICES[1:3]])
    with torch.no_grad():
        expected = objective.speaker_loss(objective.encoder(batch["mel"], batch["mel_len"]).embedding[1:3], ids)
    assert float(metrics["speaker_loss"]) == pytest.approx(float(expected), rel=1e-5)
    batch["voice_changed"][:] = True  # nothing left for the speaker loss: it runs at weight 0
    loss, metrics = objective(batch)
    assert float(loss.detach()) == pytest.approx(float(metrics["cpc_loss"] + metrics["distill_loss"]), rel=1e-5)


def test_with_new_voice_labels_a_changed_voice_is_a_class_of_its_own(speech_batch):
    """`augment.new_voice_labels`: each speaker has a class per way its voice moved (speed, formants: down / kept
    / up); a changed window is scored against its variant's class, a window as recorded (or held out) its own."""
    off = dict(reverb_p=0, noise_p=0, babble_p=0, telephone_p=0, codec_p=0, gain_p=0)
    cfg = AugmentConfig(enabled=True, speed_p=1, speed_range=(1.12, 1.12), formant_p=1, formant_range=(0.9, 0.9),
                        new_voice=True, new_voice_labels=True, **off)
    out = BatchFeatures(FeatureConfig(), cfg, teacher=True)(fresh(speech_batch))
    assert out["voice_variant"].tolist() == [3 * 2 + 0] * 4  # faster, formants down
    kept = augment_batch(fresh(speech_batch), cfg.model_copy(update={"speed_p": 0, "formant_p": 0}))
    assert kept["voice_variant"].tolist() == [4] * 4
    objective = AudioObjective(TINY, FeatureConfig(), list(VOICES), AudioLossConfig(distill_weight=1.0), cfg).eval()
    assert objective.speaker_loss.weight.shape[0] == 4 * VOICE_VARIANTS
    _, metrics = objective(fresh(out))  # every window counts (none is left out)
    ids = torch.tensor([objective.vocab[v] * VOICE_VARIANTS + 6 for v in VOICES])
    with torch.no_grad():
        expected = objective.speaker_loss(objective.encoder(out["mel"], out["mel_len"]).embedding, ids)
    assert float(metrics["speaker_loss"]) == pytest.approx(float(expected), rel=1e-5)
    held_out = BatchFeatures(FeatureConfig())(fresh(speech_batch))  # not augmented: the voices as recorded
    assert objective._class_ids(held_out).tolist() == [objective.vocab[v] * VOICE_VARIANTS + 4 for v in VOICES]
