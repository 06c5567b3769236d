"""What crosses devices and ranks in the worker loop: batches onto the device, sums and memory across ranks."""

from __future__ import annotations

import resource

import torch
import torch.distributed as dist


def init_process_group(device: str) -> None:
    """DeepSpeed's process group for this rank: NCCL on CUDA, gloo on CPU.

    On CPU, DeepSpeed would first JIT-compile its shared-memory all-reduce (`deepspeed_shm_comm`: 70 s on a
    fresh 2-core machine, then a ninja check in every worker) although only its inference engine calls it;
    training's collectives go through torch.distributed. DeepSpeed reads op availability from one cached dict,
    so marking the op unavailable there skips the build and the kernel (whose bf16 path also needs AVX-512).
    """
    import deepspeed
    import deepspeed.ops

    if device != "cuda":
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(dist_backend="nccl" if device == "cuda" else "gloo")


def to_device(batch: dict, device: torch.device) -> dict:
    """The loader batch with every tensor (nested dicts too, e.g. `mm`) on `device`; other values as they are."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.to(device, non_blocking=True)
        elif isinstance(value, dict):
            out[key] = to_device(value, device)
        else:
            out[key] = value
    return out


def all_reduce_sums(sums: dict[str, float]) -> dict[str, float]:
    """Each value summed over all ranks; a name missing on some ranks counts 0 there. As is without a process group.

    Gathered as Python objects (a few numbers, once per evaluation) so that ranks may hold different names,
    e.g. a rank whose share of the held-out data is empty.
    """
    if not dist.is_initialized():
        return dict(sums)
    gathered: list[dict[str, float]] = [{} for _ in range(dist.get_world_size())]
    dist.all_gather_object(gathered, sums)
    total: dict[str, float] = {}
    for rank_sums in gathered:
        for key, value in rank_sums.items():
            total[key] = total.get(key, 0.0) + value
    return total


def peak_rss_mb(device: torch.device) -> list[float]:
    """Peak resident memory of every rank's process, MB, in rank order (all ranks take part)."""
    mine = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0], device=device)
    if not dist.is_initialized():
        return mine.tolist()
    gathered = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mine)
    return [float(t) for t in gathered]
