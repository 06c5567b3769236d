"""Rank 0's record of a run: `metrics.jsonl` in the run folder, and wandb in the mode the runtime decided.

One wandb run per job, not per rank. Offline, wandb writes under the run folder (or a temporary folder
uploaded there at the end when the run folder is remote); online it streams to the wandb server with
the WANDB_API_KEY the runtime passed to the workers. The JSONL history survives restarts: a resumed
worker keeps the lines up to the step it resumed from, so the file reads as one run.
"""

from __future__ import annotations

import json
import os
import tempfile

from datasets import storage
from foundation.training.config import PretrainJob


class RunLogger:
    """Appends metrics per step on rank 0; a no-op on the other ranks."""

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
        if job.wandb_mode == "disabled":
            return
        import wandb

        local = storage.local_path(job.out_url)
        self.upload_to = None if local else storage.join(job.out_url, "wandb")
        self.dir = local or tempfile.mkdtemp(prefix="replica-wandb-")
        os.makedirs(self.dir, exist_ok=True)
        self.run = wandb.init(project=job.train.wandb.project, mode=job.wandb_mode, dir=self.dir,
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
