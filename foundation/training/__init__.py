"""Pre-training the foundation models with Ray Train + DeepSpeed, one component per file (torchtitan's split).

    config.py            TrainConfig, WandbConfig (the `train` section) and PretrainJob (what workers receive)
    objectives.py        model + loss per kind (AudioObjective, AnimatorObjective), build_objective
    deepspeed_config.py  the DeepSpeed config derived from the typed config
    checkpoint.py        save/restore: DeepSpeed's checkpoint + each rank's loader state + the step
    heldout.py           periodic evaluation on the same held-out batches every time
    logger.py            RunLogger: metrics.jsonl + wandb on rank 0
    distributed.py       batches onto the device; sums and peak memory across ranks
    loop.py              train_loop_per_worker, readable top to bottom
    trainer.py           build_trainer(job, ...) → a Ray Train TorchTrainer (also the unit a Tune trial fits)

The runtime (`cluster.pretrain`) decides device, precision, Ray, the workers' environment and the wandb
mode, and hands them to `build_trainer`; nothing here reads the environment or starts Ray.

Public API (imported lazily): TrainConfig, WandbConfig, PretrainJob, build_trainer, build_objective,
model_section, AudioObjective, AnimatorObjective, train_loop_per_worker.
"""

from datasets.exports import lazy_getattr

_EXPORTS = {
    "TrainConfig": "foundation.training.config", "WandbConfig": "foundation.training.config",
    "PretrainJob": "foundation.training.config", "Kind": "foundation.training.config",
    "WandbMode": "foundation.training.config",
    "AudioObjective": "foundation.training.objectives", "AnimatorObjective": "foundation.training.objectives",
    "build_objective": "foundation.training.objectives", "model_section": "foundation.training.objectives",
    "train_loop_per_worker": "foundation.training.loop",
    "build_trainer": "foundation.training.trainer", "RUN_NAME": "foundation.training.trainer",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr("foundation.training", _EXPORTS)
