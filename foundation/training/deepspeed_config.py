"""The DeepSpeed config of a run, derived from the typed config (DeepSpeed's own JSON schema)."""

from __future__ import annotations

from datasets.loader import LoaderConfig
from foundation.training.config import TrainConfig


def deepspeed_config(train: TrainConfig, loader: LoaderConfig, precision: str, device: str) -> dict:
    """AdamW, linear warm-up + cosine decay, ZeRO stage, bf16 or fp32, accumulation and clipping.

    On CPU the AdamW is torch's (`torch_adam`): DeepSpeed's fused CPU Adam loads a JIT-built C++ op whose build
    check runs py-cpuinfo in two subprocesses: 3–4 s of every worker's start-up (a 6-step tiny run on two CPU
    workers took 27–28 s with it, 21.7 s without), for no speed-up on models of this size. On CUDA it stays
    DeepSpeed's fused kernel.

    bf16 is autocast (fp32 weights and optimizer state, matrix work in bf16), not DeepSpeed's bf16 weights:
    batches arrive in fp32 from the loader and the models keep fp32 normalisation statistics and losses
    (the encoder's input BatchNorm, AAM-softmax margins, CPC scores), which bf16 weights break ("mixed dtype").
    """
    return {
        "train_micro_batch_size_per_gpu": loader.batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "gradient_clipping": train.grad_clip,
        "optimizer": {"type": "AdamW", "params": {"lr": train.lr, "weight_decay": train.weight_decay,
                                                   "betas": [0.9, 0.98], "eps": 1e-8,
                                                   "torch_adam": device == "cpu"}},
        "scheduler": {"type": "WarmupCosineLR", "params": {
            "total_num_steps": train.steps, "warmup_num_steps": min(train.warmup_steps, train.steps - 1),
            "warmup_type": "linear", "cos_min_ratio": train.min_lr_ratio}},
        "zero_optimization": {"stage": train.zero_stage, "overlap_comm": False, "reduce_scatter": True},
        "bf16": {"enabled": False},
        "torch_autocast": {"enabled": precision == "bf16", "dtype": "bfloat16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
