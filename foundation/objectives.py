"""What each foundation model is trained to do: model + loss in one `nn.Module` for DeepSpeed.

An objective takes a loader batch (with `mel` from the feature transform) and returns the loss
and a few scalar metrics; `eval_sums` gives held-out (sum, count) pairs that the trainer averages
across ranks; `export` returns the plain inference payload (`model.pt`: kind, config, state dict)
that loads without DeepSpeed or Ray.

- `AudioObjective`: `AudioEncoder` + AAM-softmax speaker loss + CPC content loss.
- `AnimatorObjective`: a frozen pre-trained `AudioEncoder` feeding an `Animator`, with coefficient,
  mouth-weighted vertex and velocity losses against the head-model parameters in `mm.npz`.
"""

from __future__ import annotations

import io

import torch
from torch import nn

from datasets import storage
from datasets.errors import ReplicaError
from foundation.animation.losses import AnimationLossConfig, animation_loss
from foundation.animation.model import POSE_KEYS, Animator, AnimatorConfig
from foundation.audio.encoder import AudioEncoder, AudioEncoderConfig
from foundation.audio.features import BatchFeatures, FeatureConfig
from foundation.audio.losses import AAMSoftmax, CPCLoss, speaker_ids, speaker_vocab
from foundation.head import default_head_model


def load_exported(url: str) -> dict:
    """Read a `model.pt` export (kind, config, state_dict) from storage."""
    try:
        payload = torch.load(io.BytesIO(storage.read_bytes(url)), map_location="cpu", weights_only=False)
    except ReplicaError:
        raise
    except Exception as err:  # noqa: BLE001 - a corrupt file is a user error
        raise ReplicaError(url, f"not a replica model export ({type(err).__name__})") from err
    if not isinstance(payload, dict) or "kind" not in payload or "state_dict" not in payload:
        raise ReplicaError(url, "not a replica model export (no kind/state_dict)")
    return payload


def load_audio_encoder(url: str) -> tuple[AudioEncoder, FeatureConfig]:
    """The audio encoder of an `audio` export, in eval mode, with its feature config."""
    payload = load_exported(url)
    if payload["kind"] != "audio":
        raise ReplicaError(url, f"is a {payload['kind']} model, not an audio encoder")
    encoder = AudioEncoder(AudioEncoderConfig.model_validate(payload["config"]["encoder"]))
    encoder.load_state_dict(payload["state_dict"])
    return encoder.eval(), FeatureConfig.model_validate(payload["config"]["features"])


class AudioObjective(nn.Module):
    """Speaker (AAM-softmax over training speakers) + content (CPC) objective of the audio encoder."""

    kind = "audio"

    def __init__(self, encoder: AudioEncoderConfig, features: FeatureConfig, speakers: list[str],
                 cpc_weight: float = 1.0):
        super().__init__()
        if len(set(speakers)) < 2:
            raise ReplicaError("training data", f"needs at least 2 speakers for the speaker objective, has {len(set(speakers))}")
        self.features = features
        self.vocab = speaker_vocab(speakers)
        self.encoder = AudioEncoder(encoder)
        self.speaker_loss = AAMSoftmax(len(self.vocab), encoder.embed_dim)
        self.cpc = CPCLoss(encoder.dim, first_step=encoder.lookahead + 1)
        self.cpc_weight = cpc_weight

    def transform(self) -> BatchFeatures:
        return BatchFeatures(self.features)

    def _losses(self, batch: dict):
        out = self.encoder(batch["mel"], batch["mel_len"])
        ids = speaker_ids(batch["speaker"], self.vocab).to(out.embedding.device)
        speaker = self.speaker_loss(out.embedding, ids)
        content = self.cpc(out.latent, out.local, out.latent_len)
        with torch.no_grad():
            accuracy = (self.speaker_loss.logits(out.embedding).argmax(-1) == ids).float().mean()
        return speaker, content, accuracy

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        speaker, content, accuracy = self._losses(batch)
        loss = speaker + self.cpc_weight * content
        return loss, {"speaker_loss": speaker.detach(), "cpc_loss": content.detach(), "speaker_acc": accuracy}

    def eval_sums(self, batch: dict) -> dict[str, tuple[float, int]]:
        """Held-out CPC loss, and speaker accuracy on held-out clips of training speakers."""
        out = self.encoder(batch["mel"], batch["mel_len"])
        n = len(batch["keys"])
        sums = {"cpc_loss": (float(self.cpc(out.latent, out.local, out.latent_len)) * n, n)}
        known = [i for i, s in enumerate(batch["speaker"]) if s in self.vocab]
        if known:
            ids = speaker_ids([batch["speaker"][i] for i in known], self.vocab).to(out.embedding.device)
            hits = (self.speaker_loss.logits(out.embedding[known]).argmax(-1) == ids).sum()
            sums["speaker_acc"] = (float(hits), len(known))
        return sums

    def export(self) -> dict:
        return {"kind": self.kind,
                "config": {"encoder": self.encoder.cfg.model_dump(mode="json"),
                           "features": self.features.model_dump(mode="json")},
                "state_dict": self.encoder.state_dict(), "speakers": sorted(self.vocab)}


class AnimatorObjective(nn.Module):
    """A frozen audio encoder feeding the animator, trained against head-model parameters."""

    kind = "animator"

    def __init__(self, animator: AnimatorConfig, encoder_url: str, loss: AnimationLossConfig | None = None):
        super().__init__()
        encoder, self.features = load_audio_encoder(encoder_url)
        if encoder.cfg.dim != animator.latent_dim:
            raise ReplicaError(f"animator.latent_dim={animator.latent_dim}",
                               f"must equal the audio encoder's dim ({encoder.cfg.dim}) from {encoder_url}")
        if animator.style_dim not in (0, encoder.cfg.embed_dim):
            raise ReplicaError(f"animator.style_dim={animator.style_dim}",
                               f"must be 0 or the encoder's embed_dim ({encoder.cfg.embed_dim})")
        self.encoder_url = encoder_url
        # Fine-tuning the pre-trained encoder with the animator (as FaceFormer fine-tunes wav2vec 2.0)
        # lets the latents learn the phonetic detail lip shapes need; frozen, one encoder serves all.
        self.encoder = encoder.requires_grad_(animator.finetune_encoder)
        self.animator = Animator(animator)
        self.loss_cfg = loss or AnimationLossConfig()
        self.head = default_head_model()  # poses predicted and true parameters for the vertex loss

    def train(self, mode: bool = True) -> "AnimatorObjective":
        super().train(mode)
        self.encoder.eval()  # keep its pre-trained normalisation statistics, and no dropout, even when fine-tuned
        return self

    def transform(self) -> BatchFeatures:
        return BatchFeatures(self.features)

    def predict(self, batch: dict) -> dict[str, torch.Tensor]:
        with torch.set_grad_enabled(self.animator.cfg.finetune_encoder and torch.is_grad_enabled()):
            audio = self.encoder(batch["mel"], batch["mel_len"])
        style = audio.embedding if self.animator.cfg.style_dim else None
        pred = self.animator(audio.latent, style)
        frames = batch["mm"]["expr"].shape[1]
        return {k: v[:, :frames] for k, v in pred.items()}

    def _targets(self, batch: dict) -> dict[str, torch.Tensor]:
        if "mm" not in batch:
            raise ReplicaError(f"batch {batch['keys'][:2]}", "animator training needs samples with mm.npz")
        return {k: batch["mm"][k] for k in ("expr", *POSE_KEYS, "shape") if k in batch["mm"]}

    def _terms(self, batch: dict) -> dict[str, torch.Tensor]:
        return animation_loss(self.predict(batch), self._targets(batch), batch["frames_len"], self.loss_cfg, self.head)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = self._terms(batch)
        return terms["total"], {k: v.detach() for k, v in terms.items() if k != "total"}

    def eval_sums(self, batch: dict) -> dict[str, tuple[float, int]]:
        terms = self._terms(batch)
        n = len(batch["keys"])
        return {k: (float(v) * n, n) for k, v in terms.items()}

    def export(self) -> dict:
        return {"kind": self.kind,
                "config": {"animator": self.animator.cfg.model_dump(mode="json"),
                           "features": self.features.model_dump(mode="json"), "encoder_url": self.encoder_url},
                "state_dict": self.animator.state_dict(),
                "encoder_state_dict": self.encoder.state_dict(),
                "encoder_config": self.encoder.cfg.model_dump(mode="json")}


def build_objective(kind: str, model: dict, init_from: str | None = None) -> nn.Module:
    """The objective for `kind` from its serialised model section (+ data info / encoder URL)."""
    if kind == "audio":
        return AudioObjective(AudioEncoderConfig.model_validate(model["encoder"]),
                              FeatureConfig.model_validate(model["features"]), model["speakers"])
    if kind == "animator":
        if not init_from:
            raise ReplicaError("pretrain animator", "needs --audio-encoder URL (a pre-trained audio model.pt)")
        return AnimatorObjective(AnimatorConfig.model_validate(model["animator"]), init_from)
    raise ReplicaError(f"model kind {kind!r}", "expected audio or animator")
