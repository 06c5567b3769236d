"""One Ray Train worker's training loop, top to bottom.

  build the objective (model + loss) → wrap it in a DeepSpeed engine (ZeRO stage, precision,
  accumulation, clipping from the config) → restore the latest checkpoint if Ray Train hands one
  over (a restarted worker group or a re-run job) → stream batches from the shard loader, split by
  rank → step → report metrics, evaluate on the held-out batches and checkpoint periodically →
  export `model.pt` (rank 0).

Everything about where and how it runs (device, precision, wandb mode, environment) arrives decided,
in the `PretrainJob`.
"""

from __future__ import annotations

import tempfile
import time

import torch

from datasets import storage
from datasets.loader import ShardLoader
from foundation.models import save_export
from foundation.training.checkpoint import restore_checkpoint, save_checkpoint
from foundation.training.config import PretrainJob
from foundation.training.deepspeed_config import deepspeed_config
from foundation.training.distributed import init_process_group, peak_rss_mb, to_device
from foundation.training.heldout import HeldOutEvaluator
from foundation.training.logger import RunLogger
from foundation.training.objectives import build_objective


def _step_seed(seed: int, rank: int, micro_step: int) -> int:
    """The torch seed of one micro-batch of one rank (distinct per seed, rank and micro-step)."""
    return ((seed * 1_000_003 + rank) * 1_000_000_007 + micro_step) % 2**63


def train_loop_per_worker(config: dict) -> None:
    """One Ray Train worker: a DeepSpeed engine over this rank's share of the shards. `config`: a `PretrainJob` dict."""
    import deepspeed
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    job = PretrainJob.model_validate(config)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device() if job.device == "cuda" else torch.device("cpu")
    torch.manual_seed(job.train.seed)

    objective = build_objective(job.kind, job.model, init_from=job.init_from)
    init_process_group(job.device)
    engine, _, _, _ = deepspeed.initialize(
        model=objective, model_parameters=[p for p in objective.parameters() if p.requires_grad],
        config=deepspeed_config(job.train, job.loader, job.precision, job.device))

    train_cfg = job.loader.model_copy(update={"resampled": True})
    loader = ShardLoader(job.data_url, train_cfg, rank=rank, world_size=world, transform=objective.transform())
    evaluate = None
    if job.eval_url:
        eval_cfg = job.loader.model_copy(update={"resampled": False, "random_crop": False, "num_workers": 0})
        eval_loader = ShardLoader(job.eval_url, eval_cfg, rank=rank, world_size=world,
                                  transform=objective.transform(train=False))  # held-out audio is never augmented
        evaluate = HeldOutEvaluator(eval_loader, job.train.eval_batches, device)

    step = start_step = restore_checkpoint(engine, loader, rank)
    logger = RunLogger(job, rank, start_step)
    window_start, window_samples, micro = time.perf_counter(), 0, 0
    for batch in loader:
        if step >= job.train.steps:
            break
        # dropout draws from the step, not from how far the process got: a run resumed after a crash replays
        # exactly the steps it would have taken (the loader already replays the same batches)
        torch.manual_seed(_step_seed(job.train.seed, rank, step * job.train.grad_accum + micro % job.train.grad_accum))
        batch = to_device(batch, device)
        loss, metrics = engine(batch)
        engine.backward(loss)
        engine.step()
        window_samples += len(batch["keys"])
        micro += 1
        if micro % job.train.grad_accum:
            continue
        step += 1
        last = step == job.train.steps
        report = {}
        if step % job.train.log_every == 0 or last:
            elapsed = time.perf_counter() - window_start
            report = {"step": step, "start_step": start_step, "loss": float(loss.detach()),
                      "lr": engine.get_lr()[0], "samples_per_s": window_samples * world / max(elapsed, 1e-9),
                      **{k: float(v) for k, v in metrics.items()}}
        if evaluate is not None and (step % job.train.eval_every == 0 or last):
            report.update({"step": step, "start_step": start_step, **evaluate(engine.module)})
        if step % job.train.checkpoint_every == 0 or last:
            report["peak_rss_mb"] = max(rss := peak_rss_mb(device))
            report.update({f"peak_rss_mb/rank{r}": v for r, v in enumerate(rss)})
            logger.log(report, step)
            logger.flush()
            with tempfile.TemporaryDirectory() as folder:
                save_checkpoint(engine, loader, step, rank, folder)
                ray.train.report({"step": step, "start_step": start_step, **report},
                                 checkpoint=Checkpoint.from_directory(folder),
                                 checkpoint_dir_name=f"checkpoint_{step:07d}")
        elif report:
            ray.train.report(report)
            logger.log(report, step)
        if report:  # throughput windows exclude evaluation and checkpointing
            window_start, window_samples = time.perf_counter(), 0
        if last:
            break

    if rank == 0:
        save_export(engine.module.export(), storage.join(job.out_url, "model.pt"))
    logger.finish()
