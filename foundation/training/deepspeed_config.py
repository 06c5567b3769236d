"""The DeepSpeed config of a run, derived from the typed config (DeepSpeed's own JSON schema)."""

from __future__ import annotations

from datasets.loader import LoaderConfig
from foundation.training.config import TrainConfig


def deepspeed_config(train: TrainConfig, loader: LoaderConfig, precision: str) -> dict:
    """AdamW, linear warm-up + cosine decay, ZeRO stage, bf16 or fp32, accumulation and clipping.

    bf16 is autocast (fp32 weights and optimizer state, matrix work in bf16), not DeepSpeed's bf16 weights:
    batches arrive in fp32 from the loader and the models keep fp32 normalisation statistics and losses
    (the encoder's input BatchNorm, AAM-softmax margins, CPC scores), which bf16 weights break ("mixed dtype").
    """
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
        "bf16": {"enabled": False},
        "torch_autocast": {"enabled": precision == "bf16", "dtype": "bfloat16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
