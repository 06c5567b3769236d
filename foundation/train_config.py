"""Configuration of a pre-training run (the `train` and `wandb` sections of a replica config)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from datasets.config import Section


class WandbConfig(Section):
    """Experiment logging (rank 0 only, one wandb run per job)."""

    mode: Literal["offline", "online", "disabled"] = "offline"
    """offline writes under the run folder; online needs WANDB_API_KEY (the runtime switches to it)."""
    project: str = "replica"
    """wandb project name."""


class TrainConfig(Section):
    """How a foundation model is pre-trained with Ray Train + DeepSpeed."""

    steps: int = Field(200, ge=1)
    """Optimizer steps in the run."""
    lr: float = Field(1e-3, gt=0)
    """Peak learning rate (AdamW)."""
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    """Final learning rate as a fraction of the peak (cosine decay)."""
    warmup_steps: int = Field(20, ge=0)
    """Linear warm-up steps."""
    weight_decay: float = Field(0.01, ge=0)
    """AdamW weight decay."""
    grad_accum: int = Field(1, ge=1)
    """Micro-batches per optimizer step."""
    grad_clip: float = Field(1.0, ge=0)
    """Gradient-norm clipping (0: off)."""
    zero_stage: Literal[0, 1, 2, 3] = 2
    """DeepSpeed ZeRO stage."""
    num_workers: int = Field(2, ge=1)
    """Ray Train workers (one per GPU on a cluster; CPU processes here)."""
    cpus_per_worker: float = Field(1, gt=0)
    """CPUs reserved per worker."""
    eval_every: int = Field(50, ge=1)
    """Evaluate on the held-out split every this many steps (and at the end)."""
    eval_batches: int = Field(4, ge=1)
    """Held-out batches per evaluation, per worker."""
    checkpoint_every: int = Field(50, ge=1)
    """Checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = Field(2, ge=1)
    """Checkpoints kept in storage (older ones are deleted)."""
    max_failures: int = Field(2, ge=0)
    """Worker-failure restarts Ray Train attempts, each from the latest checkpoint."""
    log_every: int = Field(10, ge=1)
    """Report metrics every this many steps."""
    seed: int = 0
    """Seed for model initialisation."""
    wandb: WandbConfig = WandbConfig()
    """Experiment logging."""
