"""The animator: audio latents (25 Hz) → per-frame face parameters of the morphable head model.

    latent [B, F, D] (AudioEncoder output)  (+ style [B, E], e.g. the speaker embedding)
      → linear to the model width, plus a linear projection of the style, broadcast over frames
      → conformer with bounded look-ahead (foundation.conformer)
      → heads: expr (sigmoid, [0, 1]), jaw, neck, rot (axis-angle radians), trans (metres, optional)

The animator reads latents, never mel: the encoder is pre-trained first, then by default fine-tuned
together with the animator (`finetune_encoder`; frozen when false, so one encoder can serve every
animator), and an animator ships with the encoder it was trained with. The tiny CPU configuration is
simply a tiny encoder plus a tiny animator. Its look-ahead adds to the encoder's: streaming latency is
`encoder.lookahead + animator.lookahead` video frames (5 × 40 ms = 200 ms with the defaults).
"""

from __future__ import annotations

from typing import Iterable, Iterator

import torch
from pydantic import Field
from torch import nn

from datasets.config import Section
from datasets.errors import ReplicaError
from foundation import conformer
from foundation.conformer import Conformer
from datasets.schema import N_EXPR

POSE_KEYS = ("jaw", "neck", "rot", "trans")
"""Per-frame 3-vectors the animator predicts besides `expr`."""


class AnimatorConfig(Section):
    """Animator sizes. Defaults are the tiny CPU model (≈120k parameters with latent_dim 64).

    The cluster preset (`AnimatorConfig.cluster()`): latent_dim 384, style_dim 256, dim 256,
    layers 6, heads 4, ff_mult 4, conv_kernel 9 — ≈ 8M parameters.
    """

    latent_dim: int = Field(64, ge=1)
    """Size D of the audio latents (the encoder's `dim`)."""
    style_dim: int = Field(0, ge=0)
    """Size E of the style/speaker embedding; 0: no style input."""
    dim: int = Field(64, ge=8)
    """Model width."""
    layers: int = Field(2, ge=1)
    """Conformer blocks."""
    heads: int = Field(4, ge=1)
    """Attention heads (dim / heads must be even)."""
    ff_mult: int = Field(2, ge=1)
    """Feed-forward hidden size as a multiple of dim."""
    conv_kernel: int = Field(5, ge=1)
    """Causal depthwise convolution width in frames."""
    lookahead: int = Field(3, ge=0)
    """Future frames the animator may see in total (3 = 120 ms; mouths move ahead of the sound)."""
    left_context: int | None = Field(None, ge=1)
    """Past frames each block attends to (None: all)."""
    finetune_encoder: bool = True
    """Train the audio encoder together with the animator (False: keep the pre-trained encoder frozen)."""
    predict_trans: bool = False
    """Predict head translation too (False: trans is zero; speech-driven translation is mostly noise)."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout inside the conformer."""

    @classmethod
    def cluster(cls) -> "AnimatorConfig":
        """The GPU pre-training size, reading the cluster audio encoder (≈8M parameters)."""
        return cls(latent_dim=384, style_dim=256, dim=256, layers=6, heads=4, ff_mult=4, conv_kernel=9)


class Animator(nn.Module):
    def __init__(self, cfg: AnimatorConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or AnimatorConfig()
        self.input = nn.Linear(cfg.latent_dim, cfg.dim)
        self.style = nn.Linear(cfg.style_dim, cfg.dim, bias=False) if cfg.style_dim else None
        self.conformer = Conformer(cfg.dim, cfg.layers, cfg.heads, cfg.ff_mult, cfg.conv_kernel,
                                   cfg.lookahead, cfg.left_context, cfg.dropout)
        self.expr = nn.Linear(cfg.dim, N_EXPR)
        self.pose = nn.ModuleDict({k: nn.Linear(cfg.dim, 3) for k in POSE_KEYS if k != "trans" or cfg.predict_trans})
        for head in (self.expr, *self.pose.values()):
            nn.init.zeros_(head.weight)  # start at the output bias: the mean face, once `init_mean` ran

    @torch.no_grad()
    def init_mean(self, mean: dict[str, torch.Tensor]) -> None:
        """Start predictions at mean parameters: expr [52] in (0, 1), jaw/neck/rot/trans [3]."""
        self.expr.bias.copy_(torch.logit(mean["expr"].clamp(1e-3, 1 - 1e-3)))
        for key, head in self.pose.items():
            head.bias.copy_(mean[key])

    def _check(self, latent: torch.Tensor, style: torch.Tensor | None) -> None:
        if latent.ndim != 3 or latent.shape[-1] != self.cfg.latent_dim:
            raise ReplicaError(f"latent {list(latent.shape)}", f"expected [B, F, {self.cfg.latent_dim}]")
        if (style is None) != (self.style is None):
            given = "missing" if style is None else "given"
            raise ReplicaError("animator style", f"style_dim={self.cfg.style_dim} but style {given}")
        if style is not None and tuple(style.shape) != (latent.shape[0], self.cfg.style_dim):
            raise ReplicaError(f"style {list(style.shape)}", f"expected [{latent.shape[0]}, {self.cfg.style_dim}]")

    def forward(self, latent: torch.Tensor, style: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """latent: [B, F, D] audio latents at 25 Hz; style: [B, E] or None (per `style_dim`).

        Returns expr [B, F, 52] in [0, 1] and jaw, neck, rot [B, F, 3] axis-angle radians,
        trans [B, F, 3] metres (zeros unless `predict_trans`). Frame f depends on latents up to
        f + lookahead.
        """
        self._check(latent, style)
        x = self.input(latent)
        if self.style is not None:
            x = x + self.style(style)[:, None, :]
        h = self.conformer(x)
        out = {"expr": torch.sigmoid(self.expr(h))}
        for key in POSE_KEYS:
            out[key] = self.pose[key](h) if key in self.pose else h.new_zeros(*h.shape[:2], 3)
        return out

    def stream(self, latent_chunks: Iterable[torch.Tensor],
               style: torch.Tensor | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """Parameters for a latent stream, chunk by chunk (eval mode).

        latent_chunks: [B, n_k, D] pieces in time order; style: [B, E] fixed for the stream.
        Yields dicts like `forward`'s for the frames whose look-ahead has arrived; concatenated
        they equal `self(torch.cat(latent_chunks, 1), style)`.
        """
        keys = ("expr", *POSE_KEYS)

        def packed(latent: torch.Tensor) -> torch.Tensor:
            out = self(latent, style)
            return torch.cat([out[k] for k in keys], dim=-1)

        sizes = [N_EXPR, 3, 3, 3, 3]
        for frames in conformer.stream(packed, latent_chunks, self.conformer.receptive_left, self.cfg.lookahead):
            yield dict(zip(keys, frames.split(sizes, dim=-1)))
