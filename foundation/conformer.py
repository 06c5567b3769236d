"""A conformer stack with bounded look-ahead, shared by the audio encoder and the animator.

Each block is the Conformer of Gulati et al. (2020) — half-step feed-forward, self-attention,
convolution module, half-step feed-forward — with two changes that let it stream:

- **attention is banded**: frame i attends to frames j with i - left_context ≤ j ≤ i + lookahead
  in the *first* block, and i - left_context ≤ j ≤ i in later blocks, so the stack's total
  look-ahead is exactly `lookahead` frames however deep it is;
- **the depthwise convolution is causal** (left padding only) and normalised with LayerNorm
  rather than BatchNorm, so a frame's output does not depend on the batch or on the future.

Positions enter through rotary embeddings (RoPE, Su et al. 2021) on queries and keys, which make
attention scores depend only on j - i: running the stack on a window of the sequence gives the
same outputs as on the whole sequence wherever the window holds the frame's receptive field.
`stream` uses exactly that to process a sequence chunk by chunk.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn


def rotary(x: torch.Tensor) -> torch.Tensor:
    """Rotate feature pairs of x [B, H, N, Dh] by angles proportional to the frame index (RoPE)."""
    n, dh = x.shape[-2], x.shape[-1]
    inv_freq = 10000.0 ** (-torch.arange(0, dh, 2, device=x.device, dtype=torch.float32) / dh)
    angles = torch.arange(n, device=x.device, dtype=torch.float32)[:, None] * inv_freq  # [N, Dh/2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


def band_mask(n: int, left: int | None, right: int, device: torch.device) -> torch.Tensor:
    """[N, N] bool, True where frame i may attend to frame j: i - left ≤ j ≤ i + right."""
    offset = torch.arange(n, device=device)[None, :] - torch.arange(n, device=device)[:, None]  # j - i
    allowed = offset <= right
    if left is not None:
        allowed &= offset >= -left
    return allowed


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: int, dropout: float):
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, mult * dim), nn.SiLU(), nn.Dropout(dropout),
                         nn.Linear(mult * dim, dim), nn.Dropout(dropout))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads or (dim // heads) % 2:
            raise ValueError(f"dim {dim} must split into {heads} heads of even size")
        self.heads, self.dropout = heads, dropout
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(rotary(q), rotary(k), v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class CausalConvModule(nn.Module):
    """Pointwise conv + GLU, causal depthwise conv over `kernel` frames (this and the past), pointwise conv."""

    def __init__(self, dim: int, kernel: int, dropout: float):
        super().__init__()
        self.kernel = kernel
        self.norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Linear(dim, 2 * dim)
        self.depthwise = nn.Conv1d(dim, dim, kernel, groups=dim)
        self.depth_norm = nn.LayerNorm(dim)
        self.pointwise_out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.glu(self.pointwise_in(self.norm(x)), dim=-1).transpose(1, 2)  # [B, D, N]
        y = self.depthwise(F.pad(y, (self.kernel - 1, 0))).transpose(1, 2)
        return self.drop(self.pointwise_out(F.silu(self.depth_norm(y))))


class ConformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ff_mult: int, conv_kernel: int, dropout: float):
        super().__init__()
        self.ff1 = FeedForward(dim, ff_mult, dropout)
        self.attn = SelfAttention(dim, heads, dropout)
        self.conv = CausalConvModule(dim, conv_kernel, dropout)
        self.ff2 = FeedForward(dim, ff_mult, dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn(x, mask)
        x = x + self.conv(x)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)


class Conformer(nn.Module):
    """A stack of conformer blocks with look-ahead bounded to `lookahead` frames in total.

    dim: feature size D. left_context: frames each block may attend back (None: all the past).
    """

    def __init__(self, dim: int, layers: int, heads: int, ff_mult: int, conv_kernel: int,
                 lookahead: int, left_context: int | None, dropout: float):
        super().__init__()
        self.lookahead, self.left_context, self.conv_kernel = lookahead, left_context, conv_kernel
        self.blocks = nn.ModuleList(ConformerBlock(dim, heads, ff_mult, conv_kernel, dropout) for _ in range(layers))

    @property
    def receptive_left(self) -> int | None:
        """Past frames an output depends on (None: unbounded): attention plus convolution, per block."""
        if self.left_context is None:
            return None
        return len(self.blocks) * (self.left_context + self.conv_kernel - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, N, D] → [B, N, D]; output i depends on inputs [i - receptive_left, i + lookahead]."""
        n = x.shape[1]
        first = band_mask(n, self.left_context, self.lookahead, x.device)
        later = band_mask(n, self.left_context, 0, x.device)
        for i, block in enumerate(self.blocks):
            x = block(x, first if i == 0 else later)
        return x


STREAM_HISTORY = 250
"""Past frames `stream` keeps when a model attends to all of its past (250 = 10 s of 25 Hz latents).

Bounding it keeps memory and per-chunk cost flat however long the stream runs; outputs then differ from
a whole-sequence run only where a frame's whole-run output drew on frames more than this far back
(exact for streams shorter than this; `tests/foundation/test_audio.py` measures the drift beyond)."""


def stream(fn: Callable[[torch.Tensor], torch.Tensor], chunks: Iterable[torch.Tensor],
           left: int | None, lookahead: int, history: int = STREAM_HISTORY) -> Iterator[torch.Tensor]:
    """Apply a frame-aligned sequence function chunk by chunk, yielding outputs as soon as they are final.

    fn: maps [B, N, ...] → [B, N, ...] such that output i depends on inputs [i - left, i + lookahead]
    (left None: on the whole past, of which the last `history` frames are kept). chunks: [B, n_k, ...]
    pieces of the input in time order, any sizes. Yields [B, m_k, ...]: output frames whose look-ahead has
    arrived; the last `lookahead` frames come once the input ends, computed, as in the full sequence,
    without future frames. Concatenated, the yields equal `fn(torch.cat(chunks, 1))` up to float rounding
    (with left None: for streams up to `history` frames long). Each step recomputes `fn` over the frames
    still needed (at most left + chunk + lookahead), so memory and latency are bounded by the chunk and
    `lookahead`, not by the length of the stream.
    """
    keep = history if left is None else left
    buffered: torch.Tensor | None = None
    offset = emitted = 0  # absolute index of buffered[:, 0]; outputs handed out so far
    for chunk in chunks:
        buffered = chunk if buffered is None else torch.cat((buffered, chunk), dim=1)
        ready = offset + buffered.shape[1] - lookahead
        if ready > emitted:
            yield fn(buffered)[:, emitted - offset: ready - offset]
            emitted = ready
            if emitted - keep > offset:
                buffered, offset = buffered[:, emitted - keep - offset:], emitted - keep
    if buffered is not None and offset + buffered.shape[1] > emitted:
        yield fn(buffered)[:, emitted - offset:]
