"""Pre-train a foundation model with Ray Train + DeepSpeed over dataset shards.

    replica pretrain audio    --data URL --out URL [--eval-data URL] [--config tiny] [--set train.steps=500]
    replica pretrain animator --data URL --out URL --audio-encoder URL/model.pt

`pretrain()` is the driver: it starts (or joins) Ray, builds a `TorchTrainer` whose workers each run
`train_loop_per_worker`, and, when training ends, evaluates the exported model against its
references and writes `eval.json`. The worker loop reads top to bottom:

  build the objective (model + loss) → wrap it in a DeepSpeed engine (ZeRO stage, precision,
  accumulation, clipping from the config) → restore the latest checkpoint if Ray Train hands one
  over (a restarted worker group or a re-run job) → stream batches from the shard loader, split by
  rank → step → report metrics, evaluate and checkpoint periodically → export `model.pt`.

A checkpoint is DeepSpeed's own (sharded per rank under ZeRO) plus each rank's loader state and the
step; Ray Train persists it to the run's storage path, keeps the last K, and after a worker dies
restarts the group from it (`FailureConfig(max_failures)`). Re-running the same command with the
same `--out` resumes from the latest checkpoint. wandb runs on rank 0 only, offline by default.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict

from datasets import storage
from datasets.loader import LoaderConfig, ShardLoader, dataset_speakers
from foundation.objectives import build_objective
from foundation.train_config import TrainConfig

log = logging.getLogger("replica.train")

Kind = Literal["audio", "animator"]
RUN_NAME = "train"  # Ray Train's run folder inside the output URL


class PretrainJob(BaseModel):
    """Everything a training worker needs, passed as Ray Train's `train_loop_config`."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    model: dict
    train: TrainConfig
    loader: LoaderConfig
    data_url: str
    eval_url: str | None
    out_url: str
    device: str
    precision: str
    init_from: str | None = None


def deepspeed_config(train: TrainConfig, loader: LoaderConfig, precision: str) -> dict:
    """The DeepSpeed config for a run: AdamW, warm-up + cosine decay, ZeRO, precision, clipping."""
    return {
        "train_micro_batch_size_per_gpu": loader.batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "gradient_clipping": train.grad_clip,
        "optimizer": {"type": "AdamW", "params": {"lr": train.lr, "weight_decay": train.weight_decay,
                                                   "betas": [0.9, 0.98], "eps": 1e-8}},
        "scheduler": {"type": "WarmupCosineLR", "params": {
            "total_num_steps": train.steps, "warmup_num_steps": min(train.warmup_steps, train.steps - 1),
            "warmup_type": "linear", "cos_min_ratio": train.min_lr_ratio}},
        "zero_optimization": {"stage": train.zero_stage, "overlap_comm": False, "reduce_scatter": True},
        "bf16": {"enabled": precision == "bf16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def _to_device(batch: dict, device: torch.device) -> dict:
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.to(device, non_blocking=True)
        elif isinstance(value, dict):
            out[key] = _to_device(value, device)
        else:
            out[key] = value
    return out


def _all_reduce_sums(sums: dict[str, float], device: torch.device) -> dict[str, float]:
    import torch.distributed as dist

    keys = sorted(sums)
    tensor = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return dict(zip(keys, tensor.tolist()))


def evaluate(engine, loader: ShardLoader | None, batches: int, device) -> dict[str, float]:
    """Held-out metrics averaged over every rank's share of `batches` batches each."""
    if loader is None:
        return {}
    module = engine.module
    module.eval()
    sums: dict[str, float] = {}
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if i >= batches:
                break
            for name, (total, count) in module.eval_sums(_to_device(batch, device)).items():
                sums[f"{name}__sum"] = sums.get(f"{name}__sum", 0.0) + float(total)
                sums[f"{name}__count"] = sums.get(f"{name}__count", 0.0) + float(count)
    module.train()
    reduced = _all_reduce_sums(sums, device)
    names = {k.rsplit("__", 1)[0] for k in reduced}
    return {f"eval/{n}": reduced[f"{n}__sum"] / max(reduced[f"{n}__count"], 1.0) for n in sorted(names)}


class RunLogger:
    """Rank 0's record of the run: `metrics.jsonl` in the run folder, and wandb (offline by default).

    One wandb run per job, not per rank. The JSONL history survives restarts: a resumed worker
    keeps the lines up to the step it resumed from, so the file reads as one run.
    """

    def __init__(self, job: PretrainJob, rank: int, start_step: int):
        self.run = None
        self.enabled = rank == 0
        if not self.enabled:
            return
        self.history_url = storage.join(job.out_url, "metrics.jsonl")
        self.history = []
        if storage.exists(self.history_url):
            lines = storage.read_text(self.history_url).splitlines()
            self.history = [json.loads(line) for line in lines if line.strip()]
            self.history = [h for h in self.history if h.get("step", 0) <= start_step]
        if job.train.wandb.mode == "disabled":
            return
        import wandb

        local = storage.local_path(job.out_url)
        self.upload_to = None if local else storage.join(job.out_url, "wandb")
        self.dir = local or tempfile.mkdtemp(prefix="replica-wandb-")
        os.makedirs(self.dir, exist_ok=True)
        self.run = wandb.init(project=job.train.wandb.project, mode=job.train.wandb.mode, dir=self.dir,
                              name=f"pretrain-{job.kind}", config=job.model_dump(mode="json"),
                              settings=wandb.Settings(silent=True, console="off"))

    def log(self, metrics: dict, step: int) -> None:
        if not self.enabled:
            return
        self.history.append({"step": step, **metrics})
        if self.run is not None:
            self.run.log(metrics, step=step)

    def flush(self) -> None:
        if self.enabled:
            storage.write_text(self.history_url, "".join(json.dumps(h) + "\n" for h in self.history))

    def finish(self) -> None:
        self.flush()
        if self.run is None:
            return
        self.run.finish()
        if self.upload_to:
            storage.upload_folder(os.path.join(self.dir, "wandb"), self.upload_to)


def _peak_rss_mb(device) -> list[float]:
    """Peak resident memory of every rank's process, MB (all ranks take part)."""
    import resource

    import torch.distributed as dist

    mine = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0], device=device)
    if not dist.is_initialized():
        return mine.tolist()
    gathered = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mine)
    return [float(t) for t in gathered]


def _save_checkpoint(engine, loader: ShardLoader, step: int, rank: int, folder: str) -> None:
    engine.save_checkpoint(folder, tag="deepspeed", client_state={"step": step})
    with open(os.path.join(folder, f"trainer_state_rank{rank}.json"), "w") as f:
        json.dump({"step": step, "loader": loader.state_dict()}, f)


def _restore(engine, loader: ShardLoader, rank: int) -> int:
    """Load the checkpoint Ray Train hands this worker, if any; returns the step to continue from."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        engine.load_checkpoint(folder, tag="deepspeed")
        with open(os.path.join(folder, f"trainer_state_rank{rank}.json")) as f:
            state = json.load(f)
    loader.load_state_dict(state["loader"])
    log.info("rank %d resumed from step %d", rank, state["step"])
    return int(state["step"])


def train_loop_per_worker(config: dict) -> None:
    """One Ray Train worker: DeepSpeed engine over this rank's share of the shards."""
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
    deepspeed.init_distributed(dist_backend="nccl" if job.device == "cuda" else "gloo")
    engine, _, _, _ = deepspeed.initialize(
        model=objective, model_parameters=[p for p in objective.parameters() if p.requires_grad],
        config=deepspeed_config(job.train, job.loader, job.precision))

    train_cfg = job.loader.model_copy(update={"resampled": True})
    loader = ShardLoader(job.data_url, train_cfg, rank=rank, world_size=world, transform=objective.transform())
    eval_loader = None
    if job.eval_url:
        eval_cfg = job.loader.model_copy(update={"resampled": False, "random_crop": False, "num_workers": 0})
        eval_loader = ShardLoader(job.eval_url, eval_cfg, rank=rank, world_size=world, transform=objective.transform())

    step = start_step = _restore(engine, loader, rank)
    logger = RunLogger(job, rank, start_step)
    window_start, window_samples, micro = time.perf_counter(), 0, 0
    for batch in loader:
        if step >= job.train.steps:
            break
        batch = _to_device(batch, device)
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
        if step % job.train.eval_every == 0 or last:
            report.update({"step": step, "start_step": start_step,
                           **evaluate(engine, eval_loader, job.train.eval_batches, device)})
        if step % job.train.checkpoint_every == 0 or last:
            report["peak_rss_mb"] = max(rss := _peak_rss_mb(device))
            report.update({f"peak_rss_mb/rank{r}": v for r, v in enumerate(rss)})
            logger.log(report, step)
            logger.flush()
            with tempfile.TemporaryDirectory() as folder:
                _save_checkpoint(engine, loader, step, rank, folder)
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
        storage.write_bytes(storage.join(job.out_url, "model.pt"), _export_bytes(engine.module))
    logger.finish()


def _export_bytes(objective) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(objective.export(), buf)
    return buf.getvalue()


def pretrain(kind: Kind, cfg, data_url: str, out_url: str, eval_url: str | None = None,
             init_from: str | None = None, progress=None) -> dict:
    """Driver: run (or resume) pre-training on Ray, then evaluate. Returns the result summary.

    `cfg` is a `launch.config.ReplicaConfig`-like object with `runtime`, `train`, `loader` and the
    model section for `kind` (`audio_encoder` or `animator`).
    """
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from cluster.runtime import init_ray, resolve

    resolved = resolve(cfg.runtime)
    init_ray(cfg.runtime)
    data_url, out_url = storage.absolute(data_url), storage.absolute(out_url)
    eval_url = storage.absolute(eval_url) if eval_url else None
    init_from = storage.absolute(init_from) if init_from else None
    if kind == "audio":
        model_cfg = {"encoder": cfg.audio_encoder.model_dump(mode="json"),
                     "features": cfg.features.model_dump(mode="json"), "speakers": dataset_speakers(data_url)}
    else:
        model_cfg = {"animator": cfg.animator.model_dump(mode="json")}
    job = PretrainJob(kind=kind, model=model_cfg, train=cfg.train, loader=cfg.loader, data_url=data_url,
                      eval_url=eval_url, out_url=out_url, device=resolved.device, precision=resolved.precision,
                      init_from=init_from)
    filesystem, storage_path = storage.arrow_filesystem(out_url)
    env = {"DS_ACCELERATOR": "cpu"} if resolved.device == "cpu" else {}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=job.model_dump(mode="json"),
        torch_config=TorchConfig(backend="nccl" if resolved.device == "cuda" else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.train.num_workers, use_gpu=resolved.device == "cuda",
            resources_per_worker={"CPU": cfg.train.cpus_per_worker}),
        run_config=ray.train.RunConfig(
            name=RUN_NAME, storage_path=storage_path, storage_filesystem=filesystem,
            failure_config=ray.train.FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.train.keep_checkpoints),
            worker_runtime_env={"env_vars": env}),
    )
    started = time.perf_counter()
    result = trainer.fit()
    summary = {"kind": kind, "out": out_url, "seconds": round(time.perf_counter() - started, 1),
               "final_metrics": {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))},
               "checkpoint": result.checkpoint.path if result.checkpoint else None}
    storage.write_json(storage.join(out_url, "train_summary.json"), summary)
    return summary


