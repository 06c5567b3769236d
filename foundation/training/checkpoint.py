"""Checkpoints: DeepSpeed's own (sharded per rank under ZeRO) plus each rank's loader state and the step.

Ray Train persists the folder a worker reports to the run's storage path, keeps the last K, and hands
the latest back (`ray.train.get_checkpoint`) to a restarted worker group or a re-run of the same job.
"""

from __future__ import annotations

import json
import logging
import os

from datasets.loader import ShardLoader

log = logging.getLogger("replica.train")

DEEPSPEED_TAG = "deepspeed"
"""DeepSpeed's sub-folder inside a checkpoint."""


def save_checkpoint(engine, loader: ShardLoader, step: int, rank: int, folder: str) -> None:
    """Write this rank's share of a checkpoint into the local `folder` (every rank takes part)."""
    engine.save_checkpoint(folder, tag=DEEPSPEED_TAG, client_state={"step": step})
    with open(os.path.join(folder, f"trainer_state_rank{rank}.json"), "w") as f:
        json.dump({"step": step, "loader": loader.state_dict()}, f)


def restore_checkpoint(engine, loader: ShardLoader, rank: int) -> int:
    """Load the checkpoint Ray Train hands this worker, if any; returns the step to continue from."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        engine.load_checkpoint(folder, tag=DEEPSPEED_TAG)
        with open(os.path.join(folder, f"trainer_state_rank{rank}.json")) as f:
            state = json.load(f)
    loader.load_state_dict(state["loader"])
    log.info("rank %d resumed from step %d", rank, state["step"])
    return int(state["step"])
