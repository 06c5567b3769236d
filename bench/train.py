"""Training throughput: a plain PyTorch loop vs. Ray Train + DeepSpeed with 1 and 2 workers.

The same objective (the audio encoder's, tiny config), the same data (a shard dataset read by the
same loader) and the same batch size in all three:
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
from datasets.loader import ShardLoader, dataset_speakers  # noqa: E402
from datasets.shards import write_dataset  # noqa: E402
from foundation.objectives import AudioObjective  # noqa: E402
from foundation.train import pretrain  # noqa: E402
from launch.config import load_config  # noqa: E402
from tests.datasets.factory import toy_sample  # noqa: E402

WINDOW = 5


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    cfg = load_config("tiny", ["loader.num_workers=1", "loader.batch_size=8", "loader.window_s=2.0"])
    torch.set_num_threads(os.cpu_count() or 2)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        write_dataset(data, (toy_sample(f"k{i:04d}", 2.0, speaker=f"s{i % 8}", seed=i, with_face=False)
                             for i in range(64)), max_count=8)
        plain = plain_loop(cfg, data, args.steps)
        print("plain", plain["samples_per_s"])
        one = ray_deepspeed(cfg, data, os.path.join(tmp, "one"), args.steps, 1)
        print("ray+deepspeed 1 worker", one["samples_per_s"])
        two = ray_deepspeed(cfg, data, os.path.join(tmp, "two"), args.steps, 2)
        print("ray+deepspeed 2 workers", two["samples_per_s"])
    results = {
        "machine": describe_machine(), "model": "audio encoder (tiny)", "batch_size": cfg.loader.batch_size,
        "window_s": cfg.loader.window_s, "steps": args.steps,
        "plain_pytorch": plain, "ray_deepspeed_1_worker": one, "ray_deepspeed_2_workers": two,
        "overhead_ratio_b_over_a": plain["samples_per_s"] / one["samples_per_s"],
        "scaling_c_over_b": two["samples_per_s"] / one["samples_per_s"],
        "target_overhead_ratio": 1.15,
    }
    out = ROOT / "bench" / "results" / "train.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"overhead (b)/(a) = {results['overhead_ratio_b_over_a']:.3f}, scaling (c)/(b) = "
          f"{results['scaling_c_over_b']:.3f}; wrote {out}")


if __name__ == "__main__":
    main()
