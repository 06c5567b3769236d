"""What a pre-training run is told: the `train` section of a replica config, and the job its workers receive.

`TrainConfig` (with `WandbConfig`) is what a user sets. `PretrainJob` is what the runtime hands every
Ray Train worker as `train_loop_config`: the config plus the runtime's decisions (device, precision,
wandb mode) and absolute URLs, so a worker decides nothing about where or how it runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from datasets.config import Section
from datasets.loader import LoaderConfig

Kind = Literal["audio", "animator"]
"""The foundation models pre-training knows."""

WandbMode = Literal["online", "offline", "disabled"]
"""How the run logs to wandb, once the runtime has decided."""


class WandbConfig(Section):
    """Experiment logging (rank 0 only, one wandb run per job)."""

    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    """auto: online when WANDB_API_KEY is set (the runtime checks), else offline under the run folder."""
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
    """Held-out batches per evaluation, per worker (the same batches every time)."""
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


class PretrainJob(BaseModel):
    """Everything a training worker needs, passed as Ray Train's `train_loop_config`."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    """Which foundation model the run trains."""
    model: dict
    """The objective's serialised model section (`objectives.model_section`)."""
    train: TrainConfig
    """Schedule, DeepSpeed, checkpointing and logging settings."""
    loader: LoaderConfig
    """How the workers read shards."""
    data_url: str
    """Training dataset (absolute URL)."""
    eval_url: str | None
    """Held-out dataset for periodic evaluation (absolute URL), or None."""
    out_url: str
    """Run folder (absolute URL): checkpoints, metrics.jsonl, wandb, model.pt."""
    device: Literal["cpu", "cuda"]
    """Device the runtime resolved for the workers."""
    precision: Literal["fp32", "bf16"]
    """Training precision the runtime resolved."""
    wandb_mode: WandbMode
    """wandb mode the runtime decided (never `auto`)."""
    init_from: str | None = None
    """Export training starts from: an audio encoder, or a pre-trained animator (animator runs only)."""
