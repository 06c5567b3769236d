"""Training throughput: a plain PyTorch loop vs. Ray Train + DeepSpeed with 1 and 2 workers.

The same objective (the audio encoder's), the same data (a shard dataset read by the same loader)
and the same batch size in all three, for two model sizes (the tiny CPU one, whose steps are so short
that fixed per-step costs show, and a small one of a few million parameters):
  (a) plain: one process, torch AdamW, all of this machine's cores;
  (b) Ray Train + DeepSpeed (ZeRO-2), 1 worker holding all cores;
  (c) Ray Train + DeepSpeed (ZeRO-2), 2 workers, the cores split between them.
Throughput is the median of per-window samples/s after the first window (warm-up), so start-up
(Ray, process groups, DeepSpeed op builds) is excluded; start-up time is reported separately.
Reports the overhead ratio (b)/(a) as time per sample (target ≤ 1.15), the scaling (c)/(b), and
peak RSS per worker.

    .venv/bin/python bench/train.py [--steps 60]

Writes bench/results/train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.machine import describe_machine  # noqa: E402
from cluster.pretrain import pretrain  # noqa: E402
from datasets.loader import ShardLoader, dataset_speakers  # noqa: E402
from datasets.shards import write_dataset  # noqa: E402
from foundation.training import AudioObjective  # noqa: E402
from launch.config import load_config  # noqa: E402
from datasets.toy import toy_sample  # noqa: E402

WINDOW = 20  # steps per throughput window; also how often Ray Train reports (a barrier each time)


def plain_loop(cfg, data: str, steps: int) -> dict:
    torch.manual_seed(0)
    objective = AudioObjective(cfg.audio_encoder, cfg.features, dataset_speakers(data))
    optimizer = torch.optim.AdamW(objective.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    loader = ShardLoader(data, cfg.loader.model_copy(update={"resampled": True}), transform=objective.transform())
    rates, start, samples, step = [], time.perf_counter(), 0, 0
    for batch in loader:
        loss, _ = objective(batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(objective.parameters(), cfg.train.grad_clip)
        optimizer.step()
        samples += len(batch["keys"])
        step += 1
        if step % WINDOW == 0:
            rates.append(samples / (time.perf_counter() - start))
            start, samples = time.perf_counter(), 0
        if step >= steps:
            break
    return {"samples_per_s": statistics.median(rates[1:]), "windows": rates,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def ray_deepspeed(cfg, data: str, out: str, steps: int, workers: int) -> dict:
    cores = os.cpu_count() or 2
    run_cfg = cfg.model_copy(deep=True)
    run_cfg.train.num_workers = workers
    run_cfg.train.cpus_per_worker = max(cores // workers, 1)
    run_cfg.train.steps = steps
    run_cfg.train.log_every = WINDOW
    run_cfg.train.checkpoint_every = steps
    run_cfg.train.eval_every = steps
    run_cfg.train.wandb.mode = "disabled"
    started = time.perf_counter()
    pretrain("audio", run_cfg, data, out)
    total = time.perf_counter() - started
    history = [json.loads(line) for line in Path(out, "metrics.jsonl").read_text().splitlines()]
    rates = [h["samples_per_s"] for h in history if "samples_per_s" in h]
    rss = {k: v for k, v in history[-1].items() if k.startswith("peak_rss_mb/")}
    steady = statistics.median(rates[1:])
    return {"samples_per_s": steady, "windows": rates, "wall_s": total,
            "startup_s": total - steps * cfg.loader.batch_size / steady, "peak_rss_mb_per_worker": rss,
            "cpus_per_worker": run_cfg.train.cpus_per_worker}


SIZES = {
    "tiny": [],
    "small": ["audio_encoder.dim=192", "audio_encoder.layers=4", "audio_encoder.heads=4", "audio_encoder.embed_dim=128"],
}


def compare(size: str, data: str, tmp: str, steps: int) -> dict:
    cfg = load_config("tiny", ["loader.num_workers=1", "loader.batch_size=8", "loader.window_s=2.0", *SIZES[size]])
    params = sum(p.numel() for p in AudioObjective(cfg.audio_encoder, cfg.features, ["a", "b"]).encoder.parameters())
    plain = plain_loop(cfg, data, steps)
    one = ray_deepspeed(cfg, data, os.path.join(tmp, f"{size}-one"), steps, 1)
    two = ray_deepspeed(cfg, data, os.path.join(tmp, f"{size}-two"), steps, 2)
    result = {"encoder_parameters": params, "plain_pytorch": plain, "ray_deepspeed_1_worker": one,
              "ray_deepspeed_2_workers": two,
              "overhead_ratio_b_over_a": plain["samples_per_s"] / one["samples_per_s"],
              "scaling_c_over_b": two["samples_per_s"] / one["samples_per_s"]}
    print(f"{size} ({params / 1e6:.2f}M params): plain {plain['samples_per_s']:.1f}, 1 worker "
          f"{one['samples_per_s']:.1f}, 2 workers {two['samples_per_s']:.1f} samples/s; overhead (b)/(a) "
          f"{result['overhead_ratio_b_over_a']:.3f}, scaling (c)/(b) {result['scaling_c_over_b']:.3f}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)
    results = {"machine": describe_machine(), "model": "audio encoder objective (AAM-softmax + CPC)",
               "batch_size": 8, "window_s": 2.0, "steps": args.steps, "target_overhead_ratio": 1.15}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        write_dataset(data, (toy_sample(f"k{i:04d}", 2.0, speaker=f"s{i % 8}", seed=i, with_face=False)
                             for i in range(64)), max_count=8)
        for size in SIZES:
            results[size] = compare(size, data, tmp, args.steps)
    out = ROOT / "bench" / "results" / "train.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
