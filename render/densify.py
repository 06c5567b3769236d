"""Adaptive density control for a bound avatar: clone, split and prune Gaussians under a budget.

As in 3D Gaussian Splatting (Kerbl et al. 2023) and gsplat's default strategy: Gaussians whose projected
centre keeps being pushed hard (large mean NDC gradient of `means2d`) sit where detail is missing; small
ones are cloned, large ones split in two smaller ones sampled from themselves. Nearly transparent or
oversized Gaussians are removed. Everything happens in triangle-local units (GaussianAvatars): children
inherit their parent triangle, so the avatar stays bound to the mesh. Adam's moments are carried over
for surviving Gaussians and start at zero for new ones, so densifying does not reset the optimiser.
"""

from __future__ import annotations

import math

import torch
from pytorch3d.transforms import quaternion_to_matrix
from torch import Tensor, nn

PARAMETERS = ("offsets", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest")
"""The avatar's per-Gaussian parameters, one Adam parameter group each (the group's "name")."""

SPLIT_SHRINK = 1.6
"""A split Gaussian's children are this much smaller (the 3DGS value)."""


@torch.no_grad()
def densify_and_prune(
    avatar: nn.Module,
    optimizer: torch.optim.Adam,
    grad_sum: Tensor,
    seen: Tensor,
    *,
    grow_grad: float,
    split_scale: float,
    prune_opacity: float,
    prune_scale: float,
    max_gaussians: int,
) -> dict[str, int]:
    """One density-control step on `avatar` (a `render.avatar.Avatar`), updating `optimizer` in place.

    Args:
        avatar: the avatar whose Gaussians change.
        optimizer: Adam with one group per name in `PARAMETERS` (group key "name").
        grad_sum: summed NDC-space norms of each Gaussian's `means2d` gradient since the last step. [N]
        seen: number of iterations each Gaussian was visible in since the last step. [N]
        grow_grad: mean gradient norm above which a Gaussian grows.
        split_scale: growing Gaussians larger than this (max scale, triangle units) split; others clone.
        prune_opacity: Gaussians less opaque than this are removed.
        prune_scale: Gaussians larger than this (triangle units) are removed.
        max_gaussians: growth stops at this count (the largest gradients grow first).
    Returns:
        counts: "pruned", "cloned", "split", "total" (after the step).
    """
    size = avatar.log_scales.exp().max(dim=-1).values
    prune = (torch.sigmoid(avatar.opacity_logits) < prune_opacity) | (size > prune_scale)
    mean_grad = grad_sum / seen.clamp_min(1)
    grow = (mean_grad > grow_grad) & ~prune
    room = max(0, max_gaussians - int((~prune).sum()))
    if int(grow.sum()) > room:
        ranked = torch.where(grow, mean_grad, torch.full_like(mean_grad, -1.0)).argsort(descending=True)
        grow = torch.zeros_like(grow)
        grow[ranked[:room]] = True
    split = grow & (size > split_scale)
    clone = grow & ~split
    kept = (~prune & ~split).nonzero()[:, 0]
    cloned = clone.nonzero()[:, 0]
    halves = split.nonzero()[:, 0].repeat(2)
    source = torch.cat([kept, cloned, halves])
    fresh = torch.cat([torch.zeros(len(kept), dtype=torch.bool, device=source.device),
                       torch.ones(len(cloned) + len(halves), dtype=torch.bool, device=source.device)])

    values = {name: getattr(avatar, name).detach()[source].clone() for name in PARAMETERS}
    if len(halves):
        rows = slice(len(kept) + len(cloned), None)
        scales = values["log_scales"][rows].exp()
        local = quaternion_to_matrix(values["quats"][rows] / values["quats"][rows].norm(dim=-1, keepdim=True))
        # Children are drawn from the parent Gaussian itself, as in 3DGS.
        values["offsets"][rows] += (local @ (torch.randn_like(scales) * scales)[..., None])[..., 0]
        values["log_scales"][rows] -= math.log(SPLIT_SHRINK)
    _replace_parameters(avatar, optimizer, values, source, fresh)
    avatar.parents = avatar.parents[source]
    return {"pruned": int(prune.sum()), "cloned": len(cloned), "split": len(halves) // 2, "total": len(source)}


def _replace_parameters(avatar: nn.Module, optimizer: torch.optim.Adam, values: dict[str, Tensor], source: Tensor,
                        fresh: Tensor) -> None:
    """Swap each parameter for its new rows, carrying Adam's moments along `source` (zero where `fresh`)."""
    for group in optimizer.param_groups:
        name = group["name"]
        old = group["params"][0]
        new = nn.Parameter(values[name])
        state = optimizer.state.pop(old, None)
        if state:
            for key in ("exp_avg", "exp_avg_sq"):
                moment = state[key][source]
                moment[fresh] = 0.0
                state[key] = moment
            optimizer.state[new] = state
        group["params"] = [new]
        setattr(avatar, name, new)
