"""Training objectives of the audio encoder: who is speaking, and what is being said.

- **Speaker: AAM-softmax** (additive angular margin, ArcFace: Deng et al. 2019; used for speaker
  verification by ECAPA-TDNN). The embedding is classified over the training speakers with cosine
  logits, the true speaker's angle widened by a margin m, all scaled by s. It needs speaker ids
  only (no utterance grouping per batch, unlike GE2E), so it fits the loader's shuffled batches.
- **Content: CPC** (contrastive predictive coding, van den Oord et al. 2018). From the latent at
  frame t, a linear predictor per step k guesses the patch embedding of frame t + k; InfoNCE
  scores it against every other valid frame of the batch. Steps start at `lookahead + 1`, the
  first frame the encoder has not seen, so the latent must model how speech unfolds (phones,
  syllables) rather than copy its input. Both losses are `nn.Module`s with parameters of their
  own (class weights, predictors): the optimiser must include them.
- **Distillation** (`distill_loss`): a training-only linear head maps the embedding to the teacher's
  256-d space (resemblyzer's GE2E embedding of the clean window, `foundation.audio.teacher`) and
  the loss is 1 − cosine. The teacher has heard thousands of real speakers; the TTS pool has not.

`AudioLossConfig` weighs the three; a weight of 0 switches its term off (the ablations).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from datasets.config import Section
from datasets.errors import ReplicaError


class AudioLossConfig(Section):
    """Weights of the audio encoder's training terms; 0 switches a term off."""

    speaker_weight: float = Field(1.0, ge=0)
    """AAM-softmax speaker classification over the training speakers (needs ≥ 2 speakers when > 0)."""
    cpc_weight: float = Field(1.0, ge=0)
    """CPC content prediction on the latents."""
    distill_weight: float = Field(0.0, ge=0)
    """1 − cosine to resemblyzer's embedding of the clean window (the loader computes it when > 0)."""
    viseme_weight: float = Field(0.0, ge=0)
    """Cross-entropy of the viseme class spoken at each frame, read from the latents by a training-only linear
    head, on clips whose phones are known (TTS phones, shipped or recognised ones of real speech): content the
    mouth shows, learned on every voice the encoder hears rather than only while the animator trains."""

    @model_validator(mode="after")
    def _some_term(self) -> "AudioLossConfig":
        if self.speaker_weight == self.cpc_weight == self.distill_weight == self.viseme_weight == 0:
            raise ReplicaError("audio_loss weights", "all four are 0: nothing to train")
        return self


def distill_loss(pred: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean 1 − cos(pred, teacher) over windows with a teacher embedding.

    pred: [B, K] projected student embeddings (any norm); teacher: [B, K] unit-norm targets, a zero
    row where the teacher had nothing to embed (such windows are left out). Returns a scalar in [0, 2].
    """
    valid = teacher.float().norm(dim=-1) > 0.5
    if not valid.any():
        return pred.sum() * 0.0
    cos = F.cosine_similarity(pred[valid].float(), teacher[valid].float(), dim=-1)
    return (1 - cos).mean()


def speaker_vocab(names: Sequence[str]) -> dict[str, int]:
    """Speaker name → class id, ids assigned in sorted name order (stable across ranks and runs)."""
    return {name: i for i, name in enumerate(sorted(set(names)))}


def speaker_ids(names: Sequence[str], vocab: Mapping[str, int]) -> torch.Tensor:
    """Class ids [B] (int64) of a batch's `speaker` names; an unknown speaker is an error."""
    missing = sorted({n for n in names if n not in vocab})
    if missing:
        raise ReplicaError(f"speaker {missing[0]!r}", f"not in the speaker vocabulary ({len(missing)} unknown)")
    return torch.tensor([vocab[n] for n in names], dtype=torch.long)


class AAMSoftmax(nn.Module):
    """Additive angular margin softmax over `n_speakers` classes.

    margin: angle added to the true class (radians). scale: logit scale s (cosines are in [-1, 1]).
    """

    def __init__(self, n_speakers: int, embed_dim: int, margin: float = 0.2, scale: float = 30.0):
        super().__init__()
        self.margin, self.scale = margin, scale
        self.weight = nn.Parameter(torch.randn(n_speakers, embed_dim) / math.sqrt(embed_dim))

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        """embedding: [B, E] → cosine similarity to each speaker's centre [B, n_speakers] (float32)."""
        # float32 even under bf16 training: a 0.2 rad margin near cos = 1 is below bf16's resolution.
        return F.normalize(embedding.float(), dim=-1) @ F.normalize(self.weight.float(), dim=-1).T

    def forward(self, embedding: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """embedding: [B, E]; ids: [B] class ids → mean cross-entropy with margin (scalar)."""
        cos = self.logits(embedding)
        target = cos.gather(1, ids[:, None]).clamp(-1 + 1e-6, 1 - 1e-6)
        theta = torch.acos(target)
        # Past π - m the margin would wrap around and *raise* the logit; use a linear penalty there.
        with_margin = torch.where(theta + self.margin < math.pi, torch.cos(theta + self.margin),
                                  target - self.margin * math.sin(self.margin))
        cos = cos.scatter(1, ids[:, None], with_margin)
        return F.cross_entropy(self.scale * cos, ids)


class CPCLoss(nn.Module):
    """InfoNCE of predicting patch embeddings `first_step … first_step + steps - 1` frames ahead.

    dim: latent size D. temperature: of the cosine logits.
    """

    def __init__(self, dim: int, first_step: int, steps: int = 4, temperature: float = 0.1):
        super().__init__()
        self.first_step, self.temperature = first_step, temperature
        self.predictors = nn.ModuleList(nn.Linear(dim, dim) for _ in range(steps))

    def forward(self, latent: torch.Tensor, local: torch.Tensor, latent_len: torch.Tensor) -> torch.Tensor:
        """latent, local: [B, F, D] (encoder context and its patch embeddings); latent_len: [B].

        Returns the InfoNCE loss averaged over steps (scalar); chance level is ln(number of valid frames).
        """
        b, f, _ = latent.shape
        valid = torch.arange(f, device=latent.device)[None, :] < latent_len[:, None]  # [B, F]
        # Scores in float32 even under bf16 training: logits scaled by 1/temperature need the precision.
        candidates = F.normalize(local[valid].float(), dim=-1)  # [M, D]: positives and negatives alike
        index = torch.full((b, f), -1, dtype=torch.long, device=latent.device)
        index[valid] = torch.arange(candidates.shape[0], device=latent.device)
        losses = []
        for i, predictor in enumerate(self.predictors):
            k = self.first_step + i
            if k >= f:
                break
            target = index[:, k:]  # [B, F-k] candidate row of frame t + k
            has_target = target >= 0
            if not has_target.any():
                break
            pred = F.normalize(predictor(latent[:, : f - k][has_target]).float(), dim=-1)
            logits = pred @ candidates.T / self.temperature
            losses.append(F.cross_entropy(logits, target[has_target]))
        if not losses:
            raise ReplicaError(f"latents of {f} frames", f"too short to predict {self.first_step} frames ahead")
        return torch.stack(losses).mean()
