"""The Ray Train `TorchTrainer` of a pre-training job, built from decisions the runtime made.

`build_trainer` only assembles the trainer: workers running `train_loop_per_worker`, the failure and
checkpoint policy from the config, storage at the job's run folder. Starting Ray, resolving the device,
the workers' environment and fitting are the caller's (`cluster.pretrain` for `replica pretrain`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from datasets import storage
from foundation.training.config import PretrainJob
from foundation.training.loop import train_loop_per_worker

if TYPE_CHECKING:
    from ray.train import UserCallback
    from ray.train.torch import TorchTrainer

RUN_NAME = "train"
"""Ray Train's run folder inside the job's run folder (checkpoints live under it)."""


def build_trainer(job: PretrainJob, *, num_workers: int, use_gpu: bool, cpus_per_worker: float,
                  worker_env: dict[str, str], callbacks: Sequence["UserCallback"] = ()) -> "TorchTrainer":
    """A `TorchTrainer` for `job`; call `.fit()` on it to run (or resume, from its run folder) the job.

    num_workers: training processes (one per GPU on a cluster); use_gpu: give each worker a GPU (must
    agree with `job.device`); cpus_per_worker: CPUs reserved per worker; worker_env: environment
    variables every worker starts with (storage credentials, `DS_ACCELERATOR`, `WANDB_API_KEY`), as
    the runtime decided them; callbacks: Ray Train `UserCallback`s on the controller.

    For a Ray Tune search over runs (per-avatar fine-tuning), use Ray Train V2's documented pattern
    (the old `Tuner(trainer)` is deprecated): a Tune function trainable is the Train driver, it builds
    the trainer for its trial's config and fits it, and `TuneReportCallback` passes every
    `ray.train.report` of the trial's workers on to Tune:

        def train_driver_fn(trial_config: dict) -> None:
            job = ...  # this trial's PretrainJob, with its own out_url
            build_trainer(job, ..., callbacks=[ray.tune.integration.ray_train.TuneReportCallback()]).fit()

        ray.tune.Tuner(train_driver_fn, param_space=...,
                       tune_config=ray.tune.TuneConfig(max_concurrent_trials=...)).fit()
    """
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    if use_gpu != (job.device == "cuda"):
        raise ValueError(f"use_gpu={use_gpu} disagrees with the job's device {job.device!r}")
    filesystem, storage_path = storage.arrow_filesystem(job.out_url)
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=job.model_dump(mode="json"),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                               resources_per_worker={"CPU": cpus_per_worker}),
        run_config=ray.train.RunConfig(
            name=RUN_NAME, storage_path=storage_path, storage_filesystem=filesystem,
            failure_config=ray.train.FailureConfig(max_failures=job.train.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=job.train.keep_checkpoints),
            worker_runtime_env={"env_vars": dict(worker_env)}, callbacks=list(callbacks)),
    )
