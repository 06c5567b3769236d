"""Periodic evaluation during training: the same held-out batches every time, averaged over ranks.

The held-out loader is rewound to its first batch before each pass (it would otherwise continue where
the last evaluation stopped, so the metric would drift with the data and skip a batch each time):
two evaluations of the same weights give the same numbers, and a curve of them shows learning only.
"""

from __future__ import annotations

import torch
from torch import nn

from datasets.loader import ShardLoader
from foundation.training.distributed import all_reduce_sums, to_device


class HeldOutEvaluator:
    """Averages an objective's `eval_sums` over the first `batches` held-out batches of every rank."""

    def __init__(self, loader: ShardLoader, batches: int, device: torch.device):
        self.loader, self.batches, self.device = loader, batches, device
        self.start = loader.state_dict()

    @torch.no_grad()
    def __call__(self, objective: nn.Module) -> dict[str, float]:
        """`eval/<name>` means of `objective.eval_sums` over this pass; the objective is left in train mode.

        Every rank must call it: the sums are added up across ranks.
        """
        self.loader.load_state_dict(self.start)
        objective.eval()
        sums: dict[str, float] = {}
        for i, batch in enumerate(self.loader):
            for name, (total, count) in objective.eval_sums(to_device(batch, self.device)).items():
                sums[f"{name}__sum"] = sums.get(f"{name}__sum", 0.0) + float(total)
                sums[f"{name}__count"] = sums.get(f"{name}__count", 0.0) + float(count)
            if i + 1 == self.batches:
                break
        objective.train()
        reduced = all_reduce_sums(sums)
        names = sorted({k.rsplit("__", 1)[0] for k in reduced})
        return {f"eval/{n}": reduced[f"{n}__sum"] / max(reduced[f"{n}__count"], 1.0) for n in names}
