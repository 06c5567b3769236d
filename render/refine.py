"""The 2D GAN refiner: splat render (+ the previous output frame) → final frame.

Splatting a few thousand Gaussians loses fine detail and can shimmer from frame to frame. A small U-Net
(`Refiner`) adds a residual to each splat render, looking at the previous *output* frame too, so it can keep
consecutive frames consistent. It is trained per avatar, like pix2pixHD/vid2vid, against a PatchGAN
discriminator (`PatchDiscriminator`, conditioned on the splat render) with

    L1(out, truth) + λ_adv · hinge/LSGAN + λ_fm · feature matching + λ_temporal · |Δout − Δtruth|

where Δ is the change between consecutive frames: the temporal term penalises flicker the truth lacks.
The last layer starts at zero, so an untrained refiner passes the splat render through unchanged.
Frames are [F, H, W, 3] in [0, 1] at the interface, channels-first inside.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from datasets.config import Section
from datasets.errors import ReplicaError
from datasets.progress import progress_bar


class RefineConfig(Section):
    """The GAN refiner's size and training schedule."""

    enabled: bool = True
    """Train the refiner and apply it when rendering; off renders the splats as they are."""
    keep: Literal["if_better", "always"] = "if_better"
    """if_better: the avatar keeps its trained refiner only when the held-out frames come out at least as close to
    the video refined as not (PSNR); a refiner that makes them worse is dropped (and the verdict recorded in the
    avatar's quality JSON), so renders never pay for it. always: keep it regardless."""
    channels: int = Field(32, ge=4)
    """Feature channels at the U-Net's full resolution (doubled per level)."""
    levels: int = Field(3, ge=1, le=6)
    """Down/up-sampling levels of the U-Net (frames are padded to a multiple of 2^levels)."""
    disc_channels: int = Field(32, ge=4)
    """Feature channels of the PatchGAN discriminator's first layer."""
    iterations: int = Field(3000, ge=0)
    """Optimisation steps (one batch of consecutive-frame pairs each)."""
    batch_size: int = Field(4, ge=1)
    """Frame pairs per step."""
    lr: float = Field(2e-4, gt=0)
    """Adam learning rate of the generator and the discriminator."""
    lambda_adv: float = Field(0.01, ge=0)
    """Weight of the adversarial term."""
    lambda_fm: float = Field(1.0, ge=0)
    """Weight of discriminator feature matching (L1 between features of truth and output)."""
    lambda_temporal: float = Field(1.0, ge=0)
    """Weight of |(out_t − out_t−1) − (truth_t − truth_t−1)|, against flicker."""
    adversarial: Literal["hinge", "lsgan"] = "hinge"
    """GAN objective."""
    pretrained: str | None = None
    """URL of an avatar file whose refiner is the starting point (None: start from identity)."""
    seed: int = 0
    """Seed of initial weights and batch sampling."""


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(c_out, c_out, 3, padding=1),
                         nn.LeakyReLU(0.2))


class Refiner(nn.Module):
    """U-Net generator: (splat render, previous output) → refined frame (render + learned residual)."""

    def __init__(self, config: RefineConfig):
        super().__init__()
        self.config = config
        widths = [config.channels * 2**level for level in range(config.levels + 1)]
        self.encoders = nn.ModuleList([_block(6, widths[0])] + [_block(widths[i], widths[i + 1])
                                                               for i in range(config.levels)])
        self.decoders = nn.ModuleList([_block(widths[i + 1] + widths[i], widths[i]) for i in range(config.levels)])
        self.head = nn.Conv2d(widths[0], 3, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, render: Tensor, previous: Tensor) -> Tensor:
        """Refine a batch of frames.

        Args:
            render: splat renders, RGB in [0, 1]. [B, 3, H, W]
            previous: the refiner's output for the frame before (the render itself for a first frame). [B, 3, H, W]
        Returns:
            refined frames (unclamped). [B, 3, H, W]
        """
        height, width = render.shape[-2:]
        multiple = 2**self.config.levels
        pad = (0, (-width) % multiple, 0, (-height) % multiple)
        features = F.pad(torch.cat([render, previous], dim=1) * 2.0 - 1.0, pad, mode="replicate")
        skips = []
        for level, encoder in enumerate(self.encoders):
            features = encoder(features if level == 0 else F.avg_pool2d(features, 2))
            skips.append(features)
        for level in reversed(range(self.config.levels)):
            up = F.interpolate(features, scale_factor=2.0, mode="bilinear", align_corners=False)
            features = self.decoders[level](torch.cat([up, skips[level]], dim=1))
        return render + self.head(features)[..., :height, :width]


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix): a real/fake score per ~30-pixel patch, conditioned on the splat render."""

    def __init__(self, channels: int):
        super().__init__()
        widths = [6, channels, channels * 2, channels * 4]
        self.layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1), nn.LeakyReLU(0.2))
             for i in range(3)]
        )
        self.score = nn.Conv2d(widths[-1], 1, 3, padding=1)

    def forward(self, image: Tensor, render: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Patch scores [B, 1, H/8, W/8] and the intermediate features (for feature matching).

        Args:
            image: a truth or a refined frame in [0, 1]. [B, 3, H, W]
            render: the splat render it belongs to. [B, 3, H, W]
        """
        features, hidden = torch.cat([image, render], dim=1) * 2.0 - 1.0, []
        for layer in self.layers:
            features = layer(features)
            hidden.append(features)
        return self.score(features), hidden


def train_refiner(renders: Tensor, truths: Tensor, config: RefineConfig, *, init: Refiner | None = None,
                  progress: bool = True) -> tuple[Refiner, dict[str, list[float]]]:
    """Fit a refiner to consecutive (splat render, truth) frames of one person.

    Args:
        renders: the avatar's splat renders of consecutive training frames, RGB in [0, 1]. [F, H, W, 3], F >= 2
        truths: the matching video frames in [0, 1]. [F, H, W, 3]
        config: sizes and schedule.
        init: a refiner to start from (a copy is trained), else a fresh one that starts as the identity.
        progress: show a tqdm bar.
    Returns:
        the trained refiner (on the renders' device) and its log: "generator", "discriminator", "l1",
        "temporal" per iteration.
    """
    if renders.shape != truths.shape or renders.ndim != 4 or renders.shape[0] < 2 or renders.shape[-1] != 3:
        raise ReplicaError("train_refiner", f"needs renders and truths [F>=2, H, W, 3] of one shape, got "
                           f"{list(renders.shape)} and {list(truths.shape)}")
    torch.manual_seed(config.seed)
    device = renders.device
    generator = Refiner(config).to(device)
    if init is not None:
        generator.load_state_dict(init.state_dict())
    disc = PatchDiscriminator(config.disc_channels).to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(0.5, 0.999))
    renders_cf, truths_cf = renders.permute(0, 3, 1, 2), truths.permute(0, 3, 1, 2)
    log: dict[str, list[float]] = {"generator": [], "discriminator": [], "l1": [], "temporal": []}
    for _ in progress_bar(range(config.iterations), desc="refiner", disable=not progress):
        t = torch.randint(1, renders.shape[0], (config.batch_size,), device=device)
        render_prev, render_now, truth_prev, truth_now = renders_cf[t - 1], renders_cf[t], truths_cf[t - 1], truths_cf[t]
        # The previous output is made the way inference makes it, so the input at time t is what it will see.
        out_prev = generator(render_prev, render_prev)
        out_now = generator(render_now, out_prev.detach().clamp(0.0, 1.0))

        real_score, real_feats = disc(truth_now, render_now)
        fake_score, _ = disc(out_now.detach(), render_now)
        d_loss = _disc_loss(real_score, fake_score, config.adversarial)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        fake_score, fake_feats = disc(out_now, render_now)
        adv = -fake_score.mean() if config.adversarial == "hinge" else ((fake_score - 1) ** 2).mean()
        matching = sum((f - r.detach()).abs().mean() for f, r in zip(fake_feats, real_feats)) / len(fake_feats)
        l1 = (out_now - truth_now).abs().mean() + (out_prev - truth_prev).abs().mean()
        temporal = ((out_now - out_prev) - (truth_now - truth_prev)).abs().mean()
        g_loss = l1 + config.lambda_adv * adv + config.lambda_fm * matching + config.lambda_temporal * temporal
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for key, value in (("generator", g_loss), ("discriminator", d_loss), ("l1", l1), ("temporal", temporal)):
            log[key].append(float(value.detach()))
    return generator.eval(), log


def _disc_loss(real: Tensor, fake: Tensor, kind: str) -> Tensor:
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    return ((real - 1) ** 2).mean() + (fake**2).mean()


@torch.no_grad()
def refine_frames(refiner: Refiner, renders: Tensor, previous: Tensor | None = None) -> Tensor:
    """Refine a sequence in order, each frame seeing the previous output (the first sees its own render).

    Args:
        refiner: a trained refiner.
        renders: splat renders in order, RGB in [0, 1]. [F, H, W, 3]
        previous: the refined frame before `renders[0]`, when continuing a sequence in chunks. [H, W, 3]
    Returns:
        refined frames, clamped to [0, 1]. [F, H, W, 3]
    """
    refiner = refiner.to(renders.device)
    previous = None if previous is None else previous.permute(2, 0, 1)[None]
    outputs = []
    for render in renders.permute(0, 3, 1, 2):
        render = render[None]
        previous = refiner(render, render if previous is None else previous).clamp(0.0, 1.0)
        outputs.append(previous[0])
    return torch.stack(outputs).permute(0, 2, 3, 1)
