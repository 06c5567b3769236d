"""Pre-train a foundation model on Ray: the runtime's side of `replica pretrain` and the demo.

    summary = pretrain("audio", cfg, data_url, out_url, eval_url=heldout_url)
    summary = pretrain("animator", cfg, data_url, out_url, eval_url=heldout_url, init_from=audio_url)

The inputs are checked first (datasets exist, the starting model is an export), before Ray starts.
Then the runtime decides — device and precision, the Ray cluster, the workers' environment, the wandb
mode — and hands its decisions to `foundation.training.build_trainer`, which only builds the Ray Train
`TorchTrainer`; this driver fits it and writes `train_summary.json` into the run folder. Re-running
with the same `out_url` resumes from the run's latest checkpoint.
"""

from __future__ import annotations

import time

from cluster.runtime import init_ray, resolve, training_worker_env, wandb_mode
from datasets import storage
from datasets.errors import ReplicaError
from datasets.shards import read_manifest
from foundation.models import load_exported
from foundation.training import Kind, PretrainJob, build_trainer, model_section


def check_inputs(kind: Kind, data_url: str, eval_url: str | None = None, init_from: str | None = None) -> None:
    """Raise a one-line `ReplicaError` for a missing dataset or a missing or wrong starting model."""
    read_manifest(data_url)
    if eval_url:
        read_manifest(eval_url)
    if kind == "animator" and not init_from:
        raise ReplicaError("pretrain animator", "needs a pre-trained audio encoder's or animator's model.pt")
    if kind == "audio" and init_from:
        raise ReplicaError("pretrain audio", "starts from scratch; init_from is for the animator")
    if init_from:
        load_exported(init_from)  # exists and is a model export (audio or animator: both can start an animator)


def pretrain(kind: Kind, cfg, data_url: str, out_url: str, eval_url: str | None = None,
             init_from: str | None = None) -> dict:
    """Run (or resume) pre-training of `kind` on Ray; returns the summary also written to `train_summary.json`.

    cfg: the run config, a `launch.config.ReplicaConfig` (its `runtime`, `train`, `loader`, `features`,
    `audio_encoder` and `animator` sections are used);
    data_url / eval_url: training and held-out datasets; out_url: the run folder; init_from: the
    export an animator starts from (an audio encoder's, or a pre-trained animator's model.pt).
    """
    data_url, out_url = storage.absolute(data_url), storage.absolute(out_url)
    eval_url = storage.absolute(eval_url) if eval_url else None
    init_from = storage.absolute(init_from) if init_from else None
    check_inputs(kind, data_url, eval_url, init_from)

    resolved = resolve(cfg.runtime)
    job = PretrainJob(
        kind=kind, train=cfg.train, loader=cfg.loader, data_url=data_url, eval_url=eval_url, out_url=out_url,
        model=model_section(kind, data_url, features=cfg.features, audio_encoder=cfg.audio_encoder,
                            animator=cfg.animator, audio_loss=cfg.audio_loss, augment=cfg.augment,
                            animator_loss=cfg.animator_loss),
        device=resolved.device, precision=resolved.precision, wandb_mode=wandb_mode(cfg.train.wandb.mode),
        init_from=init_from)
    init_ray(cfg.runtime)
    trainer = build_trainer(job, num_workers=cfg.train.num_workers, use_gpu=resolved.device == "cuda",
                            cpus_per_worker=cfg.train.cpus_per_worker, worker_env=training_worker_env(resolved))
    started = time.perf_counter()
    result = trainer.fit()
    summary = {"kind": kind, "out": out_url, "seconds": round(time.perf_counter() - started, 1),
               "device": resolved.device, "precision": resolved.precision, "wandb": job.wandb_mode,
               "final_metrics": {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))},
               "checkpoint": result.checkpoint.path if result.checkpoint else None}
    storage.write_json(storage.join(out_url, "train_summary.json"), summary)
    return summary
