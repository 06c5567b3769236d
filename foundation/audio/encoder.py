"""The audio encoder: log-mel → a content latent per video frame (25 Hz) and a speaker embedding.

    mel [B, N, 80] (100 Hz)
      → patch embedding: the 4 mel frames of each video frame → D        (a stride-4, kernel-4 conv)
      → conformer with bounded look-ahead (foundation.conformer)          latent [B, N/4, D]
      → attentive statistics pooling over valid frames → linear → L2 norm  embedding [B, E]

Because the subsampling kernel equals its stride, latent f sees exactly the audio of video frame f
(samples [640 f, 640 (f+1))) plus what the conformer gathers: the past, and `lookahead` frames of
future. So the encoder streams (`stream`) with a latency of `lookahead` video frames, and content
prediction (`losses.CPCLoss`) can start at `lookahead + 1` frames ahead without the answer leaking.

The encoder is trained with a speaker objective on the embedding (AAM-softmax) and a content
objective on the latent (CPC); see `foundation.audio.losses`. The animator reads the latents, and
by default fine-tunes the encoder with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from pydantic import Field

from datasets.config import Section
from datasets.errors import ReplicaError
from foundation import conformer
from foundation.conformer import Conformer
from torch import nn

MEL_PER_FRAME = 4
"""Mel frames (10 ms) per latent frame (40 ms, one 25 fps video frame)."""


class AudioEncoderConfig(Section):
    """Audio encoder sizes. Defaults are the tiny CPU model (≈170k parameters).

    The cluster preset (`AudioEncoderConfig.cluster()`): dim 384, layers 12, heads 6, ff_mult 4,
    conv_kernel 15, embed_dim 256 — ≈ 41M parameters.
    """

    n_mels: int = Field(80, ge=8)
    """Mel channels of the input (must match `FeatureConfig.n_mels`)."""
    dim: int = Field(64, ge=8)
    """Latent size D per frame."""
    layers: int = Field(2, ge=1)
    """Conformer blocks."""
    heads: int = Field(4, ge=1)
    """Attention heads (dim / heads must be even, for rotary embeddings)."""
    ff_mult: int = Field(2, ge=1)
    """Feed-forward hidden size as a multiple of dim."""
    conv_kernel: int = Field(7, ge=1)
    """Causal depthwise convolution width in latent frames (40 ms each)."""
    lookahead: int = Field(2, ge=0)
    """Future latent frames the encoder may see in total (2 = 80 ms of latency when streaming)."""
    left_context: int | None = Field(None, ge=1)
    """Past frames each block attends to (None: all; set it to bound streaming memory)."""
    embed_dim: int = Field(64, ge=2)
    """Speaker embedding size E."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout in feed-forward, attention and convolution modules."""

    @classmethod
    def cluster(cls) -> "AudioEncoderConfig":
        """The GPU pre-training size (≈41M parameters)."""
        return cls(dim=384, layers=12, heads=6, ff_mult=4, conv_kernel=15, embed_dim=256)


@dataclass
class EncoderOutput:
    latent: torch.Tensor
    """[B, F, D] content latent per video frame (25 Hz), F = N // 4."""
    local: torch.Tensor
    """[B, F, D] patch embeddings before the conformer (the targets of CPC)."""
    embedding: torch.Tensor
    """[B, E] speaker embedding, unit L2 norm."""
    latent_len: torch.Tensor
    """[B] valid latent frames (from mel_len; all F when mel_len was not given)."""


class AttentiveStatsPooling(nn.Module):
    """Attention-weighted mean and standard deviation over valid frames (Okabe et al. 2018)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x: [B, F, D], valid: [B, F] bool → [B, 2D] (mean, std)."""
        logits = self.score(x).masked_fill(~valid[..., None], float("-inf"))
        w = logits.softmax(dim=1)
        mean = (w * x).sum(1)
        var = (w * x * x).sum(1) - mean * mean
        return torch.cat((mean, var.clamp_min(1e-6).sqrt()), dim=-1)


class AudioEncoder(nn.Module):
    def __init__(self, cfg: AudioEncoderConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or AudioEncoderConfig()
        # Log-mel levels vary by tens of nats between recordings; a per-channel normalisation with
        # running statistics keeps each frame's output independent of the rest of the sequence.
        self.input_norm = nn.BatchNorm1d(cfg.n_mels)
        self.patch = nn.Sequential(nn.Linear(MEL_PER_FRAME * cfg.n_mels, cfg.dim), nn.GELU(),
                                   nn.Linear(cfg.dim, cfg.dim))
        self.conformer = Conformer(cfg.dim, cfg.layers, cfg.heads, cfg.ff_mult, cfg.conv_kernel,
                                   cfg.lookahead, cfg.left_context, cfg.dropout)
        self.pool = AttentiveStatsPooling(cfg.dim, max(cfg.dim // 2, 8))
        self.embed = nn.Linear(2 * cfg.dim, cfg.embed_dim)

    def frames(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mel [B, N, n_mels] → (local [B, N//4, D], latent [B, N//4, D]); a trailing partial frame is dropped."""
        if mel.ndim != 3 or mel.shape[-1] != self.cfg.n_mels:
            raise ReplicaError(f"mel {list(mel.shape)}", f"expected [B, N, {self.cfg.n_mels}]")
        b, n, _ = mel.shape
        f = n // MEL_PER_FRAME
        if f == 0:
            raise ReplicaError(f"mel of {n} frames", f"shorter than one video frame ({MEL_PER_FRAME} frames)")
        mel = self.input_norm(mel[:, : f * MEL_PER_FRAME].transpose(1, 2)).transpose(1, 2)
        local = self.patch(mel.reshape(b, f, MEL_PER_FRAME * self.cfg.n_mels))
        return local, self.conformer(local)

    def forward(self, mel: torch.Tensor, mel_len: torch.Tensor | None = None) -> EncoderOutput:
        """mel: [B, N, n_mels] log-mel at 100 Hz; mel_len: [B] valid mel frames (None: all).

        Padding frames (past mel_len) are excluded from the speaker embedding; their latents are
        still computed (they see zero-padded silence, as a stream past its end would).
        """
        local, latent = self.frames(mel)
        f = latent.shape[1]
        if mel_len is None:
            latent_len = torch.full((mel.shape[0],), f, device=mel.device)
        else:
            latent_len = torch.div(mel_len.to(mel.device), MEL_PER_FRAME, rounding_mode="floor").clamp(1, f)
        valid = torch.arange(f, device=mel.device)[None, :] < latent_len[:, None]
        embedding = F.normalize(self.embed(self.pool(latent, valid)), dim=-1)
        return EncoderOutput(latent=latent, local=local, embedding=embedding, latent_len=latent_len)

    @property
    def receptive_left(self) -> int | None:
        """Past latent frames a latent depends on (None: unbounded)."""
        return self.conformer.receptive_left

    def stream(self, mel_chunks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Latents for a mel stream, chunk by chunk (eval mode).

        mel_chunks: [B, n_k, n_mels] pieces, each n_k a multiple of 4 (whole video frames).
        Yields [B, m_k, D] latents as soon as their look-ahead has arrived; concatenated they equal
        `self(torch.cat(mel_chunks, 1)).latent`.
        """
        def patches():
            for chunk in mel_chunks:
                if chunk.shape[1] % MEL_PER_FRAME:
                    raise ReplicaError(f"mel chunk of {chunk.shape[1]} frames",
                                       "must hold whole video frames (a multiple of 4)")
                yield chunk.reshape(chunk.shape[0], chunk.shape[1] // MEL_PER_FRAME, -1)

        def latents(packed: torch.Tensor) -> torch.Tensor:
            return self.frames(packed.reshape(packed.shape[0], -1, self.cfg.n_mels))[1]

        return conformer.stream(latents, patches(), self.receptive_left, self.cfg.lookahead)
