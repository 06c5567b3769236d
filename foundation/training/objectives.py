"""What each foundation model is trained to do: model + loss in one `nn.Module` for DeepSpeed.

An objective takes a loader batch (with `mel` from the feature transform) and returns the loss
and a few scalar metrics; `eval_sums` gives held-out (sum, count) pairs that the trainer averages
across ranks; `export` returns the plain inference payload (`model.pt`, see `foundation.models`)
that loads without DeepSpeed or Ray.

- `AudioObjective`: `AudioEncoder` + AAM-softmax speaker loss + CPC content loss + distillation to
  resemblyzer's embedding + optionally the viseme term (weights in `AudioLossConfig`); its training windows
  are augmented.
- `AnimatorObjective`: a pre-trained `AudioEncoder` feeding an `Animator`, with coefficient,
  mouth-weighted vertex and velocity losses against the head-model parameters in `mm.npz`, and
  optionally a viseme-classification term on the encoder's latents (`AnimationLossConfig.viseme`). The
  encoder is fine-tuned with the animator by default (`animator.finetune_encoder`), frozen otherwise.
  It starts from an audio export (a fresh animator) or from an animator export (both its weights).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from datasets.errors import ReplicaError
from datasets.loader import dataset_speakers, iter_samples
from datasets.schema import FPS
from foundation.animation.losses import AnimationLossConfig, animation_loss
from foundation.animation.model import POSE_KEYS, Animator, AnimatorConfig
from foundation.audio.encoder import AudioEncoder, AudioEncoderConfig
from foundation.audio.features import BatchFeatures, FeatureConfig
from foundation.audio.augment import VOICE_VARIANTS, AugmentConfig
from foundation.audio.losses import AAMSoftmax, AudioLossConfig, CPCLoss, distill_loss, speaker_ids, speaker_vocab
from foundation.audio.teacher import TEACHER_DIM
from foundation.evaluation.metrics import PARAM_KEYS, MeanFaceBaseline
from foundation.head import default_head_model
from foundation.models import animator_export, audio_export, load_animator_start, speech_to_face_and_latent
from foundation.training.config import Kind
from foundation.world.visemes import VISEMES, frame_classes

ANIMATOR_TRAINING_FIELDS = ("finetune_encoder", "dropout")
"""Animator settings a run may change when it starts from a pre-trained animator (the rest is its architecture)."""


class AudioObjective(nn.Module):
    """Speaker (AAM-softmax over training speakers), content (CPC, visemes) and distillation (to resemblyzer).

    Each term is built only when its `loss` weight is above 0, so a switched-off term has no
    parameters (nothing DeepSpeed would see without a gradient). `augment` degrades the training
    windows in the loader (`transform`); the teacher embeds the clean window before that (with
    `augment.new_voice`, the window after a speed or formant change: another voice, see `AugmentConfig`).
    """

    kind = "audio"

    def __init__(self, encoder: AudioEncoderConfig, features: FeatureConfig, speakers: list[str],
                 loss: AudioLossConfig | None = None, augment: AugmentConfig | None = None):
        super().__init__()
        self.loss_cfg = loss = loss or AudioLossConfig()
        if loss.speaker_weight > 0 and len(set(speakers)) < 2:
            raise ReplicaError("training data",
                               f"needs at least 2 speakers for the speaker objective, has {len(set(speakers))}")
        self.features, self.augment = features, augment
        self.vocab = speaker_vocab(speakers)
        self.encoder = AudioEncoder(encoder)
        # `augment.new_voice`: a window whose voice was changed is left out of the speaker loss or, with
        # `new_voice_labels`, scored against a class of its own (every speaker has one per way a voice can change)
        new_voice = augment is not None and augment.enabled and augment.new_voice
        self.variants = VOICE_VARIANTS if new_voice and augment.new_voice_labels else 1
        self.drop_changed = new_voice and self.variants == 1
        self.speaker_loss = AAMSoftmax(len(self.vocab) * self.variants, encoder.embed_dim) \
            if loss.speaker_weight > 0 else None
        self.cpc = CPCLoss(encoder.dim, first_step=encoder.lookahead + 1) if loss.cpc_weight > 0 else None
        # Training only: the export keeps the encoder's own embedding, not this projection.
        self.distill_head = nn.Linear(encoder.embed_dim, TEACHER_DIM) if loss.distill_weight > 0 else None
        self.viseme_head = nn.Linear(encoder.dim, len(VISEMES)) if loss.viseme_weight > 0 else None

    def transform(self, train: bool = True) -> BatchFeatures:
        """The loader transform: augmentation and the teacher for training batches, plain features for held-out ones."""
        if not train:
            return BatchFeatures(self.features)
        return BatchFeatures(self.features, self.augment, teacher=self.distill_head is not None)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.encoder(batch["mel"], batch["mel_len"])
        loss, metrics = out.embedding.new_zeros(()), {}
        if self.speaker_loss is not None:
            ids = self._class_ids(batch).to(out.embedding.device)
            own = ~batch["voice_changed"].to(ids.device) if self.drop_changed and "voice_changed" in batch \
                else torch.ones_like(ids, dtype=torch.bool)
            # (a batch of only changed voices still runs the loss, at weight 0: every parameter gets a gradient)
            weight, own = (1.0, own) if own.any() else (0.0, ~own)
            speaker = self.speaker_loss(out.embedding[own], ids[own])
            loss = loss + weight * self.loss_cfg.speaker_weight * speaker
            with torch.no_grad():
                accuracy = (self.speaker_loss.logits(out.embedding[own]).argmax(-1) == ids[own]).float().mean()
            metrics.update(speaker_loss=speaker.detach(), speaker_acc=accuracy)
        if self.cpc is not None:
            content = self.cpc(out.latent, out.local, out.latent_len)
            loss = loss + self.loss_cfg.cpc_weight * content
            metrics["cpc_loss"] = content.detach()
        if self.distill_head is not None:
            if "teacher" not in batch:
                raise ReplicaError(f"batch {batch['keys'][:2]}", "distillation needs the transform's teacher embeddings")
            distill = distill_loss(self.distill_head(out.embedding), batch["teacher"].to(out.embedding.device))
            loss = loss + self.loss_cfg.distill_weight * distill
            metrics["distill_loss"] = distill.detach()
        if self.viseme_head is not None:
            viseme, accuracy = viseme_term(self.viseme_head, out.latent, batch)
            loss = loss + self.loss_cfg.viseme_weight * viseme
            metrics.update(viseme_loss=viseme.detach(), viseme_acc=accuracy.detach())
        return loss, metrics

    def eval_sums(self, batch: dict) -> dict[str, tuple[float, int]]:
        """Held-out CPC loss and viseme accuracy, and speaker accuracy on held-out clips of training speakers."""
        out = self.encoder(batch["mel"], batch["mel_len"])
        n = len(batch["keys"])
        sums = {}
        if self.cpc is not None:
            sums["cpc_loss"] = (float(self.cpc(out.latent, out.local, out.latent_len)) * n, n)
        if self.viseme_head is not None:
            sums["viseme_acc"] = (float(viseme_term(self.viseme_head, out.latent, batch)[1]) * n, n)
        known = [i for i, s in enumerate(batch["speaker"]) if s in self.vocab]
        if known and self.speaker_loss is not None:
            ids = self._class_ids({"speaker": [batch["speaker"][i] for i in known]}).to(out.embedding.device)
            hits = (self.speaker_loss.logits(out.embedding[known]).argmax(-1) == ids).sum()
            sums["speaker_acc"] = (float(hits), len(known))
        return sums

    def _class_ids(self, batch: dict) -> torch.Tensor:
        """The speaker loss's class of each window [B]: its speaker's, × its voice variant when variants are
        classes (a window without a `voice_variant` is the voice as recorded)."""
        ids = speaker_ids(batch["speaker"], self.vocab)
        if self.variants == 1:
            return ids
        variant = batch.get("voice_variant", torch.full_like(ids, VOICE_VARIANTS // 2))
        return ids * self.variants + variant.to(ids.device)

    def export(self) -> dict:
        return audio_export(self.encoder, self.features, list(self.vocab))


class AnimatorObjective(nn.Module):
    """A pre-trained audio encoder feeding the animator, trained against head-model parameters.

    `init_from` is an audio export (the animator starts fresh from `animator`, predicting `mean_face`:
    expr [52], jaw/neck/rot/trans [3], the training data's means) or an animator export (both its
    encoder and animator weights; its architecture is kept, and only the run's `ANIMATOR_TRAINING_FIELDS`
    of `animator` apply).
    """

    kind = "animator"

    def __init__(self, animator: AnimatorConfig, init_from: str, mean_face: dict[str, torch.Tensor],
                 loss: AnimationLossConfig | None = None, augment: AugmentConfig | None = None):
        super().__init__()
        self.augment = augment
        encoder, self.features, pretrained = load_animator_start(init_from)
        if pretrained is None:
            self._check_fits(animator, encoder, init_from)
            self.animator = Animator(animator)
            self.animator.init_mean(mean_face)  # a fresh animator starts at the mean face, not at expr 0.5
        else:
            training = {k: getattr(animator, k) for k in ANIMATOR_TRAINING_FIELDS}
            self.animator = Animator(pretrained.cfg.model_copy(update=training))
            self.animator.load_state_dict(pretrained.state_dict())
        self.init_from = init_from
        # Fine-tuning the pre-trained encoder with the animator (as FaceFormer fine-tunes wav2vec 2.0)
        # lets the latents learn the phonetic detail lip shapes need; frozen, one encoder serves all.
        self.encoder = encoder.requires_grad_(self.animator.cfg.finetune_encoder)
        self.loss_cfg = loss or AnimationLossConfig()
        self.head = default_head_model()  # poses predicted and true parameters for the vertex loss
        # Training-only, like the audio objective's speaker classifier: never exported.
        self.viseme_head = nn.Linear(encoder.cfg.dim, len(VISEMES)) if self.loss_cfg.viseme > 0 else None

    @staticmethod
    def _check_fits(animator: AnimatorConfig, encoder: AudioEncoder, url: str) -> None:
        if encoder.cfg.dim != animator.latent_dim:
            raise ReplicaError(f"animator.latent_dim={animator.latent_dim}",
                               f"must equal the audio encoder's dim ({encoder.cfg.dim}) from {url}")
        if animator.style_dim not in (0, encoder.cfg.embed_dim):
            raise ReplicaError(f"animator.style_dim={animator.style_dim}",
                               f"must be 0 or the encoder's embed_dim ({encoder.cfg.embed_dim})")

    def train(self, mode: bool = True) -> "AnimatorObjective":
        super().train(mode)
        self.encoder.eval()  # keep its pre-trained normalisation statistics, and no dropout, even when fine-tuned
        return self

    def transform(self, train: bool = True) -> BatchFeatures:
        """The loader transform: augmented training audio (the face targets stay as recorded), plain held-out audio.

        Never a speed change here: it would move the speech off the face motion it is aligned with.
        """
        if not train or self.augment is None:
            return BatchFeatures(self.features)
        return BatchFeatures(self.features, self.augment.model_copy(update={"speed_p": 0.0}))

    def predict(self, batch: dict) -> dict[str, torch.Tensor]:
        """Face parameters for the batch's audio, cut to its parameter frames: expr [B, F, 52], poses [B, F, 3]."""
        return self._predict(batch)[0]

    def _predict(self, batch: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The face parameters (as `predict`) and the encoder's latents [B, F, D] they came from."""
        pred, latent = speech_to_face_and_latent(self.encoder, self.animator, batch["mel"], batch["mel_len"])
        frames = batch["mm"]["expr"].shape[1]
        return {k: v[:, :frames] for k, v in pred.items()}, latent[:, :frames]

    def _targets(self, batch: dict) -> dict[str, torch.Tensor]:
        if "mm" not in batch:
            raise ReplicaError(f"batch {batch['keys'][:2]}", "animator training needs samples with mm.npz")
        return {k: batch["mm"][k] for k in ("expr", *POSE_KEYS, "shape") if k in batch["mm"]}

    def _terms(self, batch: dict) -> dict[str, torch.Tensor]:
        pred, latent = self._predict(batch)
        terms = animation_loss(pred, self._targets(batch), batch["frames_len"], self.loss_cfg, self.head)
        if self.viseme_head is not None:
            terms["viseme"], terms["viseme_acc"] = viseme_term(self.viseme_head, latent, batch)
            terms["total"] = terms["total"] + self.loss_cfg.viseme * terms["viseme"]
        return terms

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = self._terms(batch)
        return terms["total"], {k: v.detach() for k, v in terms.items() if k != "total"}

    def eval_sums(self, batch: dict) -> dict[str, tuple[float, int]]:
        terms = self._terms(batch)
        n = len(batch["keys"])
        return {k: (float(v) * n, n) for k, v in terms.items()}

    def export(self) -> dict:
        return animator_export(self.animator, self.encoder, self.features, self.init_from)


def viseme_labels(batch: dict, n_frames: int) -> torch.Tensor:
    """[B, F] int64 viseme class per frame of each window (`frame_classes` of its `meta["phones"]`, shifted by
    the window's `start_frame`); -1 on padding frames and for clips without phones.

    A window the augmentation played `speed` times faster (the batch's `speed` [B], 1.0 when absent) speaks
    the clip's time `start + f·speed` at its frame f, and its `frames_len` valid frames last `frames_len / speed`.
    """
    labels = np.full((len(batch["keys"]), n_frames), -1, np.int64)
    speeds = batch["speed"].tolist() if "speed" in batch else [1.0] * len(batch["keys"])
    for row, (meta, start, valid, factor) in enumerate(zip(batch["meta"], batch["start_frame"].tolist(),
                                                           batch["frames_len"].tolist(), speeds, strict=True)):
        valid = min(n_frames, int(valid / factor))
        if meta.get("phones") and valid > 0:
            times = (start + np.arange(valid) * factor) / FPS
            phones = [(str(p), float(a), float(b)) for p, a, b in meta["phones"]]
            labels[row, :valid] = frame_classes(phones, float(times[-1]) + 1 / FPS, times)
    return torch.from_numpy(labels)


def viseme_term(head: nn.Module, latent: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the viseme class each frame speaks (`viseme_labels`), read by `head` from the
    encoder's latents [B, F, D]; and the accuracy on frames whose phones are known. Both scalars.

    A batch without known phones still runs the head (a zero term), so every rank's gradients match.
    """
    labels = viseme_labels(batch, latent.shape[1]).to(latent.device)
    logits = head(latent).float()
    known = (labels >= 0).sum().clamp_min(1)
    ce = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-1, reduction="sum")
    return ce / known, ((logits.argmax(-1) == labels) & (labels >= 0)).sum() / known


MEAN_FACE_CLIPS = 200
"""Training clips whose parameters are averaged for the animator's starting output."""


def model_section(kind: Kind, data_url: str, *, features: FeatureConfig, audio_encoder: AudioEncoderConfig,
                  animator: AnimatorConfig, audio_loss: AudioLossConfig | None = None,
                  augment: AugmentConfig | None = None, animator_loss: AnimationLossConfig | None = None) -> dict:
    """The serialised model section `build_objective` reads (`PretrainJob.model`), with what it needs of the
    training data at `data_url`: its speaker names (the audio objective's classes), or the mean face
    parameters of its first `MEAN_FACE_CLIPS` clips (where a fresh animator starts). The augmentation
    config travels in it (key "augment") to the workers' loader transforms."""
    extra = {"augment": augment.model_dump(mode="json")} if augment is not None else {}
    if kind == "audio":
        return {"encoder": audio_encoder.model_dump(mode="json"), "features": features.model_dump(mode="json"),
                "speakers": dataset_speakers(data_url), "loss": (audio_loss or AudioLossConfig()).model_dump(mode="json"),
                **extra}
    clips = [{k: s.mm[k][: s.num_frames] for k in PARAM_KEYS}
             for s in iter_samples(data_url, MEAN_FACE_CLIPS) if s.mm is not None]
    if not clips:
        raise ReplicaError(data_url, "no samples with head-model parameters (mm.npz) to train an animator on")
    mean = MeanFaceBaseline().fit(clips).mean
    return {"animator": animator.model_dump(mode="json"), "mean_face": {k: v.tolist() for k, v in mean.items()},
            "loss": (animator_loss or AnimationLossConfig()).model_dump(mode="json"), **extra}


def build_objective(kind: Kind, model: dict, init_from: str | None = None) -> nn.Module:
    """The objective for `kind` from its model section; `init_from` is the export an animator starts from.

    Sections written before augmentation and loss weights existed (no "augment", no "loss") give the
    objective as it was: no augmentation, AAM-softmax + CPC at weight 1.
    """
    augment = AugmentConfig.model_validate(model["augment"]) if model.get("augment") else None
    if kind == "audio":
        if init_from:
            raise ReplicaError("pretrain audio", "starts from scratch; init_from is for the animator")
        return AudioObjective(AudioEncoderConfig.model_validate(model["encoder"]),
                              FeatureConfig.model_validate(model["features"]), model["speakers"],
                              AudioLossConfig.model_validate(model.get("loss") or {}), augment)
    if kind == "animator":
        if not init_from:
            raise ReplicaError("pretrain animator",
                               "needs --init-from URL (a pre-trained audio encoder's or animator's model.pt)")
        mean_face = {k: torch.tensor(v) for k, v in model["mean_face"].items()}
        return AnimatorObjective(AnimatorConfig.model_validate(model["animator"]), init_from, mean_face,
                                 AnimationLossConfig.model_validate(model.get("loss") or {}), augment)
    raise ReplicaError(f"model kind {kind!r}", "expected audio or animator")
